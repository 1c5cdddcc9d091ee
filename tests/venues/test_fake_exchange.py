"""The fake exchange servers: their auth check, their control API, and the parts of each API
beyond balances and positions (transfers, tickers, marks, time) as ccxt reads them."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import pytest

from equity_daemon.venues.fake_exchange import (
    DIALECTS,
    Fault,
    Holding,
    Transfer,
    fake_exchange,
)
from equity_daemon.venues.fake_exchange.state import num
from tests.venues.exchanges import EXCHANGES, connected

pytestmark = pytest.mark.anyio

PRIVATE: dict[str, tuple[str, str, dict[str, object]]] = {
    "binance": ("GET", "/api/v3/account", {"code": -2015}),
    "bybit": ("GET", "/v5/account/wallet-balance", {"retCode": 10003}),
    "okx": ("GET", "/api/v5/account/balance", {"code": "50111"}),
}


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_a_private_call_without_signing_headers_gets_the_exchanges_401(
    exchange: str,
) -> None:
    method, path, body = PRIVATE[exchange]
    async with fake_exchange(exchange) as fake, aiohttp.ClientSession() as http:
        async with http.request(method, fake.base_url + path) as response:
            assert response.status == 401
            assert body.items() <= (await response.json()).items()
        async with http.get(fake.base_url + "/no/such/path") as response:
            assert response.status == 404
    assert [seen.path for seen in fake.requests] == [path, "/no/such/path"]


async def test_binance_wants_the_signature_as_well_as_the_key() -> None:
    async with fake_exchange("binance") as fake, aiohttp.ClientSession() as http:
        headers = {"X-MBX-APIKEY": "k"}
        url = fake.base_url + "/api/v3/account"
        async with http.get(url, headers=headers) as response:
            assert response.status == 401
        async with http.get(url + "?timestamp=1&signature=x", headers=headers) as response:
            assert response.status == 200


async def test_a_fault_for_a_path_not_served_is_a_mistake_in_the_test() -> None:
    fake = fake_exchange("okx")
    with pytest.raises(KeyError, match="okx serves no /api/v3/account"):
        fake.fail("/api/v3/account", Fault.EMPTY)


async def test_faults_are_played_in_order_then_the_route_answers() -> None:
    async with connected("binance") as (fake, client):
        fake.fail("/api/v3/time", Fault.SERVER_ERROR, 2, status=502)
        fake.fail("/api/v3/time", Fault.EMPTY)
        for _ in range(2):
            with pytest.raises(Exception, match="502"):
                await client.fetch_time()
        assert await client.fetch_time() is None  # the empty body
        assert await client.fetch_time() > 1_600_000_000_000


async def test_holdings_can_be_replaced_and_removed() -> None:
    fake = fake_exchange("bybit")
    fake.set_account("unified", {"ETH": Holding(balance=Decimal(1))})
    fake.set_holding("unified", "BTC", Holding(balance=Decimal(2)))
    fake.set_holding("unified", "ETH", None)
    assert list(fake.state.account("unified")) == ["BTC"]


def test_numbers_are_plain_decimal_strings() -> None:
    assert num(Decimal("1E+3")) == "1000"
    assert num(Decimal("1.2500")) == "1.25"
    assert num(Decimal("-0.000")) == "0"
    assert num(Decimal("0.00000001")) == "0.00000001"
    assert num(7) == "7"


# -- money in transit, tickers and marks -----------------------------------------------------

# the raw status each exchange uses for a completed transfer, and one still on its way
STATUSES = {
    "binance": {"deposit": ("1", "0"), "withdrawal": ("6", "4")},
    "bybit": {"deposit": ("3", "1"), "withdrawal": ("success", "Pending")},
    "okx": {"deposit": ("2", "0"), "withdrawal": ("2", "1")},
}


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_deposits_and_withdrawals_keep_amount_txid_and_raw_status(exchange: str) -> None:
    async with connected(exchange) as (fake, client):
        done, pending = STATUSES[exchange]["deposit"]
        fake.add_deposit(Transfer("USDT", Decimal("2500.5"), done, "0xaa", 1_790_000_000_000))
        fake.add_deposit(Transfer("ETH", Decimal(3), pending, "0xbb", 1_790_000_100_000, id="2"))
        done, pending = STATUSES[exchange]["withdrawal"]
        fake.add_withdrawal(
            Transfer("ETH", Decimal("1.5"), pending, "0xcc", 1_790_000_200_000, fee=Decimal(0))
        )
        deposits = await client.fetch_deposits()
        withdrawals = await client.fetch_withdrawals()
    by_tx = {d["txid"]: d for d in deposits}
    assert by_tx["0xaa"]["amount"] == pytest.approx(2500.5)
    assert by_tx["0xaa"]["status"] == "ok"
    assert by_tx["0xbb"]["status"] == "pending"
    assert by_tx["0xbb"]["currency"] == "ETH"
    (withdrawal,) = withdrawals
    assert (withdrawal["txid"], withdrawal["amount"]) == ("0xcc", pytest.approx(1.5))
    assert withdrawal["status"] == "pending"
    assert str(withdrawal["info"].get("status", withdrawal["info"].get("state"))) == pending


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_tickers_and_mark_prices_follow_the_set_prices(exchange: str) -> None:
    async with connected(exchange) as (fake, client):
        fake.set_price("ETH", "3210.5", mark="3211.25")
        spot = await client.fetch_ticker("ETH/USDT")
        swap = await client.fetch_ticker("ETH/USDT:USDT")
        marks = await client.fetch_mark_prices() if exchange != "bybit" else None
    assert spot["last"] == pytest.approx(3210.5)
    assert swap["last"] == pytest.approx(3210.5)
    if exchange == "bybit":
        assert swap["markPrice"] == pytest.approx(3211.25)
    else:
        assert marks is not None
        assert marks["ETH/USDT:USDT"]["markPrice"] == pytest.approx(3211.25)


def test_every_dialect_serves_time_markets_balances_and_positions() -> None:
    for name, dialect in DIALECTS.items():
        fake = fake_exchange(name)
        assert fake.name == name
        assert fake.dialect.name == dialect(fake.state).name
        assert len(fake.paths) >= 9
