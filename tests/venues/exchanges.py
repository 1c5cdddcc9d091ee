"""A fake exchange server and a ccxt instance pointed at it, for the exchange venue's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

import anyio

from equity_daemon.clock import SystemClock
from equity_daemon.model import VenueReport, VenueState
from equity_daemon.oracle import PriceOracle
from equity_daemon.prices import Quote
from equity_daemon.venues.contract_marks import ContractMarks
from equity_daemon.venues.exchange import ExchangeVenue
from equity_daemon.venues.exchange_client import Credentials, create_exchange
from equity_daemon.venues.fake_exchange import FakeExchange, FakeState, fake_exchange
from tests.reports import NOW, quote

EXCHANGES = ("binance", "bybit", "okx")
# recognisable, so a test can prove none of them reaches a message or a log line
CREDENTIALS = Credentials("CANARYKEY7f3a9", "CANARYSECRET5b1e", "CANARYPASS20c4")
SECRETS = ("CANARYKEY7f3a9", "CANARYSECRET5b1e", "CANARYPASS20c4")

V = TypeVar("V", bound=ExchangeVenue)


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


@asynccontextmanager
async def venue_at(
    kind: type[V], fake: FakeExchange, accounts: Sequence[str], **extra: Any
) -> AsyncIterator[V]:
    """A venue `cex` of `kind` reading `accounts` on `fake`, unthrottled and without transfers
    in transit unless `extra` says otherwise; closed on exit."""
    venue = kind(
        "cex",
        fake.name,
        tuple(accounts),
        CREDENTIALS,
        SystemClock(),
        base_url=fake.base_url,
        **{"rate_limit": False, "in_transit": False, **extra},
    )
    try:
        yield venue
    finally:
        await venue.aclose()


async def subscribed(fake: FakeExchange, *topics: str) -> None:
    """Waits until the fake has a subscriber to each of `topics`."""
    with anyio.fail_after(5):
        while any(not fake.dialect.subscribers.get(t) for t in topics):  # noqa: ASYNC110
            await anyio.sleep(0.01)


def quotes_at(
    report: VenueReport, prices: Sequence[tuple[str, str, str, str | None]]
) -> tuple[Quote, ...]:
    """Quotes of (base, quote, rate, source or None) dated at the report's fetch time, for a
    report read on the system clock."""
    age = NOW - report.fetched_at  # `quote` dates a quote NOW - age
    return tuple(
        quote(base, counter, rate, source=source or "binance", age=age)
        for base, counter, rate, source in prices
    )


async def with_marks(
    venue: ExchangeVenue, report: VenueReport, quotes: Sequence[Quote]
) -> tuple[Quote, ...]:
    """`quotes` and the marks of the contracts `report` holds, read from the venue's exchange
    by the daemon's own machinery (`ContractMarks`), as a cycle would."""
    marks = ContractMarks({venue.name: venue}, lambda venue: timedelta(minutes=5), SystemClock())
    edges = marks.edges([VenueState(report, report)])
    found = await PriceOracle([], SystemClock()).quotes(None, edges)
    assert not found.failures, found.failures
    # dated at the report's fetch, on whichever clock the test's venue runs
    return (*quotes, *(replace(q, at=report.fetched_at) for q in found.quotes))


class NoMetrics:
    """A poller's metrics that record nothing (`runtime.poller.PollMetrics`)."""

    def fetched(self, venue: str, seconds: float) -> None:
        pass

    def failed(self, venue: str, reason: str) -> None:
        pass

    def unconfirmed(self, venue: str) -> None:
        pass
