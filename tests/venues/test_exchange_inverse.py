"""Bybit inverse perpetuals (`BTCUSD`: 1 USD contracts settled in BTC) in the unified account:
read with `category=inverse` beside the USDT and USDC ones, each a hedge line and two legs worth
its uPnL at the contract's own mark, reconciled with Bybit's `totalEquity`, and followed by the
stream. On the fake Bybit through ccxt."""

from __future__ import annotations

from contextlib import aclosing
from decimal import Decimal

import anyio
import pytest

from equity_daemon.model import PositionKind, VenueReport, VenueState
from equity_daemon.venues.exchange import ExchangeVenue, StreamingExchangeVenue
from equity_daemon.venues.fake_exchange import FakePosition, Holding, fake_exchange
from tests.reports import snapshot
from tests.venues.exchanges import quotes_at, subscribed, venue_at, with_marks

pytestmark = pytest.mark.anyio

D = Decimal
# (base, quote, rate, source): quoted at the time of the report they value
PRICES = (
    ("ETH", "USDT", "3000", None),
    ("BTC", "USDT", "60000", None),
    ("USD", "USDT", "1", "fixed"),
)


# short 30,000 USD of BTC entered at 50,000 (0.6 BTC); at 60,000 it has lost 0.1 BTC
INVERSE = FakePosition("BTC", D(-30000), D(50000), settle="BTC", inverse=True)
LINEAR = FakePosition("ETH", D(-2), D(3100))  # +200 USDT at 3,000
UNIFIED = {
    "USDT": Holding(balance=D(5000), unrealized_pnl=D(200)),
    "BTC": Holding(balance=D(1), unrealized_pnl=D("-0.1")),
}


def hedges(report: VenueReport) -> dict[str | None, Decimal]:
    return {p.line_id: p.amount for p in report.positions if p.kind is PositionKind.HEDGE}


async def test_bybit_inverse_positions_are_hedge_lines_with_inverse_legs_that_reconcile() -> None:
    async with fake_exchange("bybit") as fake:
        # the inverse contract trades at 62,500 with BTC at 60,000: the short has lost
        # 30,000 / 50,000 - 30,000 / 62,500 = 0.12 BTC, worth 7,200 USDT
        fake.set_price("BTC", 60000, mark=62500)
        fake.set_account("unified", {**UNIFIED, "BTC": Holding(D(1), unrealized_pnl=D("-0.12"))})
        fake.set_positions([LINEAR, INVERSE])
        async with venue_at(ExchangeVenue, fake, ("unified",)) as venue:
            report = await venue.fetch()
            quotes = await with_marks(venue, report, quotes_at(report, PRICES))
        asked = fake.calls("/v5/position/list")
    assert {q.get("category") for q in asked} == {"linear", "inverse"}
    assert all("settleCoin" not in q for q in asked if q.get("category") == "inverse")
    assert hedges(report) == {"ETH/USDT:USDT:0": D(-2), "BTC/USD:BTC:0": D("-0.48")}  # at mark
    (short,) = [p for p in report.positions if p.line_id == "BTC/USD:BTC:0" and p.kind == "hedge"]
    details = {k: str(v) for k, v in short.details.items()}
    assert {k: details.get(k) for k in ("contract", "settle", "pnl_currency", "side")} == {
        "contract": "inverse",
        "settle": "BTC",
        "pnl_currency": "BTC",
        "side": "short",
    }
    assert (D(details["contracts"]), D(details["notional"])) == (D(30000), D(30000))  # USD
    legs = {
        p.asset.symbol: p.amount
        for p in report.positions
        if p.kind is PositionKind.UNREALIZED_PNL and p.line_id == "BTC/USD:BTC:0"
    }
    assert legs == {"BTC": D("-0.6"), "bybit:BTC/USD:BTC": D(30000)}  # Q / entry, and Q
    snap = snapshot(VenueState(report, report), quotes=quotes, now=report.fetched_at)
    # the wallet at its own value, and each position's uPnL at its own mark, in BTC at spot
    assert snap.equity == 5000 + 60000 + 200 - D("0.12") * 60000
    assert snap.unrealized_pnl == 200 - D("0.12") * 60000
    (item,) = snap.reconciliations
    assert item.label == "totalEquity"
    assert item.ratio is not None
    assert abs(item.ratio) < D("1e-12")
    assert item.unexplained_pnl == 0


async def test_a_pushed_inverse_position_patches_the_snapshot() -> None:
    async with fake_exchange("bybit") as fake:
        fake.set_account("unified", UNIFIED)
        fake.set_positions([INVERSE])
        async with (
            venue_at(StreamingExchangeVenue, fake, ("unified",)) as venue,
            aclosing(venue.updates()) as updates,
        ):
            first = await anext(updates)
            await subscribed(fake, "wallet", "position")
            fake.set_positions([FakePosition("BTC", D(-60000), D(50000), "BTC", inverse=True)])
            assert await fake.push("position") == 1
            with anyio.fail_after(5):
                pushed = await anext(updates)
    assert hedges(first) == {"BTC/USD:BTC:0": D("-0.5")}
    assert hedges(pushed) == {"BTC/USD:BTC:0": D(-1)}
