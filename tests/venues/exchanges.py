"""A fake exchange server and a ccxt instance pointed at it, for the exchange venue's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from equity_daemon.venues.exchange_client import Credentials, create_exchange
from equity_daemon.venues.fake_exchange import FakeExchange, FakeState, fake_exchange

EXCHANGES = ("binance", "bybit", "okx")
# recognisable, so a test can prove none of them reaches a message or a log line
CREDENTIALS = Credentials("CANARYKEY7f3a9", "CANARYSECRET5b1e", "CANARYPASS20c4")
SECRETS = ("CANARYKEY7f3a9", "CANARYSECRET5b1e", "CANARYPASS20c4")


@asynccontextmanager
async def connected(
    exchange: str, state: FakeState | None = None, request_timeout: float = 5.0
) -> AsyncIterator[tuple[FakeExchange, Any]]:
    """A started fake `exchange` and a ccxt instance pointed at it; both closed on exit.

    `request_timeout` is ccxt's, per HTTP request.
    """
    async with fake_exchange(exchange, state) as fake:
        client = create_exchange(
            exchange, CREDENTIALS, base_url=fake.base_url, timeout=request_timeout, rate_limit=False
        )
        try:
            yield fake, client
        finally:
            await client.close()
