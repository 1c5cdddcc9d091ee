"""An exchange's public market data as a price source: no key, one per exchange, for every book.

Tickers need no account: a `[markets.<name>]` entry configures an exchange's market data once,
and any book's price edges can name it in `sources`. The daemon builds one `ExchangeMarket` per
entry, so every book and edge that asks Binance for a price goes through one ccxt instance (one
connection pool, one markets cache), and through the exchange host's shared request budget
(`exchange_budget`) with every venue of that exchange.

An answer is the exchange's last spot price (the raw ticker's field named by
`venues/exchanges/<x>.TICKER_LAST`, parsed from its string), read over REST and reused for
`cache_seconds`. A book whose positions move fast sets `quote_cache_seconds` lower (0: every
cycle). An exchange venue can still quote prices itself (`sources = ["<venue>"]`), through its
own instance; a market entry saves one instance and one markets load per venue.
"""

from __future__ import annotations

from typing import Any

import anyio
import structlog

from equity_daemon.clock import Clock
from equity_daemon.oracle import Observation
from equity_daemon.prices import SourceKind
from equity_daemon.venues import exchange_client
from equity_daemon.venues.exchange import CLOSE_GRACE, MAPPINGS
from equity_daemon.venues.exchange_budget import RequestBudget

log = structlog.get_logger()


class ExchangeMarket:
    """One exchange's public tickers, read without a key.

    Args:
        name: the source's name in edges' `sources` (and in logs and metrics).
        exchange_id: `binance`, `bybit` or `okx`.
        base_url, sandbox: where requests go, as for an exchange venue (`exchange_urls`).
        request_timeout: seconds for one HTTP request.
        rate_limit: ccxt's client-side throttle (off only against a local test server).
        cache_seconds: how long an answer may be reused.
        budget: the exchange host's request budget, shared with its venues.
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
    ) -> None:
        if exchange_id not in MAPPINGS:
            raise ValueError(f"unsupported exchange {exchange_id!r}")
        self.name = name
        self.exchange_id = exchange_id
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._field = MAPPINGS[exchange_id].TICKER_LAST
        self._options: dict[str, Any] = {
            "base_url": base_url,
            "sandbox": sandbox,
            "timeout": request_timeout,
            "rate_limit": rate_limit,
            "budget": budget,
        }
        self._client: Any = None

    def __repr__(self) -> str:
        return f"ExchangeMarket({self.name!r}, {self.exchange_id!r})"

    @property
    def client(self) -> Any:
        """The one ccxt instance, created on first use (inside the running event loop)."""
        if self._client is None:
            self._client = exchange_client.create_exchange(self.exchange_id, None, **self._options)
        return self._client

    async def observe(self, base: str, quote: str) -> Observation:
        """The exchange's last spot price of `base` in `quote`, from its raw ticker."""
        rate = await exchange_client.last_price(self.client, self.name, self._field, base, quote)
        return Observation(rate, self._clock())

    async def aclose(self) -> None:
        """Close the ccxt session, even while being cancelled."""
        client, self._client = self._client, None
        if client is None:
            return
        with anyio.move_on_after(CLOSE_GRACE, shield=True):
            try:
                await client.close()
            except Exception as exc:  # closing is best effort
                log.warning("exchange_close_failed", source=self.name, error=type(exc).__name__)
