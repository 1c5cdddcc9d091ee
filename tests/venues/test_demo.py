"""The demo venue: a seeded, delta-neutral basis book that streams and quotes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from equity_daemon.calculator import Limits, calculate
from equity_daemon.model import ShareClass, VenueState
from equity_daemon.prices import Quote
from equity_daemon.venues.demo import DemoVenue
from tests.reports import NOW, equity_of

pytestmark = pytest.mark.anyio

EDGES = (("ETH", "USDT"), ("wstETH", "stETH"), ("stETH", "ETH"))


async def value(demo: DemoVenue) -> Decimal:
    report = await demo.fetch()
    quotes = []
    for base, quote in EDGES:
        seen = await demo.observe(base, quote)
        quotes.append(Quote(base, quote, seen.rate, demo.name, seen.at, Limits().venue_max_age))
    snap = calculate(
        book="demo",
        share_class=ShareClass.USDT,
        venues=[VenueState(report, report)],
        quotes=quotes,
        now=NOW,
        sequence=1,
        limits=Limits(),
    )
    assert snap.complete
    return equity_of(snap)


async def test_the_same_seed_walks_the_same_way() -> None:
    a, b = DemoVenue("demo", lambda: NOW, 1, seed=3), DemoVenue("demo", lambda: NOW, 1, seed=3)
    for _ in range(20):
        a.step()
        b.step()
    assert a.market == b.market
    assert a.market.eth_usdt != Decimal(3000)


async def test_equity_moves_with_funding_not_with_the_eth_price() -> None:
    demo = DemoVenue("demo", lambda: NOW, 1, seed=1, volatility=Decimal("0.05"))
    start = await value(demo)
    for _ in range(10):
        demo.step()
    moved = await value(demo)
    assert demo.market.eth_usdt != Decimal(3000)
    # ten steps of funding plus a sliver of staking yield, whatever the price did
    assert Decimal(250) <= moved - start < Decimal(251)


async def test_it_streams_a_report_per_step() -> None:
    demo = DemoVenue("demo", lambda: NOW, 0.001, seed=2)
    updates = demo.updates()
    first = await anext(updates)
    second = await anext(updates)
    assert first.positions != second.positions
    await updates.aclose()  # type: ignore[attr-defined]


async def test_it_quotes_only_its_own_market() -> None:
    demo = DemoVenue("demo", lambda: NOW, 1)
    assert (await demo.observe("ETH", "USDT")).rate == Decimal(3000)
    with pytest.raises(LookupError, match="no BTC/USDT"):
        await demo.observe("BTC", "USDT")
