"""ccxt 4.5, pointed at the fake servers, loads markets, balances of every account type and
positions, and its own parsers read the fake's payloads as they read the exchanges'."""

from __future__ import annotations

import logging
from decimal import Decimal

import anyio
import ccxt.pro as ccxtpro
import pytest

from equity_daemon.venues.exchange_client import (
    BALANCES,
    STREAM_PING_MS,
    Credentials,
    create_exchange,
    fetch_balance,
    fetch_positions,
)
from equity_daemon.venues.fake_exchange import FakePosition, FakeState, Holding, fake_exchange
from tests.venues.exchanges import CREDENTIALS, EXCHANGES, SECRETS, connected

pytestmark = pytest.mark.anyio

D = Decimal
MARKET_PATHS = {
    "binance": {"/api/v3/exchangeInfo", "/fapi/v1/exchangeInfo"},
    "bybit": {"/v5/asset/coin/query-info", "/v5/market/instruments-info"},
    "okx": {"/api/v5/asset/currencies", "/api/v5/public/instruments"},
}


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_markets_load_trimmed_to_spot_and_linear_perpetuals(exchange: str) -> None:
    async with connected(exchange) as (fake, client):
        await client.load_markets()
    assert {"BTC/USDT", "ETH/USDT", "BTC/USDT:USDT", "ETH/USDT:USDT"} <= set(client.markets)
    assert client.markets["ETH/USDT:USDT"]["swap"]
    assert client.markets["ETH/USDT:USDT"]["linear"]
    assert client.markets["ETH/USDC:USDC"]["settle"] == "USDC"
    assert {seen.path for seen in fake.requests} == MARKET_PATHS[exchange]


@pytest.mark.parametrize(("exchange", "account"), [(e, a) for e in EXCHANGES for a in BALANCES[e]])
async def test_every_account_type_fetches_and_passes_the_check(exchange: str, account: str) -> None:
    async with connected(exchange) as (fake, client):
        fake.set_holding(account, "USDT", Holding(balance=D("1234.5"), locked=D("0.5")))
        fake.set_holding("isolated/ETHUSDT", "USDT", Holding(balance=D("1234.5")))
        balance = await fetch_balance(client, "cex", account)
    assert balance["USDT"]["total"] == pytest.approx(1234.5)


async def test_binance_margin_debt_is_borrowed_plus_interest_and_net_asset_is_sent() -> None:
    async with connected("binance") as (fake, client):
        eth = Holding(balance=D(10), borrowed=D(4), interest=D("0.0125"))
        fake.set_holding("margin", "ETH", eth)
        fake.set_holding("isolated/ETHUSDT", "ETH", Holding(balance=D(3), borrowed=D(1)))
        margin = await fetch_balance(client, "cex", "margin")
        isolated = await fetch_balance(client, "cex", "isolated")
    assert margin["ETH"]["total"] == pytest.approx(10)
    assert margin["ETH"]["debt"] == pytest.approx(4.0125)
    (row,) = margin["info"]["userAssets"]
    assert (row["borrowed"], row["interest"], row["netAsset"]) == ("4", "0.0125", "5.9875")
    assert isolated["ETH"]["debt"] == pytest.approx(1)
    assert isolated["info"]["assets"][0]["baseAsset"]["totalAsset"] == "3"


async def test_binance_futures_total_is_margin_balance() -> None:
    async with connected("binance") as (fake, client):
        usdt = Holding(balance=D(1000), unrealized_pnl=D(-50), initial_margin=D(100))
        fake.set_holding("futures", "USDT", usdt)
        balance = await fetch_balance(client, "cex", "futures")
    assert balance["USDT"] == {"free": 850.0, "used": 100.0, "total": 950.0}
    assert balance["info"]["totalMarginBalance"] == "950"
    assert int(balance["info"]["assets"][0]["updateTime"]) > 0  # ccxt skips updateTime 0


async def test_binance_portfolio_margin_reads_wallet_and_pnl() -> None:
    async with connected("binance") as (fake, client):
        fake.set_holding("portfolio", "USDT", Holding(balance=D(700), unrealized_pnl=D(-7)))
        balance = await fetch_balance(client, "cex", "portfolio")
    assert balance["USDT"]["total"] == pytest.approx(693)
    assert balance["info"][0]["crossMarginBorrowed"] == "0"


async def test_bybit_coin_equity_and_borrow_amount() -> None:
    async with connected("bybit") as (fake, client):
        eth = Holding(balance=D(10), borrowed=D(2), interest=D("0.01"), unrealized_pnl=D(1))
        fake.set_holding("unified", "ETH", eth)
        fake.set_holding("unified", "DUST", Holding())  # zero both ways: Bybit leaves it out
        balance = await fetch_balance(client, "cex", "unified")
    assert balance["ETH"]["total"] == pytest.approx(10)  # walletBalance, borrowed coins in
    assert balance["ETH"]["debt"] == pytest.approx(2.01)  # borrowAmount + accruedInterest
    (account,) = balance["info"]["result"]["list"]
    (coin,) = account["coin"]
    assert (coin["coin"], coin["equity"], coin["borrowAmount"]) == ("ETH", "8.99", "2")
    assert account["totalEquity"] == "26970"  # 8.99 ETH at 3000 USD


async def test_okx_eq_is_already_net_and_liab_is_only_in_info() -> None:
    async with connected("okx") as (fake, client):
        fake.set_holding("trading", "USDT", Holding(borrowed=D("130047.36")))  # borrowed, sold
        fake.set_holding("trading", "ETH", Holding(balance=D(2), unrealized_pnl=D("0.5")))
        balance = await fetch_balance(client, "cex", "trading")
    assert balance["USDT"]["total"] == pytest.approx(-130047.36)
    assert "debt" not in balance["USDT"]  # ccxt maps no debt for OKX
    details = {row["ccy"]: row for row in balance["info"]["data"][0]["details"]}
    assert (details["USDT"]["eq"], details["USDT"]["liab"]) == ("-130047.36", "130047.36")
    assert details["ETH"]["eq"] == "2.5"


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_positions_parse_contracts_side_and_pnl(exchange: str) -> None:
    state = FakeState()
    state.positions = [
        FakePosition("ETH", D(-2), D(3100)),
        FakePosition("BTC", D("0.5"), D(58000)),
        FakePosition("BTC", D(0), D(1)),  # closed: not listed
    ]
    async with connected(exchange, state) as (_, client):
        positions = await fetch_positions(client, "cex")
    by_symbol = {p["symbol"]: p for p in positions}
    assert set(by_symbol) == {"ETH/USDT:USDT", "BTC/USDT:USDT"}
    eth, btc = by_symbol["ETH/USDT:USDT"], by_symbol["BTC/USDT:USDT"]
    assert (eth["side"], eth["unrealizedPnl"]) == ("short", pytest.approx(200))
    assert (btc["side"], btc["unrealizedPnl"]) == ("long", pytest.approx(1000))
    # OKX counts contracts of 0.1 ETH and 0.01 BTC; the others count base units
    contracts = {"okx": (20, 50)}.get(exchange, (2, 0.5))
    assert (eth["contracts"], btc["contracts"]) == pytest.approx(contracts)


async def test_bybit_positions_follow_the_cursor_and_each_settle_coin() -> None:
    state = FakeState(page_size=1)
    state.positions = [
        FakePosition("ETH", D(1), D(3000)),
        FakePosition("BTC", D(-1), D(60000)),
        FakePosition("ETH", D(3), D(2900), settle="USDC"),
    ]
    async with connected("bybit", state) as (fake, client):
        usdt = await fetch_positions(client, "cex")
        usdc = await fetch_positions(client, "cex", {"settleCoin": "USDC"})
    assert sorted(p["symbol"] for p in usdt) == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    assert [p["symbol"] for p in usdc] == ["ETH/USDC:USDC"]
    queries = fake.calls("/v5/position/list")
    assert [(q["settleCoin"], q.get("cursor")) for q in queries] == [
        ("USDT", None),
        ("USDT", "page:1"),
        ("USDC", None),
    ]


async def test_binance_loads_leverage_brackets_before_position_risk() -> None:
    async with connected("binance") as (fake, client):
        await fetch_positions(client, "cex")
    paths = [seen.path for seen in fake.requests]
    assert paths.index("/fapi/v1/leverageBracket") < paths.index("/fapi/v3/positionRisk")


def test_an_unsupported_exchange_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported exchange 'kraken'"):
        create_exchange("kraken", CREDENTIALS)


def test_credentials_never_show_in_a_repr() -> None:
    text = repr(Credentials("k" * 8, "s" * 8, "p" * 8))
    assert not any(secret in text for secret in ("kkkk", "ssss", "pppp"))


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_ccxt_wire_logging_stays_quiet_even_at_debug(
    exchange: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with connected(exchange) as (_, client):
        await fetch_balance(client, "cex", next(iter(BALANCES[exchange])))
    assert not [r for r in caplog.records if r.name.startswith("equity_daemon.ccxt")]
    assert not [r for r in caplog.records if any(s in r.getMessage() for s in SECRETS)]


WATCHED = {"binance": {"type": "future"}, "bybit": {}, "okx": {}}


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_the_private_socket_pings_every_20_seconds_not_binances_180(exchange: str) -> None:
    async with fake_exchange(exchange) as fake:
        client = create_exchange(
            exchange, CREDENTIALS, streaming=True, base_url=fake.base_url, rate_limit=False
        )
        try:
            with anyio.move_on_after(1):  # subscribed; no push comes
                await client.watch_balance(WATCHED[exchange])
            # ccxt also files a future named `authenticationFlights` among its clients
            sockets = [c for url, c in client.clients.items() if url.startswith("ws")]
            opened = [socket.connected.done() for socket in sockets]
        finally:
            await client.close()
    assert sockets
    assert all(opened)
    # the interval ccxt's own ping loop sleeps (`Client.ping_loop`), on every socket it opened
    assert {socket.keepAlive for socket in sockets} == {STREAM_PING_MS} == {20_000}
    assert ccxtpro.binance().streaming["keepAlive"] == 180_000  # ccxt's default, overridden
