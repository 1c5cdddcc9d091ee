"""While a stream is live, what no push carries is polled over REST every interval: the account
types without a stream, the debt and interest of streamed ones, the transfers under way; a
failing poll fails the venue with the exchange's error. On the fake servers through ccxt."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.errors import VenueDataError, VenueUnavailable
from equity_daemon.model import VenueReport, VenueState
from equity_daemon.venues.exchange import StreamingExchangeVenue
from equity_daemon.venues.fake_exchange import FakeExchange, Fault, Holding, Transfer, fake_exchange
from tests.reports import equity_of, snapshot
from tests.venues.exchanges import quotes_at, subscribed, venue_at
from tests.venues.test_exchange_stream import running, venue_config

pytestmark = pytest.mark.anyio

D = Decimal
POLL = 0.3  # the venue's interval in these tests
# (base, quote, rate, source): quoted at the time of the report they value
PRICES = (
    ("ETH", "USDT", "3000", None),
    ("BTC", "USDT", "60000", None),
)


UNIFIED = {"USDT": Holding(balance=D(1000)), "ETH": Holding(balance=D(2), borrowed=D(1))}
FUNDING_PATH = "/v5/asset/transfer/query-account-coins-balance"


@asynccontextmanager
async def streaming(
    accounts: tuple[str, ...], fake: FakeExchange, **extra: Any
) -> AsyncIterator[AsyncIterator[VenueReport]]:
    """The updates of a streaming venue `cex` of `accounts` on `fake`, polled every `POLL`."""
    async with (
        venue_at(
            StreamingExchangeVenue, fake, accounts, **{"poll_seconds": POLL, **extra}
        ) as venue,
        aclosing(venue.updates()) as updates,
    ):
        yield updates


async def report_where(
    updates: AsyncIterator[VenueReport], seen: Any, within: float = 2 * POLL + 1
) -> VenueReport:
    """The first report for which `seen(report)` holds, within `within` seconds."""
    with anyio.fail_after(within):
        while not seen(report := await anext(updates)):
            pass
    return report


def lines(report: VenueReport, account: str | None = None) -> dict[tuple[str, str, Any], D]:
    return {
        (p.asset.symbol, p.kind.value, p.line_id): p.amount
        for p in report.positions
        if account is None or p.account == account
    }


def equity(report: VenueReport) -> Decimal:
    state = VenueState(report, report)
    return equity_of(snapshot(state, quotes=quotes_at(report, PRICES), now=report.fetched_at))


async def test_interest_accruing_while_the_stream_is_quiet_lowers_equity_within_one_interval() -> (
    None
):
    disagreed: list[str] = []
    async with fake_exchange("bybit") as fake:
        fake.set_account("unified", UNIFIED)
        async with streaming(("unified",), fake, on_disagreement=disagreed.append) as updates:
            first = await anext(updates)
            await subscribed(fake, "wallet", "position")
            # interest accrues (no push: Bybit's wallet topic carries no debt for ccxt)
            fake.set_holding(
                "unified", "ETH", Holding(balance=D(2), borrowed=D(1), interest=D("0.01"))
            )
            started = anyio.current_time()
            polled = await report_where(updates, lambda r: ("ETH", "debt", "interest") in lines(r))
            took = anyio.current_time() - started
            positions_read = len(fake.calls("/v5/position/list"))
    assert equity(first) - equity(polled) == D("0.01") * 3000  # exactly the interest, in USDT
    assert took < POLL + 1  # within one interval (and the poll's own round trip)
    assert lines(polled)[("ETH", "debt", None)] == 1
    assert disagreed == []  # a poll is no resync: nothing compared, nothing counted
    # the snapshot's USDT, USDC and inverse pages, and the poll's: an account whose pushes
    # leave out its debt is read whole, its holdings and debt of one moment
    assert positions_read == 6


async def test_a_funding_account_and_a_transfer_under_way_show_within_one_interval() -> None:
    async with fake_exchange("bybit") as fake:
        fake.set_account("unified", UNIFIED)
        fake.set_account("funding", {"USDT": Holding(balance=D(100))})
        async with streaming(("unified", "funding"), fake, in_transit=True) as updates:
            first = await anext(updates)
            fake.set_account("funding", {"USDT": Holding(balance=D(250))})
            fake.add_deposit(Transfer("ETH", D(1), "2", "0xarriving", 1_795_000_000_000))
            started = anyio.current_time()
            polled = await report_where(
                updates, lambda r: lines(r, "funding") == {("USDT", "asset", None): D(250)}
            )
            took = anyio.current_time() - started
            if ("ETH", "in_transit", "deposit:0xarriving") not in lines(polled):
                polled = await report_where(
                    updates, lambda r: ("ETH", "in_transit", "deposit:0xarriving") in lines(r)
                )
    assert lines(first, "funding") == {("USDT", "asset", None): D(100)}
    assert took < POLL + 1  # within one interval (and the poll's own round trip)
    assert lines(polled)[("ETH", "in_transit", "deposit:0xarriving")] == 1
    assert lines(polled, "unified") == lines(first, "unified")


async def test_binance_cross_margin_interest_beside_a_streamed_usdm_shows_within_one_interval() -> (
    None
):
    async with fake_exchange("binance") as fake:
        fake.set_account("futures", {"USDT": Holding(balance=D(5000))})
        fake.set_account("margin", {"ETH": Holding(balance=D(3), borrowed=D(1))})
        async with streaming(("usdm", "cross_margin"), fake) as updates:
            first = await anext(updates)
            fake.set_account(
                "margin", {"ETH": Holding(balance=D(3), borrowed=D(1), interest=D("0.002"))}
            )
            polled = await report_where(
                updates, lambda r: ("ETH", "debt", "interest") in lines(r, "cross_margin")
            )
    assert equity(first) - equity(polled) == D("0.002") * 3000
    assert lines(polled, "usdm") == lines(first, "usdm")


@pytest.mark.parametrize(
    ("fault", "retry_after"), [(Fault.SERVER_ERROR, None), (Fault.RATE_LIMIT, 7)]
)
async def test_a_failing_poll_ends_the_stream_with_the_exchanges_error(
    fault: Fault, retry_after: int | None
) -> None:
    async with fake_exchange("bybit") as fake:
        fake.set_account("unified", UNIFIED)
        fake.set_account("funding", {"USDT": Holding(balance=D(100))})
        async with streaming(("unified", "funding"), fake) as updates:
            await anext(updates)
            fake.fail(FUNDING_PATH, fault, retry_after=retry_after)
            with anyio.fail_after(2 * POLL + 1), pytest.raises(VenueUnavailable) as raised:
                async for _ in updates:
                    pass
    assert raised.value.retry_after == retry_after


async def test_a_poll_that_keeps_failing_fails_the_venue_and_keeps_its_lines(
    tmp_path: Path,
) -> None:
    async with fake_exchange("bybit") as fake:
        fake.set_account("unified", UNIFIED)
        fake.set_account("funding", {"USDT": Holding(balance=D(100))})
        venue = venue_config(fake, accounts=["unified", "funding"], interval_seconds=POLL)
        with capture_logs():
            async with running(tmp_path, venue) as daemon:
                before = daemon.latest()
                assert before is not None
                fake.fail(FUNDING_PATH, Fault.SERVER_ERROR, times=1000)
                with anyio.fail_after(5):
                    while daemon.store.state("cex").latest.ok:  # noqa: ASYNC110
                        await anyio.sleep(0.02)
                state = daemon.store.state("cex")
                sample = partial(
                    daemon.instruments.registry.get_sample_value,
                    "equity_daemon_stream_rest_disagreements_total",
                    {"venue": "cex"},
                )
                disagreements = sample()
    assert "unavailable" in str(state.latest.error)  # as any failed REST read says it
    assert state.last_good is not None
    kept: Mapping[tuple[str, str, Any], D] = lines(state.last_good, "funding")
    assert kept == {("USDT", "asset", None): D(100)}  # lines kept, the venue failing
    assert "stream down" in str(state.note)
    assert not disagreements


# --- a push while a REST snapshot is out -----------------------------------------------------

FUTURES_PATH = "/fapi/v3/account"  # Binance USDⓈ-M's balance answer


async def follow(updates: AsyncIterator[VenueReport], send: Any) -> None:
    async for report in updates:
        await send.send(report)


@asynccontextmanager
async def resyncing(
    disagreed: list[str], **extra: Any
) -> AsyncIterator[tuple[FakeExchange, AsyncIterator[VenueReport]]]:
    """A Binance USDⓈ-M venue (its pushes patch the state) holding 1,000 USDT that resyncs
    (`extra`), counting its disagreements in `disagreed`; its first report read and its stream
    subscribed."""
    async with fake_exchange("binance") as fake:
        fake.set_account("futures", {"USDT": Holding(balance=D(1000))})
        async with streaming(
            ("usdm",), fake, poll_seconds=3600, on_disagreement=disagreed.append, **extra
        ) as updates:
            await anext(updates)
            await subscribed(fake, "account")
            yield fake, updates


async def test_a_push_while_a_resync_is_out_is_neither_held_up_nor_undone_by_its_older_answer() -> (
    None
):
    disagreed: list[str] = []
    async with resyncing(disagreed, resync_seconds=0.3) as (fake, updates):
        held = fake.hold(FUTURES_PATH)
        send, reports = anyio.create_memory_object_stream[VenueReport](10)
        async with anyio.create_task_group() as tg:  # the stream followed meanwhile
            tg.start_soon(follow, updates, send)
            with anyio.fail_after(2):
                await held.arrived.wait()  # the resync's answer: USDT 1000, held back
            fake.set_holding("futures", "USDT", Holding(balance=D(2000)))
            assert await fake.push("account", coins=["USDT"]) == 1
            with anyio.fail_after(1):
                pushed = await reports.receive()  # the stream does not wait for REST
            held.release()
            with anyio.fail_after(2):
                resynced = await reports.receive()
            tg.cancel_scope.cancel()
        send.close()
        reports.close()
    assert lines(pushed)[("USDT", "asset", None)] == 2000
    assert resynced.as_of is None  # the snapshot's report, not a push's
    assert lines(resynced)[("USDT", "asset", None)] == 2000  # the push applied again on top
    assert disagreed == []  # it differed from the stream only by that push: not counted


@pytest.mark.parametrize(("grace", "counted"), [(2.0, []), (0.0, ["cex"])])
async def test_a_disagreement_right_after_a_push_is_not_counted(
    grace: float, counted: list[str]
) -> None:
    disagreed: list[str] = []
    async with resyncing(disagreed, resync_seconds=0.5, grace_seconds=grace) as (fake, updates):
        fake.set_holding("futures", "USDT", Holding(balance=D(2000)))
        assert await fake.push("account", coins=["USDT"]) == 1
        await anext(updates)
        # REST lags behind the stream: the next snapshot still says 1000
        fake.set_holding("futures", "USDT", Holding(balance=D(1000)))
        with anyio.fail_after(2), capture_logs():
            await anext(updates)
    assert disagreed == counted


async def test_a_coin_borrowed_after_the_snapshot_and_never_pushed_shows_within_one_interval() -> (
    None
):
    async with fake_exchange("bybit") as fake:
        fake.set_account("unified", UNIFIED)
        async with streaming(("unified",), fake) as updates:
            await anext(updates)
            fake.set_holding("unified", "BTC", Holding(balance=D("0.5"), borrowed=D("0.5")))
            fake.set_holding("unified", "ETH", Holding(balance=D(2)))  # repaid
            polled = await report_where(updates, lambda r: ("BTC", "debt", None) in lines(r))
    assert lines(polled, "unified") == {
        ("USDT", "asset", None): D(1000),
        ("ETH", "asset", None): D(2),  # its debt gone: the poll's answer owes nothing on it
        ("BTC", "asset", None): D("0.5"),  # a coin only the poll's answer has: taken whole
        ("BTC", "debt", None): D("0.5"),
    }


async def test_a_malformed_poll_answer_ends_the_stream_naming_the_account() -> None:
    async with fake_exchange("bybit") as fake:
        fake.set_account("unified", UNIFIED)
        async with streaming(("unified",), fake) as updates:
            await anext(updates)
            fake.fail("/v5/account/wallet-balance", Fault.EMPTY)
            with anyio.fail_after(2 * POLL + 1), pytest.raises(VenueDataError, match="unified"):
                async for _ in updates:
                    pass
