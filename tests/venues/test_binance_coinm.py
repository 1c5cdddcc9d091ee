"""Binance COIN-M (`coinm`, `/dapi`) on the fake Binance through ccxt: each margin coin is an
account whose wallet and inverse perpetuals (hedge lines, legs worth their uPnL at the contract's
own mark, read from `/dapi/v1/premiumIndex`) reconcile with Binance's own total of that coin,
followed by the user-data stream, and an ETH share-class book that hedges with them."""

from __future__ import annotations

from contextlib import aclosing
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from equity_daemon.errors import VenueDataError
from equity_daemon.model import PositionKind, ShareClass, Snapshot, VenueReport, VenueState
from equity_daemon.venues.exchange import ExchangeVenue, StreamingExchangeVenue
from equity_daemon.venues.fake_exchange import (
    FakeExchange,
    FakePosition,
    Fault,
    Holding,
    fake_exchange,
)
from tests.reports import snapshot
from tests.venues.exchanges import quotes_at, subscribed, venue_at, with_marks
from tests.venues.test_exchange import FIXED_USD, book_settings, exchange_venue
from tests.venues.test_exchange_inverse import PRICES
from tests.venues.test_market_data import cycled
from tests.venues.test_perpetuals import MARK_PATHS, book_on

pytestmark = pytest.mark.anyio

D = Decimal
# short 15,000 USD of ETH (1,500 contracts of 10 USD) entered at 3,100
SHORT = FakePosition("ETH", D(-15000), D(3100), settle="ETH", inverse=True)
LINE = "ETH/USD:ETH:BOTH"
CONTRACT = "binance:ETH/USD:ETH"  # the priced leg's asset: 1 ETH = mark units of it
SPOT, MARK = D(3000), D(3030)  # the perpetual 1 % over spot
ETH_PRICES = [{"base": "ETH", "quote": "USDT", "sources": ["cex"]}, *FIXED_USD]


def held(fake: FakeExchange, btc: bool = True) -> dict[str, Holding]:
    """The COIN-M wallets, their uPnL that of the fake's positions at its mark (as Binance's
    would be); `btc`: a BTC wallet beside ETH's."""
    pnl = sum((fake.state.position_pnl(p) for p in fake.state.positions if p.inverse), D(0))
    wallets = {"ETH": Holding(balance=D(5), unrealized_pnl=pnl)}
    return wallets | ({"BTC": Holding(balance=D("0.5"))} if btc else {})


def hedges(report: VenueReport) -> dict[str | None, Decimal]:
    return {p.line_id: p.amount for p in report.positions if p.kind is PositionKind.HEDGE}


async def valued(venue: ExchangeVenue, report: VenueReport) -> Snapshot:
    """The report in an ETH book, at spot and at the contract's mark read now from COIN-M."""
    quotes = await with_marks(venue, report, quotes_at(report, PRICES))
    state = VenueState(report, report)
    return snapshot(state, quotes=quotes, now=report.fetched_at, share_class=ShareClass.ETH)


def pnl_at(mark: Decimal) -> Decimal:
    """`SHORT`'s uPnL at `mark`, in ETH: Q × (1/mark − 1/entry)."""
    return 15000 / mark - D(15000) / D(3100)


async def test_coinm_coins_are_accounts_whose_wallet_and_inverse_legs_reconcile_at_the_mark() -> (
    None
):
    async with fake_exchange("binance") as fake:
        fake.set_price("ETH", SPOT, mark=MARK)
        fake.set_positions([SHORT])
        fake.set_account("coinm", held(fake))
        async with venue_at(ExchangeVenue, fake, ("coinm",)) as venue:
            report = await venue.fetch()
            snap = await valued(venue, report)
        asked = fake.calls("/dapi/v1/premiumIndex")
    pnl = fake.state.position_pnl(SHORT)
    assert pnl == pytest.approx(pnl_at(MARK), abs=D("1e-20"))  # 0.1118 ETH, at the mark
    accounts = {(p.account, p.asset.symbol, p.kind.value, p.line_id) for p in report.positions}
    assert accounts == {
        ("coinm:ETH", "ETH", "asset", None),  # the wallet
        ("coinm:ETH", "ETH", "hedge", LINE),
        ("coinm:ETH", "ETH", "unrealized_pnl", LINE),  # the legs: Q / entry ETH, and
        ("coinm:ETH", CONTRACT, "unrealized_pnl", LINE),  # -Q of the contract
        ("coinm:BTC", "BTC", "asset", None),
    }
    legs = {p.asset.symbol: p.amount for p in report.positions if p.kind == "unrealized_pnl"}
    assert legs == {"ETH": D(-15000) / D(3100), CONTRACT: 15000}
    (hedge,) = [p for p in report.positions if p.kind is PositionKind.HEDGE]
    assert hedge.amount == D(-15000) / MARK  # 15,000 USD at the mark
    keys = ("contract", "settle", "pnl_currency", "market_id", "mark_quote")
    assert {k: str(hedge.details[k]) for k in keys} == {
        "contract": "inverse",
        "settle": "ETH",
        "pnl_currency": "ETH",
        "market_id": "ETHUSD_PERP",
        "mark_quote": CONTRACT,
    }
    assert (D(str(hedge.details["contracts"])), D(str(hedge.details["contract_size"]))) == (
        D(1500),
        D(10),
    )
    assert asked == [{"symbol": "ETHUSD_PERP"}]  # the mark: one public COIN-M call
    contract = next(p for p in snap.prices if p.asset == CONTRACT)  # ETH per contract unit
    assert contract.price * MARK == pytest.approx(1, abs=D("1e-40"))
    assert not contract.fallback
    # in ETH: the wallets at their own value, the short's uPnL at its own mark
    assert snap.equity == pytest.approx(5 + pnl + D("0.5") * 20, abs=D("1e-15"))
    assert snap.unrealized_pnl == pytest.approx(pnl, abs=D("1e-15"))
    assert (snap.total_assets, snap.total_debt) == (D("15"), D(0))  # never the legs
    ratios = {item.account: item.ratio for item in snap.reconciliations}
    assert set(ratios) == {"coinm:ETH", "coinm:BTC"}
    assert all(ratio is not None and abs(ratio) < D("1e-12") for ratio in ratios.values())
    (eth,) = [item for item in snap.reconciliations if item.account == "coinm:ETH"]
    assert (eth.label, eth.reported_currency, eth.reported_amount) == (
        "marginBalance",
        "ETH",
        5 + pnl,
    )
    # Binance's uPnL inside the total is the position's, at the mark its answer carried
    assert eth.unexplained_pnl is not None
    assert abs(eth.unexplained_pnl) < D("1e-15")


async def test_a_coinm_position_whose_size_does_not_match_its_notional_fails_the_fetch() -> None:
    def tenfold(answer: Any) -> Any:  # a notional ten times the contracts' at the mark
        return [row | {"notionalValue": str(10 * D(row["notionalValue"]))} for row in answer]

    async with fake_exchange("binance") as fake:
        fake.set_positions([SHORT])
        fake.set_account("coinm", held(fake))
        fake.tamper("/dapi/v1/positionRisk", tenfold)
        async with venue_at(ExchangeVenue, fake, ("coinm",)) as venue:
            with pytest.raises(VenueDataError, match="ETH/USD:ETH size does not match"):
                await venue.fetch()


async def test_a_coin_coinm_lists_empty_has_no_line_and_no_total() -> None:
    def with_an_empty_coin(answer: Any) -> Any:
        empty = {**answer["assets"][0], "asset": "BNB"}
        empty |= dict.fromkeys(("walletBalance", "unrealizedProfit", "marginBalance"), "0")
        return {**answer, "assets": [*answer["assets"], empty]}

    async with fake_exchange("binance") as fake:
        fake.set_account("coinm", {"BTC": Holding(balance=D(1))})
        fake.tamper("/dapi/v1/account", with_an_empty_coin)
        async with venue_at(ExchangeVenue, fake, ("coinm",)) as venue:
            report = await venue.fetch()
    assert [(p.account, p.asset.symbol) for p in report.positions] == [("coinm:BTC", "BTC")]
    assert [total.account for total in report.reported] == ["coinm:BTC"]


async def test_a_coinm_push_patches_the_wallet_its_total_and_the_position() -> None:
    async with fake_exchange("binance") as fake:
        fake.set_price("ETH", SPOT, mark=MARK)
        fake.set_positions([SHORT])
        fake.set_account("coinm", held(fake))
        async with (
            venue_at(StreamingExchangeVenue, fake, ("coinm",)) as venue,
            aclosing(venue.updates()) as updates,
        ):
            first = await anext(updates)
            await subscribed(fake, "coinm")
            # a funding payment into the wallet, and the short doubled
            fake.set_positions([FakePosition("ETH", D(-30000), D(3100), "ETH", inverse=True)])
            fake.set_holding("coinm", "ETH", Holding(balance=D("5.01")))
            assert await fake.push("coinm", coins=["ETH"]) == 1
            with anyio.fail_after(5):
                pushed = await anext(updates)
            snap = await valued(venue, pushed)
    assert hedges(first) == {LINE: D(-15000) / MARK}
    assert hedges(pushed) == {LINE: D(-30000) / D(3100)}  # a push has no mark: at its entry
    wallets = {p.account: p.amount for p in pushed.positions if not p.line_id}
    assert wallets == {"coinm:ETH": D("5.01"), "coinm:BTC": D("0.5")}
    totals = {t.account: t.amount for t in pushed.reported}
    pnl = fake.state.position_pnl(SHORT)
    assert totals["coinm:BTC"] == D("0.5")
    assert totals["coinm:ETH"] == pytest.approx(D("5.01") + pnl, abs=D("1e-20"))  # moved with wb
    # the doubled short is valued at the mark read now; the pushed total and the positions are
    # no longer of one moment, so the wallet is compared (Binance's uPnL on both sides)
    assert snap.unrealized_pnl == pytest.approx(2 * pnl_at(MARK), abs=D("1e-15"))
    assert all(item.unexplained_pnl is None for item in snap.reconciliations)
    ratios = [item.ratio for item in snap.reconciliations]
    assert all(ratio is not None and abs(ratio) < D("1e-12") for ratio in ratios)


async def test_the_coinm_listen_key_is_kept_alive_on_the_dapi() -> None:
    async with fake_exchange("binance") as fake:
        fake.set_account("coinm", {"BTC": Holding(balance=D(1))})
        async with venue_at(StreamingExchangeVenue, fake, ("coinm",)) as venue:
            venue.client("coinm", streaming=True).options["listenKeyRefreshRate"] = 100
            async with aclosing(venue.updates()) as updates:
                await anext(updates)
                await subscribed(fake, "coinm")
                with anyio.fail_after(5):
                    while not fake.calls("/dapi/v1/listenKey") or not any(  # noqa: ASYNC110
                        (seen.method, seen.path) == ("PUT", "/dapi/v1/listenKey")
                        for seen in fake.requests
                    ):
                        await anyio.sleep(0.02)
    assert not any(seen.path == "/fapi/v1/listenKey" for seen in fake.requests)


async def test_an_eth_share_class_book_hedged_on_coinm_is_complete_and_reconciled(
    tmp_path: Path,
) -> None:
    async with fake_exchange("binance") as fake:
        fake.set_price("ETH", SPOT, mark=MARK)
        fake.set_positions([SHORT])
        fake.set_account("coinm", held(fake))
        venue = exchange_venue(fake, ["coinm"], in_transit=False, stream=False)
        prices = [*ETH_PRICES, {"base": "BTC", "quote": "USDT", "sources": ["cex"]}]
        settings = book_settings([venue], prices, share_class="ETH")
        async with cycled(tmp_path, settings) as (run, _):
            snap = run.latest()
    assert snap is not None
    assert snap.complete, snap.problems
    contract = next(p for p in snap.prices if p.asset == CONTRACT)
    assert contract.price * MARK == pytest.approx(1, abs=D("1e-40"))
    assert (contract.sources[0], contract.fallback) == ("cex", False)
    assert snap.equity == pytest.approx(5 + pnl_at(MARK) + 10, abs=D("1e-15"))
    assert set(snap.equity_by_account["cex"]) == {"coinm:ETH", "coinm:BTC"}
    ratios = [item.ratio for item in snap.reconciliations]
    assert len(ratios) == 2
    assert all(ratio is not None and abs(ratio) < D("1e-12") for ratio in ratios)


# 20 ETH held, 15,000 USDT borrowed against them: in ETH the debt moves with the price, and the
# 15,000 USD short of the COIN-M perpetual moves against it
DEBT_WALLET = """
[[positions]]
account = "cold"
asset = "ETH"
amount = "20"

[[positions]]
account = "cold"
asset = "USDT"
amount = "15000"
kind = "debt"
"""


async def test_an_eth_book_hedged_on_coinm_stays_flat_while_spot_and_mark_move_together(
    tmp_path: Path,
) -> None:
    expected = 20 + 5 - D(15000) / D(3100)  # the debt and the short's contract leg cancel
    path = [D(p) for p in (3000, 3300, 3600, 3300, 3000, 2700, 2400, 2700, 3000)]
    async with book_on(
        "binance", tmp_path, DEBT_WALLET, ETH_PRICES, accounts=["coinm"], share_class="ETH"
    ) as book:
        book.fake.set_positions([SHORT])
        seen = []
        for price in path:
            book.fake.set_price("ETH", price)  # the perpetual's mark moves with spot
            book.fake.set_account("coinm", held(book.fake, btc=False))
            snap, events = await book.cycle()
            assert snap.complete, snap.problems
            assert events == []  # neither a threshold nor a reconciliation warning
            (item,) = snap.reconciliations
            assert item.ratio is not None
            assert abs(item.ratio) < D("1e-12")
            seen.append(snap.equity)
    assert (max(path), min(path)) == (D(3600), D(2400))  # ±20 %
    assert all(equity == pytest.approx(expected, abs=D("1e-15")) for equity in seen)


async def test_an_eth_book_hedged_on_coinm_moves_by_the_basis_and_falls_back_to_the_rows_mark(
    tmp_path: Path,
) -> None:
    async with book_on(
        "binance", tmp_path, DEBT_WALLET, ETH_PRICES, accounts=["coinm"], share_class="ETH"
    ) as book:
        book.fake.set_positions([SHORT])
        book.fake.set_price("ETH", SPOT, mark=MARK)
        book.fake.set_account("coinm", held(book.fake, btc=False))
        live, _ = await book.cycle()
        book.fake.fail(MARK_PATHS["coinm"], Fault.SERVER_ERROR)
        fallback, _ = await book.cycle()
    # the short gains in ETH what its premium over spot costs it: 15,000 × (1/3030 − 1/3000)
    expected = 20 + 5 - D(15000) / D(3100) + 15000 / MARK - 15000 / SPOT
    for snap in (live, fallback):
        assert snap.complete, snap.problems
        assert snap.equity == pytest.approx(expected, abs=D("1e-15"))
    prices = [next(p for p in s.prices if p.asset == CONTRACT) for s in (live, fallback)]
    assert [(p.sources[0], p.fallback) for p in prices] == [("cex", False), ("cex position", True)]
