"""An exchange's public market data as a price source: no key, one per exchange, for every book.

Tickers need no account: a `[markets.<name>]` entry configures an exchange's market data once,
and any book's price edges can name it in `sources`. The daemon builds one `ExchangeMarket` per
entry, so every book and edge that asks Binance for a price goes through one ccxt instance (one
connection pool, one markets cache), and through the exchange host's shared request budget
(`exchange_budget`) with every venue of that exchange.

An answer is the exchange's last spot price (the raw ticker's field named by
`venues/exchanges/<x>.TICKER_LAST`, parsed from its string), read over REST and reused for
`cache_seconds`. A book whose positions move fast sets `quote_cache_seconds` lower (0: every
cycle).

**Streamed tickers.** Where the exchange's mapping names `TICKER_STREAM_LAST` (Bybit's public spot
`tickers.<SYMBOL>`, Binance's `<symbol>@miniTicker`, OKX's `tickers` channel: all three here), a
symbol's first REST answer also starts a ccxt.pro `watch_ticker` on the same instance. The market
then keeps each symbol's latest price, pushed or read, with the time it arrived, and answers every
cycle from it (its `cache_seconds` to the oracle is 0) while it is younger than `cache_seconds`; an
older one is read over REST again. So a live stream prices every cycle at the last push, and a
stream that went quiet, stalled or dropped costs no more than polling: a price is never reused
longer than `cache_seconds`, whichever way it came, and its time is when it arrived, never "now". A
stream that fails (a dropped socket, a malformed push) is logged and subscribed again after
`STREAM_RETRY` seconds.

The instance loads spot markets only: fewer requests, and ccxt.pro's Binance tells a spot ticker
push from a perpetual's (both `ETHUSDT`) by the socket's host name, which a `base_url` replaces;
with one market per id there is nothing to tell apart.

A spot market listed after start is found by reloading the host's markets (`exchange_listings`:
at most once per `RELOAD_EVERY`), and while the host bans us (a 418 or 429 with `Retry-After`)
no ticker is asked for: the source fails at once with the ban's end (`exchange_budget`).

An exchange venue can still quote prices itself (`sources = ["<venue>"]`), through its own
instance; a market entry saves one instance and one markets load per venue.

**Contract marks.** A market also reads the mark of each contract a venue of its exchange host
holds (`mark`: the mapping's raw public call, which needs no loaded market), at every cycle
(`venues/contract_marks`): a contract's legs are valued at its own mark, beside the spot prices.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import Any

import anyio
import structlog

from equity_daemon.clock import Clock
from equity_daemon.oracle import Observation
from equity_daemon.prices import SourceKind
from equity_daemon.venues import exchange_client
from equity_daemon.venues.contract_marks import Contract, read_mark
from equity_daemon.venues.exchange import MAPPINGS
from equity_daemon.venues.exchange_budget import RequestBudget
from equity_daemon.venues.exchange_urls import Host, host_of
from equity_daemon.venues.exchanges import BadField, number

log = structlog.get_logger()
STREAM_RETRY = 5.0  # seconds before a failed ticker stream is subscribed again


class ExchangeMarket:
    """One exchange's public tickers, read without a key.

    Args:
        name: the source's name in edges' `sources` (and in logs and metrics).
        exchange_id: `binance`, `bybit` or `okx`.
        base_url, sandbox: where requests go, as for an exchange venue (`exchange_urls`).
        request_timeout: seconds for one HTTP request.
        rate_limit: ccxt's client-side throttle (off only against a local test server).
        cache_seconds: how long an answer (read or, streamed, pushed) may be reused.
        budget: the exchange host's request budget (its throttle, its ban, its listings),
            shared with its venues; one of its own without.
        stream: follow the ticker stream where one is implemented (`TICKER_STREAM_LAST`).
    """

    kind = SourceKind.EXCHANGE_TICKER

    def __init__(
        self,
        name: str,
        exchange_id: str,
        clock: Clock,
        *,
        base_url: str | None = None,
        sandbox: bool = False,
        request_timeout: float = exchange_client.DEFAULT_TIMEOUT,
        rate_limit: bool = True,
        cache_seconds: float = 5.0,
        budget: RequestBudget | None = None,
        stream: bool = True,
    ) -> None:
        if exchange_id not in MAPPINGS:
            raise ValueError(f"unsupported exchange {exchange_id!r}")
        self.name = name
        self.exchange_id = exchange_id
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._budget = budget or RequestBudget(exchange_id, clock=clock)
        mapping = self._mapping = MAPPINGS[exchange_id]
        self.host: Host = host_of(exchange_id, sandbox, base_url)
        self._field = mapping.TICKER_LAST
        self._stream_field: str | None = getattr(mapping, "TICKER_STREAM_LAST", None)
        if not stream:
            self._stream_field = None
        # symbol -> the latest price (pushed or read), when it arrived, and on the monotonic clock
        self._latest: dict[str, tuple[Decimal, datetime, float]] = {}
        self._live: set[str] = set()  # symbols whose stream has pushed since it (re)subscribed
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._options: dict[str, Any] = {
            "base_url": base_url,
            "sandbox": sandbox,
            "timeout": request_timeout,
            "rate_limit": rate_limit,
            "budget": self._budget,
            "streaming": self._stream_field is not None,  # one ccxt.pro instance: REST and ws
            "spot_only": True,  # tickers of spot markets are all it reads
        }
        self._client: Any = None

    def __repr__(self) -> str:
        return f"ExchangeMarket({self.name!r}, {self.exchange_id!r})"

    @property
    def cache_seconds(self) -> float:
        """How long the oracle may reuse an answer: 0 where the market keeps the latest price
        itself (streamed), else `cache_seconds`."""
        return 0.0 if self._stream_field is not None else self._cache_seconds

    @property
    def streamed(self) -> dict[str, Decimal]:
        """The symbols (`ETH/USDT`) whose stream is live, at their latest price."""
        return {symbol: self._latest[symbol][0] for symbol in self._live}

    @property
    def client(self) -> Any:
        """The one ccxt instance, created on first use (inside the running event loop)."""
        if self._client is None:
            self._client = exchange_client.create_exchange(self.exchange_id, None, **self._options)
        return self._client

    async def observe(self, base: str, quote: str) -> Observation:
        """The exchange's last spot price of `base` in `quote`: the last push while the symbol's
        stream lives, else the raw REST ticker (which starts the stream where there is one)."""
        symbol = f"{base}/{quote}"
        latest = self._latest.get(symbol)
        if latest is not None and self._clock.monotonic() - latest[2] < self._cache_seconds:
            return Observation(latest[0], latest[1])
        rate = await exchange_client.last_price(
            self.client, self.name, self._field, base, quote, self._budget.listings
        )
        if self._stream_field is not None:
            self._keep(symbol, rate)
            self._follow(symbol, self._stream_field)  # after a REST answer: the market exists
        return Observation(rate, self._clock())

    async def mark(self, contract: Contract) -> Decimal:
        """The exchange's mark of a contract, read now (`venues/contract_marks`)."""
        return await read_mark(self.client, self.name, self._mapping, contract)

    def _keep(self, symbol: str, rate: Decimal) -> None:
        self._latest[symbol] = (rate, self._clock(), self._clock.monotonic())

    def _follow(self, symbol: str, field: str) -> None:
        watcher = self._watchers.get(symbol)
        if watcher is None or watcher.done():
            self._watchers[symbol] = asyncio.ensure_future(self._watch(symbol, field))

    async def _watch(self, symbol: str, field: str) -> None:
        """Keep `symbol`'s last pushed price while its stream lives; resubscribe after a failure."""
        client = self.client
        while True:
            try:
                while True:
                    ticker = await client.watch_ticker(symbol)
                    self._keep(symbol, number(ticker.get("info"), field))
                    self._live.add(symbol)
            except asyncio.CancelledError:
                self._live.discard(symbol)
                raise
            except Exception as exc:  # a stream is an adapter boundary: REST covers it
                self._live.discard(symbol)
                log.warning(
                    "ticker_stream_down", source=self.name, symbol=symbol, error=_describe(exc)
                )
            await asyncio.sleep(STREAM_RETRY)

    async def aclose(self) -> None:
        """Stop the streams and close the ccxt session, even while being cancelled."""
        watchers, self._watchers = list(self._watchers.values()), {}
        client, self._client = self._client, None
        with anyio.move_on_after(exchange_client.CLOSE_GRACE, shield=True):
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        await exchange_client.close_all([] if client is None else [client], source=self.name)


def _describe(exc: Exception) -> str:
    """The failure's kind, and a malformed push's reason (ccxt's text may hold the URL)."""
    return f"BadField: {exc}" if isinstance(exc, BadField) else type(exc).__name__
