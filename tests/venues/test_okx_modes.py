"""OKX's account modes and contracts on the fake server: the account level (`acctLv`) read
once, borrowing read where each mode shows it (never silently missed), and inverse swaps and
dated futures as hedges whose legs agree with OKX's `totalEq`."""

from __future__ import annotations

import re
from contextlib import aclosing
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from equity_daemon.errors import VenueDataError
from equity_daemon.model import PositionKind, VenueState
from equity_daemon.sanity import check_report
from equity_daemon.venues.fake_exchange import FakeExchange, FakePosition, Holding, OkxDialect
from equity_daemon.venues.fake_exchange.okx import (
    FUTURE,
    INVERSE_SWAP,
    Contract,
    MarginPosition,
)
from tests.reports import snapshot
from tests.venues.exchanges import subscribed, with_marks
from tests.venues.test_exchange import BORROWED, QUOTES, lines, net_worth, venue_on
from tests.venues.test_exchange_stream import next_report
from tests.venues.test_exchange_stream import venue_on as stream_venue_on

pytestmark = pytest.mark.anyio

D = Decimal
CONFIG = "/api/v5/account/config"
CASH = {"USDT": Holding(balance=D(5000)), "BTC": Holding(balance=D("0.1"))}
# Futures mode: a long BTC bought with borrowed USDT, and a short ETH sold for USDT
MARGINS = [
    MarginPosition("BTC-USDT", "BTC", D("0.5"), "USDT", D(20000), D(3), D(59000), upl=D("0.01")),
    MarginPosition("ETH-USDT", "USDT", D(9000), "ETH", D(2), D("0.01"), D(3000)),
]


def okx(fake: FakeExchange) -> OkxDialect:
    assert isinstance(fake.dialect, OkxDialect)
    return fake.dialect


def agrees(report: object) -> None:
    """OKX's own `totalEq` matches the lines, to rounding."""
    snap = snapshot(VenueState(report, report), quotes=QUOTES)  # type: ignore[arg-type]
    (item,) = snap.reconciliations
    assert item.label == "totalEq"
    assert item.ratio is not None
    assert abs(item.ratio) < D("1e-12")


async def test_okx_reads_its_account_mode_once_not_every_cycle() -> None:
    async with venue_on("okx", ("trading",)) as (fake, venue):
        fake.set_account("trading", BORROWED)
        for _ in range(3):
            await venue.fetch()
        assert len(fake.calls(CONFIG)) == 1


@pytest.mark.parametrize("level", ["1", "3", "4"])
async def test_okx_modes_that_keep_debt_in_the_balance_read_it_there(level: str) -> None:
    async with venue_on("okx", ("trading",)) as (fake, venue):
        okx(fake).account_level = level
        fake.set_account("trading", BORROWED)
        report = await venue.fetch()
    found = lines(report)
    assert found[("USDT", "debt", None)] == 1000
    assert found[("ETH", "debt", "interest")] == D("0.001")
    snap = snapshot(VenueState(report, report), quotes=QUOTES)
    assert snap.equity == pytest.approx(net_worth(BORROWED), abs=D("1e-9"))
    agrees(report)


async def test_okx_futures_mode_borrowing_in_isolated_margin_positions_is_debt() -> None:
    async with venue_on("okx", ("trading",)) as (fake, venue):
        okx(fake).account_level = "2"
        okx(fake).margins = list(MARGINS)
        fake.set_account("trading", CASH)
        balance = await venue.client("trading").privateGetAccountBalance()
        report = await venue.fetch()
    (usdt,) = [d for d in balance["data"][0]["details"] if d["ccy"] == "USDT"]
    assert (usdt["liab"], usdt["interest"]) == ("", "")  # the balance shows no debt here
    found = lines(report)
    long_id, short_id = "BTC-USDT:isolated:net", "ETH-USDT:isolated:net"
    assert {k: v for k, v in found.items() if k[2] and k[2].startswith(("BTC-", "ETH-"))} == {
        ("BTC", "asset", long_id): D("0.5"),
        ("USDT", "debt", long_id): D(20000),
        ("USDT", "debt", f"{long_id}:interest"): D(3),
        ("USDT", "asset", short_id): D(9000),
        ("ETH", "debt", short_id): D(2),
        ("ETH", "debt", f"{short_id}:interest"): D("0.01"),
    }
    snap = snapshot(VenueState(report, report), quotes=QUOTES)
    margins = D("0.5") * 60000 - 20003 + 9000 - D("2.01") * 3000
    assert snap.equity == pytest.approx(net_worth(CASH) + margins, abs=D("1e-9"))
    agrees(report)


@pytest.mark.parametrize(
    ("level", "margin_mode", "named"),
    [
        ("2", "cross", "Futures mode (acctLv 2)"),
        ("1", "isolated", "Spot mode (acctLv 1)"),
        ("3", "isolated", "Multi-currency margin (acctLv 3)"),
        ("4", "cross", "Portfolio margin (acctLv 4)"),
    ],
)
async def test_an_okx_margin_position_the_mode_cannot_place_fails_the_venue_naming_the_mode(
    level: str, margin_mode: str, named: str
) -> None:
    row = MarginPosition("BTC-USDT", "BTC", D("0.5"), "USDT", D(20000), mgn_mode=margin_mode)
    async with venue_on("okx", ("trading",)) as (fake, venue):
        okx(fake).account_level = level
        okx(fake).margins = [row]
        fake.set_account("trading", CASH)
        with pytest.raises(VenueDataError, match=rf"{margin_mode} MARGIN .* {re.escape(named)}"):
            await venue.fetch()


async def test_an_okx_mode_switch_fails_one_fetch_and_the_next_reads_the_new_mode() -> None:
    async with venue_on("okx", ("trading",)) as (fake, venue):
        fake.set_account("trading", BORROWED)
        await venue.fetch()
        okx(fake).account_level = "2"  # switched on OKX's site: the balance's liab goes ""
        with pytest.raises(VenueDataError, match=r"liab is empty in Multi-currency margin"):
            await venue.fetch()
        report = await venue.fetch()
        assert len(fake.calls(CONFIG)) == 2
    assert not [p for p in report.positions if p.kind is PositionKind.DEBT]
    assert lines(report)[("USDT", "asset", None)] == D("3997.5")  # cashBal: the loan was spent


async def test_an_okx_account_level_this_mapping_does_not_know_fails_the_venue() -> None:
    async with venue_on("okx", ("trading",)) as (fake, venue):
        okx(fake).account_level = "5"
        with pytest.raises(VenueDataError, match=r"acctLv '5'"):
            await venue.fetch()


async def test_okx_inverse_swaps_and_dated_futures_are_hedges_that_reconcile() -> None:
    contracts = [
        Contract(INVERSE_SWAP, D(-300), D(50000), D(60000)),  # short 30,000 USD of BTC
        Contract(FUTURE, D(20), D(2900), D(3050)),  # long 2 ETH, expiring, at a premium
    ]
    upl_btc, upl_usdt = contracts[0].upl, contracts[1].upl
    assert upl_btc == pytest.approx(D("-0.1"))
    assert upl_usdt == 300  # at the future's own mark, not ETH's 3,000
    held = {
        "BTC": Holding(balance=D(1), unrealized_pnl=upl_btc),
        "USDT": Holding(balance=D(1000), unrealized_pnl=upl_usdt),
    }
    async with venue_on("okx", ("trading",)) as (fake, venue):
        okx(fake).contracts = contracts
        fake.set_account("trading", held)
        report = await venue.fetch()
        quotes = await with_marks(venue, report, QUOTES)
        asked = fake.calls("/api/v5/account/positions")
    assert all("instType" not in query for query in asked)  # every type, futures included
    hedges = {p.line_id: p for p in report.positions if p.kind is PositionKind.HEDGE}
    inverse, future = hedges["BTC/USD:BTC:net"], hedges["ETH/USDT:USDT-261225:net"]
    assert inverse.amount == D("-0.5")  # 30,000 USD at the 60,000 mark
    assert {k: str(inverse.details[k]) for k in ("contract", "settle", "pnl_currency")} == {
        "contract": "inverse",
        "settle": "BTC",
        "pnl_currency": "BTC",
    }
    assert (D(str(inverse.details["notional"])), D(str(inverse.details["contract_size"]))) == (
        D(30000),
        D(100),
    )
    assert future.amount == 2
    legs = {
        (p.asset.symbol, p.line_id): p.amount
        for p in report.positions
        if p.kind is PositionKind.UNREALIZED_PNL
    }
    assert legs[("BTC", "BTC/USD:BTC:net")] == D("-0.6")  # 30,000 USD at the 50,000 entry
    assert legs[("okx:BTC/USD:BTC", "BTC/USD:BTC:net")] == 30000
    assert legs[("okx:ETH/USDT:USDT-261225", "ETH/USDT:USDT-261225:net")] == 2
    snap = snapshot(VenueState(report, report), quotes=quotes)
    assert snap.equity == pytest.approx(net_worth(held), abs=D("1e-9"))
    future_mark = next(p for p in snap.prices if p.asset == "okx:ETH/USDT:USDT-261225")
    assert future_mark.price == 3050
    agrees(report)


async def test_a_streaming_okx_venue_reads_the_mode_again_at_each_resync_only() -> None:
    async with (
        stream_venue_on("okx", "trading", BORROWED, resync_seconds=0.3) as (fake, venue),
        aclosing(venue.updates()) as updates,
    ):
        await next_report(updates)
        assert len(fake.calls(CONFIG)) == 1
        await subscribed(fake, "account", "positions")
        okx(fake).account_level = "2"  # switched: the resync reads the new mode, and its debt
        okx(fake).margins = list(MARGINS)
        fake.set_account("trading", CASH)
        resynced = await next_report(updates)
        assert len(fake.calls(CONFIG)) == 2
    assert lines(resynced)[("USDT", "debt", "BTC-USDT:isolated:net")] == 20000


async def test_a_cross_and_an_isolated_position_on_one_swap_are_two_lines() -> None:
    """OKX holds both at once (each its own `posId`): neither fails the fetch as a repeat."""
    positions = [
        FakePosition("ETH", D(-2), D(3100)),
        FakePosition("ETH", D(1), D(2900), margin_mode="isolated"),
    ]
    pnl = sum(((D(3000) - p.entry_price) * p.size for p in positions), D(0))
    async with venue_on("okx", ("trading",)) as (fake, venue):
        fake.set_positions(positions)
        fake.set_account("trading", {"USDT": Holding(balance=D(1000), unrealized_pnl=pnl)})
        report = check_report(await venue.fetch(), "cex", datetime.now(UTC))
    hedges = {p.line_id: p.amount for p in report.positions if p.kind is PositionKind.HEDGE}
    assert hedges == {"ETH/USDT:USDT:net": -2, "ETH/USDT:USDT:isolated:net": 1}
    margin = {
        p.line_id: p.details["margin_mode"]
        for p in report.positions
        if p.kind is PositionKind.HEDGE
    }
    assert margin == {"ETH/USDT:USDT:net": "cross", "ETH/USDT:USDT:isolated:net": "isolated"}
    agrees(report)
