"""A ban (418 or 429 with `Retry-After`) is the exchange host's: no caller of that host — venue
fetches, market data, a venue's tickers, the poller — sends a request before it ends, and the
metrics and the status page say until when."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.errors import VenueUnavailable
from equity_daemon.history import History
from equity_daemon.runtime.poller import Poller, PollPolicy
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import Settings
from equity_daemon.status_page.data import StatusData
from equity_daemon.status_page.page import render
from equity_daemon.store import PositionStore
from equity_daemon.venues.contract_marks import Contract
from equity_daemon.venues.exchange import ExchangeVenue
from equity_daemon.venues.exchange_budget import RequestBudget
from equity_daemon.venues.fake_exchange import FakeExchange, Fault, Holding, fake_exchange
from equity_daemon.venues.market_data import ExchangeMarket
from tests.reports import NOW, Clock
from tests.venues.exchanges import CREDENTIALS, SECRETS, NoMetrics

pytestmark = pytest.mark.anyio

D = Decimal
ACCOUNT_PATH = "/fapi/v3/account"
BAN = 600  # seconds: Binance's first IP ban is minutes long


def settings(base_url: str) -> Settings:
    key, secret, _ = SECRETS
    return Settings.model_validate(
        {
            "interval_seconds": 10,
            "http": {"port": 0},
            "markets": {"binance-md": {"kind": "binance", "base_url": base_url, "stream": False}},
            "books": {
                "basis": {
                    "share_class": "USDT",
                    "venue_max_age_seconds": 3600,
                    "venues": [
                        {
                            "kind": "binance",
                            "name": "cex",
                            "api_key": key,
                            "secret": secret,
                            "accounts": ["usdm"],
                            "base_url": base_url,
                            "rate_limit": False,
                            "in_transit": False,
                            "interval_seconds": 10,
                            "timeout_seconds": 2,
                        }
                    ],
                    # both price paths: the market's tickers and the venue's own
                    "prices": [
                        {"base": "ETH", "quote": "USDT", "sources": ["binance-md", "cex"]},
                        {"base": "USDC", "quote": "USDT", "fixed": "1"},
                    ],
                }
            },
        }
    )


@asynccontextmanager
async def daemon_on_binance(tmp_path: Path) -> AsyncIterator[tuple[Any, Daemon, History, Clock]]:
    clock = Clock()
    async with fake_exchange("binance") as fake:
        fake.set_account("futures", {"USDT": Holding(balance=D(5000))})
        run = Daemon(settings(fake.base_url), clock)
        history = await History.open(tmp_path / "h.sqlite3")
        try:
            with capture_logs():
                await run.fetch_all_once()
                await run.cycle(history)
                yield fake, run, history, clock
        finally:
            await history.aclose()
            await run.aclose()


async def test_a_ban_heard_by_a_venue_holds_every_caller_of_the_host_until_it_ends(
    tmp_path: Path,
) -> None:
    async with daemon_on_binance(tmp_path) as (fake, run, history, clock):
        fake.fail(ACCOUNT_PATH, Fault.BANNED, retry_after=BAN)
        clock.now += timedelta(seconds=20)
        with capture_logs() as logs:
            await run.fetch_all_once()  # the venue hears the 418
        sent = len(fake.requests)
        for _ in range(5):  # five cycles inside the ban: venue, market and venue tickers
            clock.now += timedelta(seconds=60)
            await run.fetch_all_once()
            await run.cycle(history)
        # nothing sent inside the ban (75fc875: each cycle a venue fetch and two tickers)
        assert [(seen.method, seen.path) for seen in fake.requests[sent:]] == []
        error = run.store.state("cex").latest.error or ""
        exposition = run.metrics()[0].decode()
        metrics = {
            name: run.instruments.registry.get_sample_value(
                f"equity_daemon_exchange_{name}", {"exchange": "binance"}
            )
            for name in ("banned_until_seconds", "bans_total", "requests_refused_total")
        }
        page = render(
            StatusData(
                now=clock(),
                snapshots=run.snapshots(),
                histories={},
                events=[],
                healthy=(True, "ok"),
                ready=(True, []),
                exchange_bans=run.exchange_bans(),
            )
        )
        clock.now += timedelta(seconds=BAN - 5 * 60 + 1)  # the ban, heard at +20 s, is over
        await run.fetch_all_once()
        await run.cycle(history)
        after = fake.requests[sent:]
        latest = run.latest()
    assert [entry["until"] for entry in logs if entry["event"] == "exchange_banned"] == [
        "2026-11-25T12:10:20+00:00"
    ]
    assert "banned until 12:10:20 UTC" in error
    assert metrics["banned_until_seconds"] == (NOW + timedelta(seconds=20 + BAN)).timestamp()
    assert metrics["bans_total"] == 1
    assert (
        metrics["requests_refused_total"] == 15
    )  # each cycle: the account, the market's and the venue's ticker
    assert 'equity_daemon_exchange_banned_until_seconds{exchange="binance"}' in exposition
    assert "binance banned until 12:10:20 UTC" in page
    assert {seen.path for seen in after} >= {ACCOUNT_PATH, "/api/v3/ticker/24hr"}
    assert latest is not None
    assert latest.complete
    assert run.exchange_bans() == {}


def one_budget(fake: FakeExchange, clock: Clock) -> tuple[ExchangeMarket, ExchangeVenue]:
    """A market and a venue of the fake Binance host sharing one request budget."""
    budget = RequestBudget("binance", clock=clock)
    market = ExchangeMarket(
        "md",
        "binance",
        clock,
        base_url=fake.base_url,
        rate_limit=False,
        stream=False,
        budget=budget,
    )
    venue = ExchangeVenue(
        "cex",
        "binance",
        ("usdm",),
        CREDENTIALS,
        clock,
        base_url=fake.base_url,
        rate_limit=False,
        in_transit=False,
        budget=budget,
    )
    return market, venue


async def test_the_poller_waits_out_a_ban_another_caller_heard() -> None:
    """The market data hears the 418; the venue's poller then sends nothing until it ends."""
    clock = Clock()
    async with fake_exchange("binance") as fake:
        market, venue = one_budget(fake, clock)
        store = PositionStore(["cex"], clock)
        poller = Poller(venue, store, PollPolicy(interval=10, timeout=5), clock, NoMetrics())
        try:
            fake.fail("/api/v3/ticker/24hr", Fault.RATE_LIMIT, retry_after=120)
            with pytest.raises(VenueUnavailable, match="retry after 120s"):
                await market.observe("ETH", "USDT")
            sent = len(fake.requests)
            with capture_logs():
                async with anyio.create_task_group() as tg:
                    report = await poller.fetch(tg)
            pause = poller._pause(1)
        finally:
            await market.aclose()
            await venue.aclose()
    assert len(fake.requests) == sent  # refused here, not sent
    assert report.error is not None
    assert "rate limited (banned until 12:02:00 UTC, not sent)" in report.error
    assert pause == 120  # the poller's next try is after the ban, not at its interval


def test_a_later_retry_after_never_shortens_a_ban() -> None:
    clock = Clock()
    budget = RequestBudget("binance", clock=clock)
    budget.ban(600)
    budget.ban(5)
    clock.now += timedelta(seconds=100)
    assert budget.ban_left() == 500
    assert budget.banned_until == NOW + timedelta(seconds=600)


async def test_a_contracts_mark_waits_out_the_hosts_ban_through_the_market_and_the_venue() -> None:
    clock = Clock()
    contract = Contract("binance:ETH/USDT:USDT", "ETHUSDT", "swap", False, "x", "USDT")
    async with fake_exchange("binance") as fake:
        market, venue = one_budget(fake, clock)
        try:
            assert await market.mark(contract) == 3000  # before the ban: asked
            fake.fail(ACCOUNT_PATH, Fault.BANNED, retry_after=BAN)
            with pytest.raises(VenueUnavailable):
                await venue.fetch()
            sent = len(fake.requests)
            for reader in (market, venue):
                with pytest.raises(VenueUnavailable, match="banned until 12:10:00 UTC"):
                    await reader.mark(contract)
            clock.now += timedelta(seconds=BAN + 1)
            after = await venue.mark(contract)
        finally:
            await market.aclose()
            await venue.aclose()
    assert fake.requests[sent:] == [fake.requests[-1]]  # none inside the ban, one after
    assert fake.requests[-1].path == "/fapi/v1/premiumIndex"
    assert after == 3000
