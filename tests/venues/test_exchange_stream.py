"""The exchange venue following Bybit's private stream on the fake server: pushes patch the REST
snapshot (never replace it), a REST resync owns the state, and the real poller and daemon carry a
push to the store and the next snapshot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.clock import SystemClock
from equity_daemon.errors import VenueAuthError, VenueUnavailable
from equity_daemon.history import History
from equity_daemon.model import PositionKind, Snapshot, VenueReport, VenueState
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import Settings
from equity_daemon.venues.base import StreamingVenue
from equity_daemon.venues.exchange import ExchangeVenue, StreamingExchangeVenue
from equity_daemon.venues.fake_exchange import (
    BinanceDialect,
    FakeExchange,
    FakePosition,
    Holding,
    fake_exchange,
)
from tests.reports import equity_of
from tests.venues.exchanges import CREDENTIALS, SECRETS, subscribed, venue_at

pytestmark = pytest.mark.anyio

D = Decimal
START = {"USDT": Holding(balance=D(1000)), "ETH": Holding(balance=D(2), borrowed=D(1))}


@asynccontextmanager
async def venue_on(
    exchange: str = "bybit",
    account: str = "unified",
    start: Mapping[str, Holding] = START,
    fake_account: str | None = None,
    **extra: Any,
) -> AsyncIterator[tuple[FakeExchange, StreamingExchangeVenue]]:
    """A streaming venue of one account type on a fake exchange holding `start` there (in the
    fake's `fake_account` where the fake names it otherwise)."""
    async with (
        fake_exchange(exchange) as fake,
        venue_at(StreamingExchangeVenue, fake, (account,), **extra) as venue,
    ):
        fake.set_account(fake_account or account, start)
        yield fake, venue


def amounts(report: VenueReport, kind: PositionKind = PositionKind.ASSET) -> dict[str, Decimal]:
    return {p.asset.symbol: p.amount for p in report.positions if p.kind is kind and not p.line_id}


async def next_report(updates: AsyncIterator[VenueReport]) -> VenueReport:
    with anyio.fail_after(5):
        return await anext(updates)


async def test_a_closed_position_is_removed_and_an_opened_one_added() -> None:
    async with venue_on() as (fake, venue), aclosing(venue.updates()) as updates:
        fake.set_positions([FakePosition("ETH", D(-2), D(3100))])
        first = await next_report(updates)
        assert [p.line_id for p in first.positions if p.kind is PositionKind.HEDGE] == [
            "ETH/USDT:USDT:0"
        ]
        await subscribed(fake, "wallet", "position")
        fake.set_positions([FakePosition("ETH", D(0), D(3100)), FakePosition("BTC", D(1), D(1))])
        assert await fake.push("position") == 1
        pushed = await next_report(updates)
    hedges = {p.line_id: p.amount for p in pushed.positions if p.kind is PositionKind.HEDGE}
    assert hedges == {"BTC/USDT:USDT:0": 1}


async def test_a_coin_gone_to_zero_unpushed_is_zero_after_the_resync_and_counted() -> None:
    disagreed: list[str] = []
    async with (
        venue_on(resync_seconds=0.5, on_disagreement=disagreed.append) as (fake, venue),
        aclosing(venue.updates()) as updates,
    ):
        await next_report(updates)
        fake.set_holding("unified", "ETH", None)  # Bybit leaves a zero coin out of its pushes
        with capture_logs():
            resynced = await next_report(updates)
        assert amounts(resynced) == {"USDT": 1000}
        assert disagreed == ["cex"]
        await next_report(updates)  # a resync that agrees counts nothing
    assert disagreed == ["cex"]


async def test_a_reconnect_loses_no_change() -> None:
    async with venue_on() as (fake, venue):
        async with following(fake, venue, "wallet") as (_, updates):
            await fake.drop_streams()
            fake.set_holding("unified", "USDT", Holding(balance=D(1500)))
            assert await fake.push("wallet") == 0  # nobody hears it
            with pytest.raises(VenueUnavailable):
                await next_report(updates)
        async with aclosing(venue.updates()) as updates:  # the poller's reconnect
            again = await next_report(updates)
    assert amounts(again) == {"USDT": 1500, "ETH": 2}


async def test_an_auth_refusal_on_the_stream_is_an_auth_error() -> None:
    async with venue_on() as (fake, venue), aclosing(venue.updates()) as updates:
        fake.dialect.refuse_stream_auth = True
        await next_report(updates)  # REST still answers
        with pytest.raises(VenueAuthError):
            await next_report(updates)


async def test_only_exchanges_with_a_stream_make_a_streaming_venue() -> None:
    assert isinstance(venue_of({"kind": "bybit", "accounts": ["unified"]}), StreamingVenue)
    assert not isinstance(
        venue_of({"kind": "bybit", "accounts": ["unified"], "stream": False}), StreamingVenue
    )
    assert not isinstance(venue_of({"kind": "bybit", "accounts": ["funding"]}), StreamingVenue)
    assert isinstance(venue_of({"kind": "binance", "accounts": ["usdm"]}), StreamingVenue)
    assert type(venue_of({"kind": "binance", "accounts": ["isolated_margin"]})) is ExchangeVenue
    with pytest.raises(ValueError, match="streams none"):
        StreamingExchangeVenue("x", "okx", ("funding",), CREDENTIALS, SystemClock())


def venue_of(venue: dict[str, Any]) -> Any:
    daemon = Daemon(settings([{"name": "cex", "api_key": "k", "secret": "s", **venue}]))
    (book,) = daemon.books
    return book.venues[0]


# --- the real daemon ------------------------------------------------------------------------


ETH_AT_3000: list[dict[str, Any]] = [{"base": "ETH", "quote": "USDT", "fixed": "3000"}]


def settings(venues: list[dict[str, Any]], prices: list[dict[str, Any]] = ETH_AT_3000) -> Settings:
    return Settings.model_validate(
        {
            "interval_seconds": 30,
            "http": {"port": 0},
            "books": {
                "basis": {
                    "share_class": "USDT",
                    "venues": venues,
                    "prices": prices,
                }
            },
        }
    )


def venue_config(fake: FakeExchange | None, **extra: Any) -> dict[str, Any]:
    """The settings of exchange venue `cex` on `fake` (else a closed port): Bybit's unified
    account unless `extra` says otherwise."""
    key, secret, _ = SECRETS
    return {
        "kind": "bybit",
        "name": "cex",
        "api_key": key,
        "secret": secret,
        "accounts": ["unified"],
        "base_url": "http://127.0.0.1:1" if fake is None else fake.base_url,
        "rate_limit": False,
        "in_transit": False,
        "interval_seconds": 30,
        "timeout_seconds": 4,
        **extra,
    }


async def store_has(daemon: Daemon, check: Callable[[VenueState], object]) -> None:
    """Waits until the daemon's state of venue `cex` passes `check`."""
    with anyio.fail_after(5):
        while not check(daemon.store.state("cex")):  # noqa: ASYNC110 (the daemon's state)
            await anyio.sleep(0.02)


def holds(coin: str, amount: int) -> Callable[[VenueState], bool]:
    """A `store_has` check: the venue's latest report holds `amount` of `coin`."""
    return lambda state: state.latest is not None and amounts(state.latest).get(coin) == amount


async def next_equity(daemon: Daemon, before: Snapshot) -> Snapshot:
    """The daemon's first snapshot whose equity differs from `before`, within a second."""
    with anyio.fail_after(1):
        while (latest := daemon.latest()) is None or latest.equity == before.equity:  # noqa: ASYNC110
            await anyio.sleep(0.01)
    return latest


@asynccontextmanager
async def running(
    tmp_path: Path, venue: dict[str, Any], prices: list[dict[str, Any]] = ETH_AT_3000
) -> AsyncIterator[Daemon]:
    daemon = Daemon(settings([venue], prices))
    history = await History.open(tmp_path / "h.sqlite3")
    try:
        async with anyio.create_task_group() as tg:
            with anyio.fail_after(10):
                await tg.start(partial(daemon.run, history, handle_signals=False))
            yield daemon
            tg.cancel_scope.cancel()
    finally:
        await history.aclose()


async def test_a_pushed_balance_reaches_the_store_and_the_next_snapshot_within_a_second(
    tmp_path: Path,
) -> None:
    async with fake_exchange("bybit") as fake:
        fake.set_account("unified", START)
        async with running(tmp_path, venue_config(fake)) as daemon:
            before = daemon.latest()
            assert before is not None
            await subscribed(fake, "wallet", "position")
            fake.set_holding("unified", "USDT", Holding(balance=D(2000)))
            assert await fake.push("wallet", coins=["USDT"]) == 1
            started = anyio.current_time()
            latest = await next_equity(daemon, before)
            took = anyio.current_time() - started
            held = daemon.store.state("cex").latest
            assert held is not None
            assert amounts(held)["USDT"] == 2000
    assert equity_of(latest) - equity_of(before) == 1000
    assert took < 1


async def test_a_silent_stream_past_its_keepalive_falls_back_to_rest(tmp_path: Path) -> None:
    async with fake_exchange("bybit") as fake:
        fake.set_account("unified", START)
        venue = venue_config(fake, keepalive_seconds=0.5, interval_seconds=0.2)
        with capture_logs():
            async with running(tmp_path, venue) as daemon:
                await subscribed(fake, "wallet", "position")
                polled = len(fake.calls("/v5/account/wallet-balance"))
                with anyio.fail_after(5):
                    while "stream silent" not in str(daemon.store.state("cex").note):  # noqa: ASYNC110
                        await anyio.sleep(0.05)
                    while len(fake.calls("/v5/account/wallet-balance")) < polled + 2:  # noqa: ASYNC110
                        await anyio.sleep(0.05)
                assert "polling" in str(daemon.store.state("cex").note)


async def test_a_dropped_socket_is_noted_and_rest_carries_the_change_made_meanwhile(
    tmp_path: Path,
) -> None:
    async with fake_exchange("bybit") as fake:
        fake.set_account("unified", START)
        with capture_logs():
            async with running(tmp_path, venue_config(fake)) as daemon:
                await subscribed(fake, "wallet", "position")
                await fake.drop_streams()
                fake.set_holding("unified", "USDT", Holding(balance=D(1500)))
                assert await fake.push("wallet") == 0  # the socket is down: nobody hears it
                await store_has(daemon, holds("USDT", 1500))
                assert "stream down" in str(daemon.store.state("cex").note)


async def test_the_daemon_counts_a_resync_that_disagrees(tmp_path: Path) -> None:
    async with fake_exchange("bybit") as fake:
        fake.set_account("unified", START)
        with capture_logs():
            async with running(tmp_path, venue_config(fake, resync_seconds=0.3)) as daemon:
                await subscribed(fake, "wallet", "position")
                fake.set_holding("unified", "ETH", None)  # gone to zero, never pushed
                sample = partial(
                    daemon.instruments.registry.get_sample_value,
                    "equity_daemon_stream_rest_disagreements_total",
                    {"venue": "cex"},
                )
                with anyio.fail_after(5):
                    while not sample():  # noqa: ASYNC110
                        await anyio.sleep(0.02)
                assert sample() == 1


async def test_binance_usdm_account_updates_patch_the_rest_snapshot() -> None:
    held = {"USDT": Holding(balance=D(5000)), "BNB": Holding(balance=D(2))}
    async with (
        venue_on("binance", "usdm", held, fake_account="futures") as (fake, venue),
        aclosing(venue.updates()) as updates,
    ):
        fake.state.multi_assets = False  # the total is USDT's: the push moves it exactly
        fake.set_positions([FakePosition("ETH", D(-2), D(3100))])
        first = await next_report(updates)
        await subscribed(fake, "account")
        fake.set_holding("futures", "USDT", Holding(balance=D(6000)))
        fake.set_positions([FakePosition("ETH", D(0), D(3100))])
        assert await fake.push("account", coins=["USDT"]) >= 1
        pushed = await next_report(updates)
    assert amounts(first) == {"USDT": 5000, "BNB": 2}
    assert [p.kind for p in first.positions].count(PositionKind.HEDGE) == 1
    assert amounts(pushed) == {"USDT": 6000, "BNB": 2}
    assert PositionKind.HEDGE not in [p.kind for p in pushed.positions]
    (total,) = pushed.reported
    (before,) = first.reported
    assert total.amount - before.amount == 1000
    assert pushed.as_of is not None


# --- Binance USDⓈ-M: the listen key's life --------------------------------------------------

LISTEN_KEY = "/fapi/v1/listenKey"


def binance_venue(
    **extra: Any,
) -> AbstractAsyncContextManager[tuple[FakeExchange, StreamingExchangeVenue]]:
    """Binance USDⓈ-M holding 5,000 USDT."""
    held = {"USDT": Holding(balance=D(5000))}
    return venue_on("binance", "usdm", held, fake_account="futures", **extra)


def listen_key_calls(fake: FakeExchange, method: str) -> int:
    return sum(1 for seen in fake.requests if (seen.method, seen.path) == (method, LISTEN_KEY))


def binance(fake: FakeExchange) -> BinanceDialect:
    assert isinstance(fake.dialect, BinanceDialect)
    return fake.dialect


@asynccontextmanager
async def following(
    fake: FakeExchange, venue: StreamingExchangeVenue, topic: str
) -> AsyncIterator[tuple[VenueReport, AsyncIterator[VenueReport]]]:
    """The venue's first report and its updates after it, once the fake has `topic`
    subscribed."""
    async with aclosing(venue.updates()) as updates:
        first = await next_report(updates)
        await subscribed(fake, topic)
        yield first, updates


async def test_the_usdm_listen_key_is_kept_alive_and_still_streams() -> None:
    async with binance_venue() as (fake, venue):
        # ccxt PUTs after `listenKeyRefreshRate` ms (20 minutes); a test cannot wait that long
        venue.client("usdm", streaming=True).options["listenKeyRefreshRate"] = 100
        async with following(fake, venue, "account") as (_, updates):
            with anyio.fail_after(5):
                while not listen_key_calls(fake, "PUT"):  # noqa: ASYNC110 (the fake's log)
                    await anyio.sleep(0.02)
            fake.set_holding("futures", "USDT", Holding(balance=D(5500)))
            assert await fake.push("account") == 1
            pushed = await next_report(updates)
    assert amounts(pushed) == {"USDT": 5500}


async def test_a_refused_listen_key_keep_alive_ends_the_stream_and_a_new_key_follows() -> None:
    async with binance_venue() as (fake, venue):
        venue.client("usdm", streaming=True).options["listenKeyRefreshRate"] = 300
        async with following(fake, venue, "account") as (_, updates):
            binance(fake).listen_keys.clear()  # Binance forgot it: the PUT answers -1125
            # a new key fixes it: not a refused API key, which the poller would wait out
            with pytest.raises(VenueUnavailable, match="stream key lost"):
                await next_report(updates)
        fake.set_holding("futures", "USDT", Holding(balance=D(6000)))
        async with aclosing(venue.updates()) as updates:  # the poller's reconnect
            again = await next_report(updates)
            await subscribed(fake, "account")
    assert amounts(again) == {"USDT": 6000}
    assert listen_key_calls(fake, "POST") == 2


async def test_an_expired_listen_key_ends_the_stream_and_the_next_one_takes_a_new_key() -> None:
    async with binance_venue() as (fake, venue):
        async with following(fake, venue, "account") as (_, updates):
            await binance(fake).expire_listen_keys()  # the socket stays open, but quiet
            with pytest.raises(VenueUnavailable, match="listen key expired"):
                await next_report(updates)
        fake.set_holding("futures", "USDT", Holding(balance=D(4000)))
        async with following(fake, venue, "account") as (resynced, updates):
            fake.set_holding("futures", "USDT", Holding(balance=D(4100)))
            assert await fake.push("account") == 1
            pushed = await next_report(updates)
    assert amounts(resynced) == {"USDT": 4000}
    assert amounts(pushed) == {"USDT": 4100}
    assert listen_key_calls(fake, "POST") == 2


async def cut_after_a_working_window(
    fake: FakeExchange,
    updates: AsyncIterator[VenueReport],
    cut: Callable[[], Awaitable[None]],
    topic: str,
    held: tuple[str, str],
    meanwhile: int,
    then: int,
) -> tuple[VenueReport, VenueReport]:
    """The stream works for a whole keep-alive window (the venue's is 0.2 s), the `held`
    (account, coin) becomes `meanwhile` unheard and `cut` ends the socket. Returns the report
    the stream goes on with (no error) and the one of a push of `then` after it."""
    account, coin = held
    await next_report(updates)
    await subscribed(fake, topic)
    await anyio.sleep(0.3)
    fake.set_holding(account, coin, Holding(balance=D(meanwhile)))
    await cut()
    resynced = await next_report(updates)
    await subscribed(fake, topic)
    fake.set_holding(account, coin, Holding(balance=D(then)))
    assert await fake.push(topic, coins=[coin]) == 1
    pushed = await next_report(updates)
    return resynced, pushed


async def test_a_listen_key_expiring_after_a_working_window_rejoins_with_a_new_key() -> None:
    """ccxt 4.5.90 keeps a futures listen key alive once only: it lapses about every 80 minutes.
    That must not read as an outage (a stream-down note and a warning each time)."""
    disagreed: list[str] = []
    async with (
        binance_venue(keepalive=0.2, on_disagreement=disagreed.append) as (fake, venue),
        aclosing(venue.updates()) as updates,
    ):
        # no error: a new key and a REST snapshot
        resynced, pushed = await cut_after_a_working_window(
            fake,
            updates,
            binance(fake).expire_listen_keys,
            "account",
            ("futures", "USDT"),
            5200,
            5300,
        )
    assert amounts(resynced) == {"USDT": 5200}
    assert amounts(pushed) == {"USDT": 5300}
    assert listen_key_calls(fake, "POST") == 2
    assert disagreed == []


async def test_the_exchange_cutting_a_working_socket_rejoins_and_resyncs_without_an_error() -> None:
    disagreed: list[str] = []
    async with (
        binance_venue(keepalive=0.2, on_disagreement=disagreed.append) as (fake, venue),
        aclosing(venue.updates()) as updates,
    ):
        # Binance's 24-hour cut; nobody hears the change made meanwhile
        resynced, pushed = await cut_after_a_working_window(
            fake, updates, fake.drop_streams, "account", ("futures", "USDT"), 5200, 5300
        )
    assert amounts(resynced) == {"USDT": 5200}
    assert amounts(pushed) == {"USDT": 5300}
    assert listen_key_calls(fake, "POST") == 2  # new instances ask (Binance: the same key)
    assert disagreed == []  # a change made while cut is not the stream disagreeing


async def test_a_socket_cut_soon_after_it_opened_ends_the_stream() -> None:
    async with (
        binance_venue(keepalive=30) as (fake, venue),
        aclosing(venue.updates()) as updates,
    ):
        await next_report(updates)
        await subscribed(fake, "account")
        await fake.drop_streams()
        with pytest.raises(VenueUnavailable, match="network error"):
            await next_report(updates)


async def test_the_daemon_rides_out_binances_connection_cut_with_no_event_or_note(
    tmp_path: Path,
) -> None:
    async with fake_exchange("binance") as fake:
        fake.set_account("futures", {"USDT": Holding(balance=D(5000))})
        venue = venue_config(fake, kind="binance", accounts=["usdm"], keepalive_seconds=0.3)
        with capture_logs() as logs:
            async with running(tmp_path, venue) as daemon:
                await subscribed(fake, "account")
                await anyio.sleep(0.4)
                fake.set_holding("futures", "USDT", Holding(balance=D(5001)))
                await fake.drop_streams()
                await store_has(daemon, holds("USDT", 5001))
                await subscribed(fake, "account")
                events = await daemon.events(None)
                latest = daemon.latest()
    assert latest is not None
    assert latest.complete
    assert events == []
    assert not [e for e in logs if e["event"] == "stream_down"]
    assert [e for e in logs if e["event"] == "stream_rejoined"]


# --- Binance spot, cross margin and portfolio margin ----------------------------------------

# streamed account -> (the fake's account, its push topic)
BINANCE_STREAMS = {
    "spot": ("spot", "spot"),
    "cross_margin": ("margin", "margin"),
    "portfolio_margin": ("portfolio", "portfolio"),
    "usdm": ("futures", "account"),
}
HELD = {
    "USDT": Holding(balance=D(1000), borrowed=D(100), interest=D("0.5")),
    "ETH": Holding(balance=D(2), locked=D("0.5"), borrowed=D(1)),
}
EVENT_MS = 1_790_000_000_000
WITH_DEBT = {"cross_margin", "portfolio_margin"}


def binance_account(
    account: str, **extra: Any
) -> AbstractAsyncContextManager[tuple[FakeExchange, StreamingExchangeVenue]]:
    """A streamed Binance `account` holding `HELD`, without its debt where it has none."""
    fake_account, _ = BINANCE_STREAMS[account]
    held = HELD if account in WITH_DEBT else {a: Holding(h.balance) for a, h in HELD.items()}
    return venue_on("binance", account, held, fake_account=fake_account, **extra)


@pytest.mark.parametrize("account", ["spot", "usdm"])
async def test_a_binance_spot_or_usdm_push_patches_its_coins_at_once_and_keeps_the_rest(
    account: str,
) -> None:
    fake_account, topic = BINANCE_STREAMS[account]
    async with binance_account(account) as (fake, venue), aclosing(venue.updates()) as updates:
        first = await next_report(updates)
        await subscribed(fake, topic)
        fake.state.now_ms = lambda: EVENT_MS  # the event time `E` of the push
        fake.set_holding(fake_account, "ETH", Holding(balance=D(3), borrowed=D(5)))
        fake.set_holding(fake_account, "USDT", Holding(balance=D(1)))  # not pushed
        assert await fake.push(topic, coins=["ETH"]) == 1
        pushed = await next_report(updates)
    assert amounts(first) == {"USDT": 1000, "ETH": 2}
    assert amounts(pushed) == {"USDT": 1000, "ETH": 3}
    assert pushed.as_of == datetime.fromtimestamp(EVENT_MS / 1000, UTC)


@pytest.mark.parametrize("account", sorted(BINANCE_STREAMS))
async def test_a_binance_stream_resyncs_from_rest_after_a_reconnect(account: str) -> None:
    fake_account, topic = BINANCE_STREAMS[account]
    async with binance_account(account) as (fake, venue):
        async with aclosing(venue.updates()) as updates:
            await next_report(updates)
            await subscribed(fake, topic)
            await fake.drop_streams()
            fake.set_holding(fake_account, "ETH", Holding(balance=D(7)))
            with pytest.raises(VenueUnavailable):
                await next_report(updates)
        async with aclosing(venue.updates()) as updates:
            again = await next_report(updates)
            await subscribed(fake, topic)
            fake.set_holding(fake_account, "ETH", Holding(balance=D(8)))
            assert await fake.push(topic, coins=["ETH"]) == 1
            pushed = await next_report(updates)
    assert amounts(again)["ETH"] == 7
    assert amounts(pushed)["ETH"] == 8


@pytest.mark.parametrize("account", ["spot", "cross_margin", "portfolio_margin"])
async def test_a_binance_cut_after_a_working_window_is_rejoined(account: str) -> None:
    fake_account, topic = BINANCE_STREAMS[account]
    async with (
        binance_account(account, keepalive=0.2) as (fake, venue),
        aclosing(venue.updates()) as updates,
    ):
        resynced, pushed = await cut_after_a_working_window(
            fake, updates, fake.drop_streams, topic, (fake_account, "ETH"), 4, 5
        )
    assert amounts(resynced)["ETH"] == 4
    assert amounts(pushed)["ETH"] == 5


async def test_portfolio_margin_pushes_open_and_close_um_positions() -> None:
    async with (
        binance_account("portfolio_margin") as (fake, venue),
        aclosing(venue.updates()) as updates,
    ):
        fake.set_positions([FakePosition("ETH", D(-2), D(3100))])
        first = await next_report(updates)
        await subscribed(fake, "portfolio")
        fake.set_positions([FakePosition("ETH", D(0), D(3100)), FakePosition("BTC", D(1), D(1))])
        assert await fake.push("portfolio", coins=[]) == 1
        pushed = await next_report(updates)
        if hedges_of(pushed) == hedges_of(first):  # the margin event came alone, first
            pushed = await next_report(updates)
    assert hedges_of(first) == {"ETH/USDT:USDT:BOTH": -2}
    assert hedges_of(pushed) == {"BTC/USDT:USDT:BOTH": 1}


def hedges_of(report: VenueReport) -> dict[str | None, Decimal]:
    return {p.line_id: p.amount for p in report.positions if p.kind is PositionKind.HEDGE}


async def test_an_expired_margin_listen_token_ends_the_stream_and_the_next_takes_a_new_one() -> (
    None
):
    async with binance_account("cross_margin") as (fake, venue):
        async with following(fake, venue, "margin") as (_, updates):
            await binance(fake).expire_listen_keys()
            with pytest.raises(VenueUnavailable, match="event stream terminated"):
                await next_report(updates)
        async with aclosing(venue.updates()) as updates:
            await next_report(updates)
            await subscribed(fake, "margin")
    assert len(fake.calls("/sapi/v1/userListenToken")) == 2


async def test_a_closed_stream_leaves_no_keep_alive_behind() -> None:
    async with binance_venue() as (fake, venue):
        venue.client("usdm", streaming=True).options["listenKeyRefreshRate"] = 300
        async with aclosing(venue.updates()) as updates:
            await next_report(updates)
            await subscribed(fake, "account")
        await anyio.sleep(0.5)  # past the keep-alive ccxt had scheduled
        assert listen_key_calls(fake, "PUT") == 0


async def test_the_portfolio_margin_listen_key_is_kept_alive_on_the_papi() -> None:
    async with binance_account("portfolio_margin") as (fake, venue):
        venue.client("portfolio_margin", streaming=True).options["listenKeyRefreshRate"] = 100
        async with following(fake, venue, "portfolio") as _:
            with anyio.fail_after(5):
                while not any(  # noqa: ASYNC110 (the fake's log)
                    (s.method, s.path) == ("PUT", "/papi/v1/listenKey") for s in fake.requests
                ):
                    await anyio.sleep(0.02)
