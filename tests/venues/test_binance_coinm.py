"""Binance COIN-M (`coinm`, `/dapi`) on the fake Binance through ccxt: each margin coin is an
account whose wallet and inverse perpetuals (hedge lines, legs worth their uPnL at the book's
price) reconcile with Binance's own total of that coin, followed by the user-data stream, and
an ETH share-class book that hedges with them."""

from __future__ import annotations

from contextlib import aclosing
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from equity_daemon.model import PositionKind, ShareClass, Snapshot, VenueReport, VenueState
from equity_daemon.venues.exchange import ExchangeVenue, StreamingExchangeVenue
from equity_daemon.venues.fake_exchange import FakeExchange, FakePosition, Holding, fake_exchange
from tests.reports import snapshot
from tests.venues.exchanges import quotes_at, subscribed, venue_at
from tests.venues.test_exchange import FIXED_USD, book_settings, exchange_venue
from tests.venues.test_exchange_inverse import PRICES
from tests.venues.test_market_data import cycled

pytestmark = pytest.mark.anyio

D = Decimal
# short 15,000 USD of ETH (1,500 contracts of 10 USD) entered at 3,100; at 3,000 it gained
SHORT = FakePosition("ETH", D(-15000), D(3100), settle="ETH", inverse=True)
LINE = "ETH/USD:ETH:BOTH"


def held(fake: FakeExchange) -> dict[str, Holding]:
    """The COIN-M wallets, their uPnL that of the fake's positions (as Binance's would be)."""
    pnl = sum((fake.state.position_pnl(p) for p in fake.state.positions if p.inverse), D(0))
    return {"ETH": Holding(balance=D(5), unrealized_pnl=pnl), "BTC": Holding(balance=D("0.5"))}


def hedges(report: VenueReport) -> dict[str | None, Decimal]:
    return {p.line_id: p.amount for p in report.positions if p.kind is PositionKind.HEDGE}


def valued(report: VenueReport) -> Snapshot:
    quotes = quotes_at(report, PRICES)
    state = VenueState(report, report)
    return snapshot(state, quotes=quotes, now=report.fetched_at, share_class=ShareClass.ETH)


async def test_coinm_coins_are_accounts_whose_wallet_and_inverse_legs_reconcile() -> None:
    async with fake_exchange("binance") as fake:
        fake.set_positions([SHORT])
        fake.set_account("coinm", held(fake))
        async with venue_at(ExchangeVenue, fake, ("coinm",)) as venue:
            report = await venue.fetch()
    pnl = fake.state.position_pnl(SHORT)
    assert pnl == pytest.approx(D("0.16129"), abs=D("1e-5"))  # ETH
    accounts = {(p.account, p.asset.symbol, p.kind.value, p.line_id) for p in report.positions}
    assert accounts == {
        ("coinm:ETH", "ETH", "asset", None),  # the wallet
        ("coinm:ETH", "ETH", "hedge", LINE),
        ("coinm:ETH", "ETH", "asset", LINE),  # the legs: Q / entry ETH, and -Q USD
        ("coinm:ETH", "USD", "asset", LINE),
        ("coinm:BTC", "BTC", "asset", None),
    }
    legs = {p.asset.symbol: p.amount for p in report.positions if p.line_id and p.kind == "asset"}
    assert legs == {"ETH": D(-15000) / D(3100), "USD": 15000}
    (hedge,) = [p for p in report.positions if p.kind is PositionKind.HEDGE]
    assert hedge.amount == -5  # 15,000 USD at the 3,000 mark
    assert {k: str(hedge.details[k]) for k in ("contract", "settle", "pnl_currency")} == {
        "contract": "inverse",
        "settle": "ETH",
        "pnl_currency": "ETH",
    }
    assert (D(str(hedge.details["contracts"])), D(str(hedge.details["contract_size"]))) == (
        D(1500),
        D(10),
    )
    snap = valued(report)
    # in ETH: the wallets at their own value, the short's uPnL at the book's price
    assert snap.equity == pytest.approx(5 + pnl + D("0.5") * 20, abs=D("1e-15"))
    ratios = {item.account: item.ratio for item in snap.reconciliations}
    assert set(ratios) == {"coinm:ETH", "coinm:BTC"}
    assert all(ratio is not None and abs(ratio) < D("1e-12") for ratio in ratios.values())
    (eth,) = [item for item in snap.reconciliations if item.account == "coinm:ETH"]
    assert (eth.label, eth.reported_currency, eth.reported_amount) == (
        "marginBalance",
        "ETH",
        5 + pnl,
    )


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
    assert hedges(first) == {LINE: -5}
    assert hedges(pushed) == {LINE: -10}  # at the mark of the REST row it patched
    wallets = {p.account: p.amount for p in pushed.positions if not p.line_id}
    assert wallets == {"coinm:ETH": D("5.01"), "coinm:BTC": D("0.5")}
    totals = {t.account: t.amount for t in pushed.reported}
    pnl = fake.state.position_pnl(SHORT)
    assert totals["coinm:BTC"] == D("0.5")
    assert totals["coinm:ETH"] == pytest.approx(D("5.01") + pnl, abs=D("1e-20"))  # moved with wb
    ratios = [item.ratio for item in valued(pushed).reconciliations]
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
        fake.set_positions([SHORT])
        fake.set_account("coinm", held(fake))
        venue = exchange_venue(fake, ["coinm"], in_transit=False, stream=False)
        prices = [
            {"base": "ETH", "quote": "USDT", "sources": ["cex"]},
            {"base": "BTC", "quote": "USDT", "sources": ["cex"]},
            *FIXED_USD,
        ]
        settings = book_settings([venue], prices, share_class="ETH")
        async with cycled(tmp_path, settings) as (run, _):
            snap = run.latest()
    assert snap is not None
    assert snap.complete
    assert snap.equity == pytest.approx(5 + fake.state.position_pnl(SHORT) + 10, abs=D("1e-15"))
    assert set(snap.equity_by_account["cex"]) == {"coinm:ETH", "coinm:BTC"}
    ratios = [item.ratio for item in snap.reconciliations]
    assert len(ratios) == 2
    assert all(ratio is not None and abs(ratio) < D("1e-12") for ratio in ratios)
