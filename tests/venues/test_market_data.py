"""Exchange market data without a key, shared by every book, and one rate limiter per exchange:
on the fake Binance, Bybit and OKX servers, through the daemon's settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import ccxt
import pytest
from structlog.testing import capture_logs

from equity_daemon.cli import EXIT_OK, EXIT_USAGE, main
from equity_daemon.errors import VenueDataError
from equity_daemon.history import History
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import Settings, load_settings
from equity_daemon.venues import market_data
from equity_daemon.venues.exchange import ExchangeVenue
from equity_daemon.venues.exchange_budget import Budgets
from equity_daemon.venues.fake_exchange import FakeExchange, Fault, Holding, Seen, fake_exchange
from equity_daemon.venues.market_data import ExchangeMarket
from tests.reports import Clock
from tests.test_notify import eventually
from tests.venues.exchanges import CREDENTIALS, EXCHANGES, SECRETS

pytestmark = pytest.mark.anyio

D = Decimal
TICKERS = {
    "binance": "/api/v3/ticker/24hr",
    "bybit": "/v5/market/tickers",
    "okx": "/api/v5/market/ticker",
}
# ccxt 4.5's `rateLimit` for Bybit: one unit of an endpoint's cost per 20 ms
BYBIT_SECONDS_PER_COST = 0.020


def bybit_cost(path: str) -> float:
    """ccxt's cost of a Bybit endpoint, from ccxt's own `api` table."""
    costs = {
        endpoint["cost"]
        for access in ccxt.bybit().api.values()
        for endpoints in access.values()
        for name, endpoint in endpoints.items()
        if name == path.lstrip("/")
    }
    (cost,) = costs
    return cost  # type: ignore[no-any-return]


def market(
    fake: FakeExchange, *, rate_limit: bool = False, clock: Clock | None = None, **extra: Any
) -> ExchangeMarket:
    return ExchangeMarket(
        "md", fake.name, clock or Clock(), base_url=fake.base_url, rate_limit=rate_limit, **extra
    )


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_a_market_quotes_the_spot_last_price_with_no_key(exchange: str) -> None:
    async with fake_exchange(exchange) as fake:
        fake.set_price("ETH", "3123.45")
        source = market(fake)
        try:
            seen = await source.observe("ETH", "USDT")
            with pytest.raises(LookupError, match="lists no DOGE/USDT market"):
                await source.observe("DOGE", "USDT")
            assert not source.client.apiKey  # no key was ever given to it
        finally:
            await source.aclose()
    assert seen.rate == D("3123.45")
    assert fake.calls(TICKERS[exchange])


async def test_a_failing_ticker_is_the_market_s_named_failure_never_a_price() -> None:
    async with fake_exchange("bybit") as fake:
        source = market(fake, stream=False)  # REST, every time the oracle asks
        try:
            await source.observe("ETH", "USDT")  # markets loaded
            fake.fail(TICKERS["bybit"], Fault.MALFORMED)
            with pytest.raises(VenueDataError, match="md"):
                await source.observe("ETH", "USDT")
        finally:
            await source.aclose()


# each streamed exchange's ticker topic on the fake, and a push of it without the last price
BYBIT_NO_PRICE = {"symbol": "ETHUSDT", "highPrice24h": "1"}
STREAMED: dict[str, tuple[str, dict[str, Any]]] = {
    "bybit": (
        "tickers.ETHUSDT",
        {"topic": "tickers.ETHUSDT", "type": "snapshot", "data": BYBIT_NO_PRICE},
    ),
    "binance": ("ethusdt@miniTicker", {"e": "24hrMiniTicker", "E": 1, "s": "ETHUSDT"}),
    "okx": (
        "tickers:ETH-USDT",
        {"arg": {"channel": "tickers", "instId": "ETH-USDT"}, "data": [{"instId": "ETH-USDT"}]},
    ),
}


async def streaming(fake: FakeExchange, source: ExchangeMarket) -> None:
    """Ask once (over REST, which subscribes), then push: the stream is live."""
    topic = STREAMED[fake.name][0]
    await source.observe("ETH", "USDT")
    await eventually(lambda: topic in fake.dialect.subscribers, "the subscription")
    await fake.push(topic)
    await eventually(lambda: "ETH/USDT" in source.streamed, "the stream")


@asynccontextmanager
async def streamed_market(
    exchange: str,
) -> AsyncIterator[tuple[FakeExchange, ExchangeMarket, Clock]]:
    """The market of a fake `exchange` quoting ETH at 3,000, its ticker stream live, and the
    test clock it reads; closed on exit."""
    clock = Clock()
    async with fake_exchange(exchange) as fake:
        fake.set_price("ETH", "3000")
        source = market(fake, clock=clock)
        try:
            await streaming(fake, source)
            yield fake, source, clock
        finally:
            await source.aclose()


@pytest.mark.parametrize("exchange", sorted(STREAMED))
async def test_a_streamed_ticker_answers_from_its_last_push_without_a_request(
    exchange: str,
) -> None:
    async with streamed_market(exchange) as (fake, source, clock):
        assert source.cache_seconds == 0  # the oracle asks every cycle
        fake.set_price("ETH", "3210.5")
        pushed_at = clock()
        assert await fake.push(STREAMED[exchange][0]) == 1
        await eventually(lambda: source.streamed.get("ETH/USDT") == D("3210.5"), "the push")
        clock.now += timedelta(seconds=4)
        seen = await source.observe("ETH", "USDT")
        assert (seen.rate, seen.at) == (D("3210.5"), pushed_at)  # as of its arrival
        assert len(fake.calls(TICKERS[exchange])) == 1
    assert source.streamed == {}  # closed


@pytest.mark.parametrize("exchange", sorted(STREAMED))
async def test_a_quiet_stream_is_no_older_than_cache_seconds_rest_reads_the_price(
    exchange: str,
) -> None:
    async with streamed_market(exchange) as (fake, source, clock):
        fake.set_price("ETH", "3100")  # and no push: a stalled or quiet stream
        clock.now += timedelta(seconds=5)
        seen = await source.observe("ETH", "USDT")
    assert (seen.rate, seen.at) == (D(3100), clock())
    assert len(fake.calls(TICKERS[exchange])) == 2


@pytest.mark.parametrize("exchange", sorted(STREAMED))
async def test_a_dropped_ticker_stream_falls_back_to_rest_and_follows_again(
    monkeypatch: pytest.MonkeyPatch, exchange: str
) -> None:
    monkeypatch.setattr(market_data, "STREAM_RETRY", 0.2)
    topic = STREAMED[exchange][0]
    async with streamed_market(exchange) as (fake, source, clock):
        with capture_logs() as logs:
            await fake.drop_streams()
            await eventually(lambda: not source.streamed, "the drop")
            fake.set_price("ETH", "2900")
            clock.now += timedelta(seconds=6)
            assert (await source.observe("ETH", "USDT")).rate == D(2900)  # over REST
            assert len(fake.calls(TICKERS[exchange])) == 2
            await eventually(lambda: topic in fake.dialect.subscribers, "a new subscription")
        fake.set_price("ETH", "2950")
        await fake.push(topic)
        await eventually(lambda: source.streamed.get("ETH/USDT") == D(2950), "the push")
        assert (await source.observe("ETH", "USDT")).rate == D(2950)
    assert [e for e in logs if e["event"] == "ticker_stream_down"]
    assert all(fake.base_url not in str(e) for e in logs)


@pytest.mark.parametrize("exchange", sorted(STREAMED))
async def test_a_push_without_a_price_is_logged_with_its_reason_and_never_priced(
    monkeypatch: pytest.MonkeyPatch, exchange: str
) -> None:
    monkeypatch.setattr(market_data, "STREAM_RETRY", 30.0)
    topic, bad = STREAMED[exchange]
    async with streamed_market(exchange) as (fake, source, clock):
        with capture_logs() as logs:
            await fake.dialect.send(topic, bad)
            await eventually(lambda: not source.streamed, "the stream to fail")
        clock.now += timedelta(seconds=5)
        fake.set_price("ETH", "3050")
        seen = await source.observe("ETH", "USDT")  # over REST
    assert seen.rate == D(3050)
    (down,) = [e for e in logs if e["event"] == "ticker_stream_down"]
    assert "no " in down["error"]  # the missing field, named


def arrivals(requests: Sequence[Seen]) -> list[float]:
    return sorted(seen.at for seen in requests)


async def read_everything(venues: Sequence[ExchangeVenue], source: ExchangeMarket) -> None:
    """Every venue's fetch and a price from the market, all at once."""
    async with anyio.create_task_group() as tg:
        for venue in venues:
            tg.start_soon(venue.fetch)
        tg.start_soon(source.observe, "ETH", "USDT")


def bybit_venue(fake: FakeExchange, name: str, budgets: Budgets) -> ExchangeVenue:
    return ExchangeVenue(
        name,
        "bybit",
        ("unified",),
        CREDENTIALS,
        Clock(),
        base_url=fake.base_url,
        request_timeout=5.0,
        in_transit=False,
        budget=budgets.for_host("bybit", base_url=fake.base_url),
    )


async def test_two_venues_and_the_market_of_one_exchange_keep_to_its_rate_together() -> None:
    """Three ccxt instances of one exchange (one per venue, and the market) send no faster
    together than the exchange's rate allows one client."""
    budgets = Budgets()
    async with fake_exchange("bybit") as fake:
        fake.set_account("unified", {"USDT": Holding(balance=D(1000))})
        venues = [bybit_venue(fake, name, budgets) for name in ("cex-a", "cex-b")]
        source = market(
            fake, rate_limit=True, budget=budgets.for_host("bybit", base_url=fake.base_url + "/")
        )
        try:
            await read_everything(venues, source)
        finally:
            for venue in venues:
                await venue.aclose()
            await source.aclose()
    weight = sum(bybit_cost(seen.path) for seen in fake.requests)
    assert budgets.for_host("bybit", base_url=fake.base_url).weight == weight
    times = arrivals(fake.requests)
    # ccxt's leaky bucket lets a request through once the previous ones' cost has drained: the
    # last arrives no sooner than the cost of all the others after the first (10 % for jitter)
    slowest_first = max(bybit_cost(seen.path) for seen in fake.requests)
    least_span = (weight - slowest_first) * BYBIT_SECONDS_PER_COST * 0.9
    assert len(fake.requests) >= 3 * 5  # markets, currencies, balance, positions, ticker
    assert times[-1] - times[0] >= least_span
    # in any window, the requests that arrived cost no more than the window's allowance plus
    # one request's worth (the bucket's capacity)
    for start in times:
        window = [s for s in fake.requests if start <= s.at < start + 0.5]
        allowance = 0.5 / BYBIT_SECONDS_PER_COST + 2 * slowest_first
        assert sum(bybit_cost(s.path) for s in window) <= allowance


async def test_separate_hosts_have_separate_budgets() -> None:
    budgets = Budgets()
    main = budgets.for_host("binance")
    assert budgets.for_host("binance", base_url=None) is main
    assert budgets.for_host("binance", sandbox=True) is not main
    assert budgets.for_host("binance", base_url="https://proxy.internal/b") is not main
    assert budgets.for_host("bybit") is not main


# --- through the daemon's settings ----------------------------------------------------------


def exchange_venue(fake: FakeExchange, name: str, accounts: list[str]) -> dict[str, Any]:
    key, secret, _ = SECRETS
    return {
        "kind": fake.name,
        "name": name,
        "api_key": key,
        "secret": secret,
        "accounts": accounts,
        "base_url": fake.base_url,
        "in_transit": False,
        "interval_seconds": 10,
        "timeout_seconds": 4,
    }


def two_books(fake: FakeExchange, markets: dict[str, Any]) -> Settings:
    eth = {"base": "ETH", "quote": "USDT", "sources": ["bybit-md"]}
    return Settings.model_validate(
        {
            "interval_seconds": 10,
            "http": {"port": 0},
            "markets": markets,
            "books": {
                name: {
                    "share_class": "USDT",
                    "venues": [exchange_venue(fake, f"cex-{name}", [account])],
                    "prices": [eth],
                }
                for name, account in (("a", "unified"), ("b", "funding"))
            },
        }
    )


@asynccontextmanager
async def cycled(tmp_path: Path, settings: Settings) -> AsyncIterator[tuple[Daemon, History]]:
    """A daemon of `settings` on a test clock that has fetched every venue and run one cycle,
    its logs captured; closed on exit."""
    run = Daemon(settings, Clock())
    history = await History.open(tmp_path / "h.sqlite3")
    try:
        await run.fetch_all_once()
        with capture_logs():
            await run.cycle(history)
            yield run, history
    finally:
        await history.aclose()
        await run.aclose()


async def test_every_book_prices_through_the_one_market_and_its_weight_is_a_metric(
    tmp_path: Path,
) -> None:
    async with fake_exchange("bybit") as fake:
        fake.set_price("ETH", "3000")
        fake.set_account("unified", {"ETH": Holding(balance=D(2))})
        fake.set_account("funding", {"ETH": Holding(balance=D(1))})
        markets = {"bybit-md": {"kind": "bybit", "base_url": fake.base_url, "stream": False}}
        settings = two_books(fake, markets)
        async with cycled(tmp_path, settings) as (run, _):
            client = run.markets["bybit-md"].client
        exposition = run.metrics()[0].decode()
    assert client.session is None or client.session.closed  # the daemon closed it
    assert [run.latest(book).equity for book in ("a", "b")] == [D(6000), D(3000)]  # type: ignore[union-attr]
    # one ccxt instance for both books: the markets were loaded once for market data (spot and
    # linear) and once per venue account, and no ticker request was signed by a venue
    loads = [q for q in fake.calls("/v5/market/instruments-info") if q["category"] == "spot"]
    assert len(loads) == 3
    assert len(fake.calls(TICKERS["bybit"])) == 2  # one per book: each book's oracle asks
    weight = sum(bybit_cost(seen.path) for seen in fake.requests)
    assert f'equity_daemon_exchange_request_weight_total{{exchange="bybit"}} {weight:.1f}' in (
        exposition
    )
    assert (
        f'equity_daemon_exchange_cycle_request_weight{{exchange="bybit"}} {weight:.1f}'
        in exposition
    )
    assert fake.base_url not in exposition
    assert all(secret not in exposition for secret in SECRETS)


async def test_the_cycle_gauge_is_the_weight_since_the_cycle_before(tmp_path: Path) -> None:
    async with fake_exchange("bybit") as fake:
        fake.set_price("ETH", "3000")
        settings = two_books(
            fake,
            {
                "bybit-md": {
                    "kind": "bybit",
                    "base_url": fake.base_url,
                    "cache_seconds": 0,
                    "stream": False,
                }
            },
        )
        async with cycled(tmp_path, settings) as (run, history):
            before = len(fake.requests)
            await run.cycle(history)  # two tickers again, nothing else
        exposition = run.metrics()[0].decode()
    assert [seen.path for seen in fake.requests[before:]] == [TICKERS["bybit"]] * 2
    assert 'equity_daemon_exchange_cycle_request_weight{exchange="bybit"} 10.0' in exposition


# --- settings ---------------------------------------------------------------------------------

BOOK = """
[books.basis]
share_class = "USDT"
venues = [{kind = "demo", name = "demo"}]
prices = [{base = "ETH", quote = "USDT", sources = ["bybit"]}]
"""


def check_config(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "equity.toml"
    path.write_text(text)
    code = main(["check-config", "--config", str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("markets", "line"),
    [
        pytest.param(
            '[markets.bybit]\nkind = "kraken"\n',
            "markets.bybit.kind: Input should be 'binance', 'bybit' or 'okx'",
            id="unknown-exchange",
        ),
        pytest.param(
            '[markets.bybit]\nkind = "bybit"\nbase_url = "https://proxy.internal/b?k=1"\n',
            "markets.bybit.base_url: must not have a query or a fragment",
            id="base-url-query",
        ),
        pytest.param(
            '[markets.bybit]\nkind = "bybit"\nbase_url = "https://user:pw@proxy.internal/b"\n',
            "markets.bybit.base_url: must not carry credentials",
            id="base-url-credentials",
        ),
        pytest.param(
            '[markets.bybit]\nkind = "bybit"\ntimeout_seconds = 0\n',
            "markets.bybit.timeout_seconds: Input should be greater than 0",
            id="zero-timeout",
        ),
        pytest.param(
            '[markets.bybit]\nkind = "bybit"\n[markets.bybit2]\nkind = "bybit"\n',
            "markets.bybit2: the same exchange as markets.bybit; configure each exchange's "
            "market data once",
            id="one-exchange-twice",
        ),
        pytest.param(
            '[markets.bybit]\nkind = "bybit"\n[markets.demo]\nkind = "okx"\n',
            "markets.demo: the name of a venue of book 'basis'; markets and venue names must "
            "differ",
            id="named-like-a-venue",
        ),
        pytest.param(
            '[markets.bybit]\nkind = "bybit"\n[price_sources.bybit]\nkind = "defillama"\n'
            'coins = {ETH = "coingecko:ethereum"}\n',
            "markets.bybit: also a price_sources entry; names must differ",
            id="named-like-a-price-source",
        ),
        pytest.param(
            '[markets.bybit]\nkind = "bybit"\ncache_seconds = 300\n',
            "markets.bybit.cache_seconds: 300 must be below books.basis.prices[0].max_age_seconds "
            "(300), or the data goes stale between two refreshes",
            id="cache-as-old-as-the-max-age",
        ),
        pytest.param(
            '[markets.bybit]\nkind = "bybit"\nwhat = 1\n',
            "markets.bybit.what: Extra inputs are not permitted",
            id="typo",
        ),
    ],
)
def test_a_bad_market_exits_2_naming_its_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], markets: str, line: str
) -> None:
    code, err = check_config(tmp_path, markets + BOOK, capsys)
    assert (code, err) == (EXIT_USAGE, f"config error: {line}\n")


def test_any_book_may_name_a_market_and_the_same_exchange_may_run_on_a_testnet_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = BOOK.replace("basis", "other").replace('name = "demo"', 'name = "demo2"')
    text = '[markets.bybit]\nkind = "bybit"\n[markets.testnet]\nkind = "bybit"\nsandbox = true\n'
    code, _ = check_config(tmp_path, text + BOOK + other, capsys)
    assert code == EXIT_OK
    settings = load_settings(tmp_path / "equity.toml")
    assert settings.markets["bybit"].rate_limit
    assert settings.markets["bybit"].cache_seconds == 5


def test_the_example_configs_markets_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Path(__file__).parents[2]
    monkeypatch.chdir(repo)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "config/secrets.example")
    settings = load_settings(Path("config/example.toml"))
    assert {name: market.kind for name, market in settings.markets.items()} == {
        "binance": "binance",
        "bybit": "bybit",
        "okx": "okx",
    }
    assert settings.markets["bybit"].stream


async def test_the_daemon_prices_every_book_at_the_market_s_latest_push(tmp_path: Path) -> None:
    async with fake_exchange("bybit") as fake:
        fake.set_price("ETH", "3000")
        fake.set_account("unified", {"ETH": Holding(balance=D(2))})
        fake.set_account("funding", {"ETH": Holding(balance=D(1))})
        settings = two_books(fake, {"bybit-md": {"kind": "bybit", "base_url": fake.base_url}})
        async with cycled(tmp_path, settings) as (run, history):  # over REST, which subscribes
            topic = STREAMED["bybit"][0]
            await eventually(lambda: topic in fake.dialect.subscribers, "the subscription")
            fake.set_price("ETH", "3300")
            await fake.push(topic)
            source = run.markets["bybit-md"]
            await eventually(lambda: source.streamed.get("ETH/USDT") == D(3300), "the push")
            read = len(fake.calls(TICKERS["bybit"]))
            await run.cycle(history)
    assert [run.latest(book).equity for book in ("a", "b")] == [D(6600), D(3300)]  # type: ignore[union-attr]
    assert len(fake.calls(TICKERS["bybit"])) == read  # the second cycle asked no REST ticker
