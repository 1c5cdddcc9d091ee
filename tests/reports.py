"""Small builders for venue reports and quotes, shared by the calculator tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from equity_daemon.calculator import Limits, calculate
from equity_daemon.model import (
    Asset,
    Position,
    PositionKind,
    ShareClass,
    Snapshot,
    VenueReport,
    VenueState,
)
from equity_daemon.prices import Quote

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Clock:
    """A wall clock the test moves by hand: `clock.now += timedelta(...)`."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


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
) -> Snapshot:
    return calculate(
        book="basis",
        share_class=share_class,
        venues=venues,
        quotes=quotes,
        now=now,
        sequence=1,
        limits=limits or Limits(),
    )


def book_at(equity: str | Decimal, *, complete: bool = True, sequence: int = 1) -> Snapshot:
    """A USDT book whose equity is `equity`; incomplete books carry a failed venue too."""
    venues = [ok(pos("binance", "USDT", equity))]
    if not complete:
        venues.append(failed(None, "okx", "down"))
    snap = snapshot(*venues)
    return replace(snap, sequence=sequence, at=NOW + timedelta(minutes=sequence))
