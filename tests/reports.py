"""Small builders shared by the tests.

`book_at` and `snapshot` run the calculator; `make_snapshot` builds a `Snapshot` by hand, so
tests of what consumes snapshots (history) stay independent of pricing rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from equity_daemon.calculator import Limits, calculate
from equity_daemon.model import (
    Asset,
    Position,
    PositionKind,
    PriceUsed,
    Problem,
    ProblemKind,
    ShareClass,
    Snapshot,
    VenueReport,
    VenueState,
    VenueSummary,
)
from equity_daemon.monitor import ThresholdRule
from equity_daemon.prices import Quote, QuoteFailure
from equity_daemon.tracker import BookTracker

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Clock:
    """Clocks the test moves by hand.

    `clock.now += timedelta(...)` is time passing: the wall and the monotonic clock move
    together. `clock.step(timedelta(...))` moves the wall clock alone, as NTP or an operator may.
    """

    def __init__(self, now: datetime = NOW) -> None:
        self._now = now
        self._monotonic = 1000.0

    @property
    def now(self) -> datetime:
        return self._now

    @now.setter
    def now(self, value: datetime) -> None:
        self._monotonic += (value - self._now).total_seconds()
        self._now = value

    def step(self, delta: timedelta) -> None:
        self._now += delta

    def __call__(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic


def pos(
    venue: str,
    symbol: str,
    amount: str | Decimal,
    kind: PositionKind = PositionKind.ASSET,
    account: str = "main",
    **details: str | Decimal,
) -> Position:
    return Position(venue, account, Asset(symbol), Decimal(amount), kind, details)


def ok(*positions: Position, venue: str | None = None, age: timedelta = timedelta(0)) -> VenueState:
    name = venue or positions[0].venue
    report = VenueReport(name, NOW - age, tuple(positions))
    return VenueState(latest=report, last_good=report)


def failed(good: VenueState | None, venue: str, reason: str) -> VenueState:
    report = VenueReport.failed(venue, NOW, reason)
    return VenueState(latest=report, last_good=None if good is None else good.last_good)


def quote(
    base: str,
    quote: str,
    rate: str | Decimal,
    source: str = "binance",
    age: timedelta = timedelta(0),
    rank: int = 0,
) -> Quote:
    return Quote(base, quote, Decimal(rate), source, NOW - age, timedelta(minutes=5), rank)


ETH_3000 = (quote("ETH", "USDT", "3000"),)


def snapshot(
    *venues: VenueState,
    quotes: tuple[Quote, ...] = ETH_3000,
    share_class: ShareClass = ShareClass.USDT,
    limits: Limits | None = None,
    now: datetime = NOW,
    quote_failures: Sequence[QuoteFailure] = (),
    last_good_prices: Mapping[str, PriceUsed] | None = None,
) -> Snapshot:
    return calculate(
        book="basis",
        share_class=share_class,
        venues=venues,
        quotes=quotes,
        now=now,
        sequence=1,
        limits=limits or Limits(),
        quote_failures=quote_failures,
        last_good_prices=last_good_prices or {},
    )


def equity_of(snap: Snapshot) -> Decimal:
    """The equity of a snapshot the test expects to know it; fails naming why it does not."""
    assert snap.equity is not None, snap.unknown_because()
    return snap.equity


def known(figures: Iterable[Decimal | None]) -> list[Decimal]:
    """Breakdown entries a test expects to be known (a complete snapshot's are)."""
    found = list(figures)
    assert None not in found
    return [figure for figure in found if figure is not None]


def tracker(clock: Callable[[], datetime], book: str = "basis", **settings: Any) -> BookTracker:
    """A USDT book's tracker with the default limits and threshold rule (`settings`: any other
    `BookTracker` argument)."""
    defaults: dict[str, Any] = {
        "share_class": ShareClass.USDT,
        "limits": Limits(),
        "rule": ThresholdRule(),
    }
    return BookTracker(book=book, clock=clock, **(defaults | settings))


def book_at(equity: str | Decimal, *, complete: bool = True, sequence: int = 1) -> Snapshot:
    """A USDT book whose equity is `equity`; incomplete books carry a failed venue too."""
    venues = [ok(pos("binance", "USDT", equity))]
    if not complete:
        venues.append(failed(None, "okx", "down"))
    snap = snapshot(*venues)
    return replace(snap, sequence=sequence, at=NOW + timedelta(minutes=sequence))


def make_snapshot(
    book: str = "basis",
    sequence: int = 1,
    equity: Decimal | str = Decimal(1000),
    at: datetime | None = None,
    complete: bool = True,
) -> Snapshot:
    """A USDT book holding `equity` on one venue, `binance`.

    Args:
        book: the book's name.
        sequence: the snapshot's sequence number.
        equity: assets minus debt; a negative value is all debt.
        at: when it was taken; `sequence` minutes after `tests.reports.NOW` by default.
        complete: when false, the snapshot carries a failed venue `okx` (`complete` is derived
            from `problems`, so there is no other way to make one incomplete).
    """
    value = Decimal(equity)
    when = NOW + timedelta(minutes=sequence) if at is None else at
    venues = [VenueSummary("binance", "ok", when, timedelta(0), None, None)]
    problems: tuple[Problem, ...] = ()
    if not complete:
        venues.append(VenueSummary("okx", "failed", None, None, None, "down"))
        problems = (Problem(ProblemKind.FAILED_VENUE, "okx", "down (never succeeded)"),)
    return Snapshot(
        book=book,
        share_class=ShareClass.USDT,
        at=when,
        sequence=sequence,
        total_assets=max(value, Decimal(0)),
        total_debt=max(-value, Decimal(0)),
        equity=value,
        equity_by_venue={"binance": value},
        equity_by_asset={"USDT": value},
        excluded=(),
        prices=(),
        venues=tuple(venues),
        problems=problems,
    )


HOSTILE_ASSET = "<img src=x onerror=alert(1)>"
HOSTILE_REASON = """<script>alert("x")</script> & 'quoted'"""


def basis_doc() -> dict[str, Any]:
    """A `/snapshot` document of a complete book on two venues, hedged, with a locked line."""
    wallet = ok(
        pos("binance", "USDT", "150000"),
        pos("binance", "ETH", "120", account="spot"),
        pos(
            "binance",
            "ETH",
            "-120",
            PositionKind.HEDGE,
            "usdm",
            unrealized_pnl="-42.5",
            pnl_currency="USDT",
        ),
        pos("binance", "ETH", "2", PositionKind.LOCKED, "etherfi"),
    )
    snap = snapshot(wallet, ok(pos("okx", "USDT", "2500")))
    return snap.to_json() | {"age_seconds": 3.0, "stale_after_seconds": 120.0, "stale": False}


def hostile_doc() -> dict[str, Any]:
    """A `/snapshot` document with what a venue could put before a page: markup in an asset,
    an account and an error (an incomplete book: the asset has no price, the venue failed)."""
    wallet = ok(
        pos("binance", "USDT", "1000", account=HOSTILE_REASON),
        pos("binance", HOSTILE_ASSET, "5"),
    )
    snap = snapshot(wallet, failed(None, "okx", HOSTILE_REASON))
    return snap.to_json() | {"age_seconds": 1.0, "stale_after_seconds": 120.0, "stale": False}
