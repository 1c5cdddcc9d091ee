"""Fake Binance, Bybit and OKX servers that ccxt 4.5 can be pointed at, for tests and demos.

Shipped in the product, like httpx's `MockTransport` and this project's demo venue, for three
reasons: the exchange venue's tests and the end-to-end tests (which run the daemon as a child
process) both need it, so it must be importable without the test tree; it needs nothing beyond
aiohttp, which ccxt already brings; and an operator can point a configuration at it (its
`base_url` is the same setting that points a venue at a proxy) to try the exchange venue with
no keys and no network.

Each server speaks, on 127.0.0.1 at a random port, the subset of its exchange's REST API that
ccxt calls for markets, balances of every account type, positions, deposits and withdrawals,
tickers and mark prices, with the exchange's real field names and string-encoded numbers. It
checks that signing headers are present (never their values). Its state and its failures are
set from Python: `FakeExchange.set_*`, `FakeExchange.fail(path, Fault.RATE_LIMIT, ...)`.
"""

from __future__ import annotations

from collections.abc import Callable

from equity_daemon.venues.fake_exchange.binance import BinanceDialect
from equity_daemon.venues.fake_exchange.bybit import BybitDialect
from equity_daemon.venues.fake_exchange.okx import OkxDialect
from equity_daemon.venues.fake_exchange.server import (
    Dialect,
    FakeExchange,
    Fault,
    Held,
    Route,
    Seen,
)
from equity_daemon.venues.fake_exchange.state import (
    FakePosition,
    FakeState,
    Holding,
    Market,
    Transfer,
)

DIALECTS: dict[str, Callable[[FakeState], Dialect]] = {
    "binance": BinanceDialect,
    "bybit": BybitDialect,
    "okx": OkxDialect,
}


def fake_exchange(exchange: str, state: FakeState | None = None) -> FakeExchange:
    """A (not yet started) fake server for `exchange`: `binance`, `bybit` or `okx`."""
    return FakeExchange(DIALECTS[exchange], state)


__all__ = [
    "DIALECTS",
    "BinanceDialect",
    "BybitDialect",
    "Dialect",
    "FakeExchange",
    "FakePosition",
    "FakeState",
    "Fault",
    "Held",
    "Holding",
    "Market",
    "OkxDialect",
    "Route",
    "Seen",
    "Transfer",
    "fake_exchange",
]
