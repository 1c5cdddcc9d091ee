"""A market the exchange lists after start: its position is read (REST and push) after one reload
of the host's markets, and an unknown symbol never costs more than one reload per interval."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import anyio
import pytest

from equity_daemon.errors import VenueDataError
from equity_daemon.model import PositionKind, VenueReport
from equity_daemon.venues.contract_marks import Contract
from equity_daemon.venues.exchange import ExchangeVenue, StreamingExchangeVenue
from equity_daemon.venues.exchange_listings import RELOAD_EVERY
from equity_daemon.venues.fake_exchange import FakeExchange, FakePosition, Market, fake_exchange
from equity_daemon.venues.market_data import ExchangeMarket
from tests.reports import Clock
from tests.venues.exchanges import CREDENTIALS, subscribed

pytestmark = pytest.mark.anyio

D = Decimal
# the account with perpetuals, its stream topic of positions, and where ccxt loads its markets
MAIN = {"binance": "usdm", "bybit": "unified", "okx": "trading"}
POSITIONS_TOPIC = {"binance": "account", "bybit": "position", "okx": "positions"}
MARKETS_PATH = {
    "binance": "/fapi/v1/exchangeInfo",
    "bybit": "/v5/market/instruments-info",
    "okx": "/api/v5/public/instruments",
}
SOL = FakePosition("SOL", D(10), D(90))


@asynccontextmanager
async def venue_on(
    exchange: str,
    kind: type[ExchangeVenue] = ExchangeVenue,
    accounts: tuple[str, ...] | None = None,
    **extra: Any,
) -> AsyncIterator[tuple[FakeExchange, Any, Clock]]:
    """A venue of `kind` reading `accounts` (the one with perpetuals) on a fake `exchange`, on
    a test clock."""
    clock = Clock()
    async with fake_exchange(exchange) as fake:
        venue = kind(
            "cex",
            exchange,
            accounts or (MAIN[exchange],),
            CREDENTIALS,
            clock,
            base_url=fake.base_url,
            rate_limit=False,
            in_transit=False,
            **extra,
        )
        try:
            yield fake, venue, clock
        finally:
            await venue.aclose()


def list_sol(fake: FakeExchange) -> None:
    """SOL is listed (spot and perpetual), and the account opens a long in it."""
    fake.state.markets.append(Market("SOL"))
    fake.set_price("SOL", 100)
    fake.set_positions([SOL])


def hedges(report: VenueReport) -> dict[str, Decimal]:
    return {
        str(p.details["symbol"]): p.amount for p in report.positions if p.kind is PositionKind.HEDGE
    }


def markets_requests(fake: FakeExchange) -> int:
    """Requests ccxt made to load the contract markets (several per load on Bybit and OKX)."""
    return len(fake.calls(MARKETS_PATH[fake.name]))


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_a_position_in_a_market_listed_after_start_is_read_after_one_reload(
    exchange: str,
) -> None:
    async with venue_on(exchange) as (fake, venue, _):
        await venue.fetch()  # ccxt loads the markets: SOL is not one of them
        at_start = markets_requests(fake)
        list_sol(fake)
        report = await venue.fetch()
        again = await venue.fetch()
    assert hedges(report) == {"SOL/USDT:USDT": 10}
    assert hedges(again) == {"SOL/USDT:USDT": 10}
    assert markets_requests(fake) == 2 * at_start  # at start, and once for the new listing


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_a_pushed_position_in_a_market_listed_after_start_does_not_end_the_stream(
    exchange: str,
) -> None:
    async with (
        venue_on(exchange, StreamingExchangeVenue) as (fake, venue, _),
        aclosing(venue.updates()) as updates,
    ):
        with anyio.fail_after(5):
            await anext(updates)
        await subscribed(fake, POSITIONS_TOPIC[exchange])
        list_sol(fake)
        assert await fake.push(POSITIONS_TOPIC[exchange]) == 1
        with anyio.fail_after(5):
            pushed = await anext(updates)
    assert hedges(pushed) == {"SOL/USDT:USDT": 10}


async def test_an_unknown_symbol_reloads_the_markets_at_most_once_per_interval() -> None:
    async with venue_on("binance") as (fake, venue, clock):
        await venue.fetch()
        fake.set_positions([SOL])  # SOL is not listed: each fetch fails, one reload a while
        for _ in range(3):
            with pytest.raises(VenueDataError, match="unlisted market 'SOLUSDT'"):
                await venue.fetch()
            clock.now += timedelta(seconds=RELOAD_EVERY / 4)
        assert markets_requests(fake) == 2
        clock.now += timedelta(seconds=RELOAD_EVERY)
        list_sol(fake)
        assert hedges(await venue.fetch()) == {"SOL/USDT:USDT": 10}
    assert markets_requests(fake) == 3


async def test_instances_of_one_host_share_a_reload() -> None:
    """Two account types of one venue (two ccxt instances) miss the same new market: one
    reload, the other instance takes its markets over."""
    async with venue_on("binance", accounts=("usdm", "portfolio_margin")) as (fake, venue, _):
        await venue.fetch()
        list_sol(fake)
        report = await venue.fetch()
    assert {p.account for p in report.positions if p.kind is PositionKind.HEDGE} == {
        "usdm",
        "portfolio_margin",
    }
    assert markets_requests(fake) == 3  # each instance at its start, and one reload


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_market_data_prices_a_spot_market_listed_after_start(exchange: str) -> None:
    clock = Clock()
    async with fake_exchange(exchange) as fake:
        market = ExchangeMarket(
            "prices",
            exchange,
            clock,
            base_url=fake.base_url,
            rate_limit=False,
            stream=False,
        )
        try:
            await market.observe("ETH", "USDT")
            list_sol(fake)
            seen = await market.observe("SOL", "USDT")
        finally:
            await market.aclose()
    assert seen.rate == 100


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_a_contract_listed_after_start_is_valued_at_its_exchanges_live_mark(
    exchange: str,
) -> None:
    """Its mark is asked by the market id the reloaded markets gave the position: the venue's
    and a market's instance, which never loaded it, read it alike."""
    async with venue_on(exchange) as (fake, venue, clock):
        market = ExchangeMarket(
            "prices", exchange, clock, base_url=fake.base_url, rate_limit=False, stream=False
        )
        try:
            await venue.fetch()
            await market.observe("ETH", "USDT")  # its markets are loaded: SOL is not one
            list_sol(fake)
            fake.set_price("SOL", 100, mark="100.5")
            report = await venue.fetch()
            (contract,) = [c for p in report.positions if (c := Contract.of(p)) is not None]
            marks = [await reader.mark(contract) for reader in (venue, market)]
        finally:
            await market.aclose()
    assert (contract.asset, contract.market_id) == (
        f"{exchange}:SOL/USDT:USDT",
        {"binance": "SOLUSDT", "bybit": "SOLUSDT", "okx": "SOL-USDT-SWAP"}[exchange],
    )
    assert marks == [D("100.5"), D("100.5")]
