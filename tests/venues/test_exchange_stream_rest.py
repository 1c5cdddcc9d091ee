"""A REST read never erases a push: every path that writes an exchange venue's state from REST
(the poller's covering fetch, the stream's resync and polls, a read that finishes late) applies
again the pushes heard since its request was sent, and never writes over what a later read
wrote. On the fake servers through ccxt, and through the daemon."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.model import VenueReport
from equity_daemon.venues.exchange import ExchangeVenue, StreamingExchangeVenue
from equity_daemon.venues.fake_exchange import FakeExchange, Holding, fake_exchange
from tests.venues.exchanges import subscribed, venue_at
from tests.venues.test_exchange_stream import (
    amounts,
    next_report,
    running,
    store_has,
    venue_config,
)

pytestmark = pytest.mark.anyio

D = Decimal
ACCOUNT = "/fapi/v3/account"  # Binance USDⓈ-M's balance answer


@asynccontextmanager
async def usdm(
    kind: type[ExchangeVenue] = StreamingExchangeVenue,
) -> AsyncIterator[tuple[FakeExchange, ExchangeVenue]]:
    """A Binance USDⓈ-M venue (its pushes are applied as they come) holding 1,000 USDT."""
    async with fake_exchange("binance") as fake:
        fake.set_account("futures", {"USDT": Holding(balance=D(1000))})
        async with venue_at(kind, fake, ("usdm",)) as venue:
            yield fake, venue


async def fetched(venue: ExchangeVenue, into: list[VenueReport]) -> None:
    into.append(await venue.fetch())


async def test_a_rest_fetch_never_erases_a_push_heard_while_it_was_out() -> None:
    async with usdm() as (fake, venue):
        assert isinstance(venue, StreamingExchangeVenue)
        async with aclosing(venue.updates()) as updates:
            await next_report(updates)
            await subscribed(fake, "account")
            held = fake.hold(ACCOUNT)
            reports: list[VenueReport] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(fetched, venue, reports)  # the poller's fetch, covering
                with anyio.fail_after(5):
                    await held.arrived.wait()  # its answer says 1,000, held back
                fake.set_holding("futures", "USDT", Holding(balance=D(2000)))
                assert await fake.push("account", coins=["USDT"]) == 1
                pushed = await next_report(updates)
                held.release()
            fake.set_holding("futures", "BNB", Holding(balance=D(1)))
            assert await fake.push("account", coins=["BNB"]) == 1
            after = await next_report(updates)
    assert amounts(pushed) == {"USDT": 2000}
    (report,) = reports
    assert amounts(report) == {"USDT": 2000}  # the push, applied again on the older answer
    assert amounts(after) == {"USDT": 2000, "BNB": 1}  # and the state kept it


async def test_a_read_that_finishes_after_a_later_one_never_writes_over_it() -> None:
    """A fetch that timed out and finishes later (or a slow one overtaken by the next): its
    answer is older than the state, which it must not take back in time."""
    async with usdm(ExchangeVenue) as (fake, venue):
        await venue.fetch()
        held = fake.hold(ACCOUNT)
        reports: list[VenueReport] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(fetched, venue, reports)
            with anyio.fail_after(5):
                await held.arrived.wait()  # its answer says 1,000, held back
            fake.set_holding("futures", "USDT", Holding(balance=D(1500)))  # no push says so
            later = await venue.fetch()
            held.release()
        again = await venue.fetch()
    assert amounts(later) == {"USDT": 1500}
    (late,) = reports
    assert amounts(late) == {"USDT": 1500}  # the state, not its own older answer
    assert amounts(again) == {"USDT": 1500}


async def test_the_daemon_raises_one_threshold_event_for_a_push_heard_while_rest_covers(
    tmp_path: Path,
) -> None:
    """The stream is quiet, so the poller's REST fetches cover; a push arrives while one is
    out. That fetch's older answer must not take the push back (1000 -> 2000 -> 1000, and a
    third event when the next resync restores it)."""
    async with fake_exchange("binance") as fake:
        fake.set_account("futures", {"USDT": Holding(balance=D(1000))})
        venue = venue_config(
            fake, kind="binance", accounts=["usdm"], keepalive_seconds=0.5, interval_seconds=0.2
        )
        with capture_logs():
            async with running(tmp_path, venue) as daemon:
                await subscribed(fake, "account")
                with anyio.fail_after(5):
                    while "stream silent" not in str(daemon.store.state("cex").note):  # noqa: ASYNC110
                        await anyio.sleep(0.02)
                held = fake.hold(ACCOUNT)  # the next covering fetch's answer: 1,000
                with anyio.fail_after(5):
                    await held.arrived.wait()
                fake.set_holding("futures", "USDT", Holding(balance=D(2000)))
                assert await fake.push("account", coins=["USDT"]) == 1
                await store_has(daemon, lambda s: amounts(s.latest).get("USDT") == 2000)
                released = daemon.store.state("cex").latest.fetched_at
                held.release()
                await store_has(  # the covering fetch's report, recorded after the push's
                    daemon,
                    lambda s: s.latest.as_of is None and s.latest.fetched_at > released,
                )
                await anyio.sleep(0.3)  # any cycle that report started
                state = daemon.store.state("cex")
                events = await daemon.events(None)
    assert amounts(state.latest) == {"USDT": 2000}
    assert [e["kind"] for e in events] == ["threshold"]
