"""An HTTP price API as a fallback price source: DefiLlama's coins endpoint.

    GET {base_url}/prices/current/coingecko:ethereum,ethereum:0xae7ab…
    {"coins": {"coingecko:ethereum": {"price": 3012.5, "symbol": "ETH", "timestamp": 1764072000,
                                      "confidence": 0.99, "decimals": 18}, …}}

It prices in USD, so it answers `observe(base, "USD")` only; a book that values in USDT adds a
USD/USDT edge. The answer's own `timestamp` is the quote's time, and a slow remote API is worth a
cache: `cache_seconds` (30 by default) keeps the daemon from asking every cycle.

Prices arrive as JSON numbers: they are parsed straight into `Decimal`, never through a float.
A low `confidence`, a missing coin, a price that is not a positive number or a malformed body is
a failure of this source (the oracle counts and names it), never a zero.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

import httpx

from equity_daemon.oracle import Observation
from equity_daemon.prices import SourceKind


class PriceApiError(Exception):
    """The API gave no usable price; the message names the coin and why (no URL: it may carry a
    key)."""


class DefiLlama:
    """Args:
    name: the source's name in edges' `sources`.
    base_url: the API's scheme and host (a proxy's, a mirror's).
    coins: symbol -> DefiLlama coin id (`coingecko:ethereum`, `ethereum:0x…`).
    timeout: seconds per request.
    cache_seconds: how long an answer may be reused.
    min_confidence: answers the API is less sure of are refused.
    """

    kind = SourceKind.EXCHANGE_TICKER

    def __init__(
        self,
        name: str,
        base_url: str,
        coins: Mapping[str, str],
        timeout: float = 10.0,
        cache_seconds: float = 30.0,
        min_confidence: Decimal = Decimal("0.9"),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.cache_seconds = cache_seconds
        self._base_url = base_url.rstrip("/")
        self._coins = dict(coins)
        self._timeout = timeout
        self._min_confidence = min_confidence
        self._transport = transport

    async def observe(self, base: str, quote: str) -> Observation:
        coin = self._coins.get(base)
        if quote != "USD" or coin is None:
            raise LookupError(f"{self.name} prices {', '.join(sorted(self._coins))} in USD only")
        try:
            async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as http:
                response = await http.get(f"{self._base_url}/prices/current/{coin}")
        except httpx.HTTPError as exc:
            raise PriceApiError(f"{coin}: {type(exc).__name__}") from None
        if not response.is_success:
            raise PriceApiError(f"{coin}: HTTP {response.status_code}")
        return self._read(coin, response.content)

    def _read(self, coin: str, body: bytes) -> Observation:
        try:
            entry = json.loads(body, parse_float=Decimal, parse_int=Decimal)["coins"][coin]
            price, stamp = entry["price"], entry["timestamp"]
            confidence = entry.get("confidence", Decimal(1))
        except (ValueError, KeyError, TypeError):
            raise PriceApiError(f"{coin}: no price in the answer") from None
        if not isinstance(price, Decimal) or not isinstance(stamp, Decimal):
            raise PriceApiError(f"{coin}: price or timestamp is not a number")
        if not isinstance(confidence, Decimal) or confidence < self._min_confidence:
            raise PriceApiError(f"{coin}: confidence {confidence} below {self._min_confidence}")
        try:
            at = datetime.fromtimestamp(int(stamp), UTC)
        except (OverflowError, ValueError, OSError):
            raise PriceApiError(f"{coin}: timestamp {stamp} is no time") from None
        return Observation(price, at)
