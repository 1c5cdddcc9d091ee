"""Believe no venue blindly: the checks every report and every quote pass before they are used.

Exchanges and RPC nodes send NaN, numbers too large for any arithmetic, future timestamps,
duplicated lines, empty answers. `check_report` and `check_rate` run between a venue or price
source and the rest of the daemon; what fails them fails its venue (or counts as that source's
error), never the daemon, and never reaches the calculator.

`sudden_loss` is the other half: a report that is well formed but suddenly holds nothing (an
HTTP 200 with an empty body, a file caught half-written) is not believed until a fresh fetch
says the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from equity_daemon.model import Position, VenueReport

# A venue's clock may run a little ahead of ours; more than this is bad data, not skew.
FUTURE_TOLERANCE = timedelta(seconds=10)
# No balance or rate of a real fund reaches 1e30 or needs digits below 1e-36; anything beyond
# is a unit mistake or garbage, and would overflow or silently round in the calculator.
LARGEST_EXPONENT = 29
SMALLEST_EXPONENT = -36
# A report that keeps less than this share of the last good report's value is confirmed first.
KEPT_SHARE_TO_CONFIRM = Decimal("0.1")


class BadData(ValueError):
    """Raised by the checks below; its message says what was wrong, never a secret."""


def check_number(value: Decimal, what: str) -> Decimal:
    """`value` if it is finite and of a sane magnitude."""
    if not value.is_finite():
        raise BadData(f"{what} is {value}")
    if value and not SMALLEST_EXPONENT <= value.adjusted() <= LARGEST_EXPONENT:
        raise BadData(f"{what} is out of range ({value:.3e})")
    return value


def check_time(stamp: datetime, now: datetime, what: str) -> datetime:
    """`stamp` if it is timezone-aware and not in the future (beyond a little clock skew)."""
    if stamp.tzinfo is None:
        raise BadData(f"{what} has no time zone")
    ahead = stamp - now
    if ahead > FUTURE_TOLERANCE:
        raise BadData(f"{what} is {ahead.total_seconds():.0f}s in the future")
    return stamp


def check_rate(rate: Decimal, at: datetime, now: datetime) -> None:
    """A quote's rate must be a finite positive number of sane size, dated no later than now."""
    check_number(rate, "rate")
    if rate <= 0:
        raise BadData(f"rate is {rate} (must be > 0)")
    check_time(at, now, "quote time")


def check_report(report: VenueReport, venue: str, now: datetime) -> VenueReport:
    """`report` if everything in it can be used; else `BadData` naming the first problem."""
    if report.venue != venue:
        raise BadData(f"report names venue {report.venue!r}, not {venue!r}")
    check_time(report.fetched_at, now, "fetch time")
    if report.as_of is not None:
        check_time(report.as_of, now, "data time")
    if report.block_number is not None and report.block_number < 0:
        raise BadData(f"block number is {report.block_number}")
    seen: set[tuple[object, ...]] = set()
    for position in report.positions:
        _check_position(position, venue)
        key = (position.account, position.asset, position.kind, position.line_id)
        if key in seen:
            raise BadData(f"{_line(position)} appears twice")
        seen.add(key)
    return report


def _check_position(position: Position, venue: str) -> None:
    if position.venue != venue:
        raise BadData(f"{_line(position)} belongs to venue {position.venue!r}")
    check_number(position.amount, f"{_line(position)} amount")
    for key, value in position.details.items():
        if isinstance(value, Decimal):
            check_number(value, f"{_line(position)} {key}")


def _line(position: Position) -> str:
    return f"{position.account}/{position.asset}/{position.kind.value}"


def sudden_loss(
    last_good: VenueReport | None, report: VenueReport, prices: Mapping[str, Decimal]
) -> bool:
    """Whether `report` lost every position, or most of the value, that `last_good` held.

    Value is measured gross (|amount| × price) at `prices`, the book's latest prices; lines
    without a price count by amount alone when nothing is priced.
    """
    if last_good is None or not _held(last_good.positions):
        return False
    if not _held(report.positions):
        return True
    before = _gross(last_good.positions, prices)
    after = _gross(report.positions, prices)
    return before > 0 and after < before * KEPT_SHARE_TO_CONFIRM


def _held(positions: Iterable[Position]) -> bool:
    return any(position.amount for position in positions)


def _gross(positions: Iterable[Position], prices: Mapping[str, Decimal]) -> Decimal:
    return sum(
        (abs(p.amount) * prices[p.asset.symbol] for p in positions if p.asset.symbol in prices),
        Decimal(0),
    )
