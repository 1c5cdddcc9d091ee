"""The exchange venue following OKX's private socket on the fake server: `account` and
`positions` pushes patch the REST snapshot of the `trading` account, debt is never lost or
counted twice, and the real daemon survives a refused login, a dropped socket and a bad push."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.errors import VenueAuthError, VenueDataError, VenueUnavailable
from equity_daemon.model import PositionKind
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.venues.base import StreamingVenue
from equity_daemon.venues.fake_exchange import (
    FakeExchange,
    FakePosition,
    Holding,
    OkxDialect,
    fake_exchange,
)
from equity_daemon.venues.fake_exchange.okx import FUTURE
from tests.reports import equity_of
from tests.venues.exchanges import SECRETS, subscribed
from tests.venues.test_exchange_stream import (
    amounts,
    holds,
    next_equity,
    next_report,
    running,
    store_has,
    venue_config,
    venue_of,
)
from tests.venues.test_exchange_stream import venue_on as stream_venue_on

pytestmark = pytest.mark.anyio

D = Decimal
START = {
    "USDT": Holding(balance=D(1000)),
    "ETH": Holding(balance=D(2), borrowed=D(1), interest=D("0.1")),
}
PAST_MS = 1_760_000_000_000  # the fake's clock for pushes: an event time well in the past


def venue_on(**extra: Any) -> AbstractAsyncContextManager[tuple[FakeExchange, Any]]:
    return stream_venue_on("okx", "trading", START, **extra)


def dialect(fake: FakeExchange) -> OkxDialect:
    assert isinstance(fake.dialect, OkxDialect)
    return fake.dialect


def hedges(report: Any) -> dict[str | None, Decimal]:
    return {p.line_id: p.amount for p in report.positions if p.kind is PositionKind.HEDGE}


async def test_an_okx_balance_push_changes_the_coin_at_once_as_of_its_event_time() -> None:
    async with venue_on() as (fake, venue), aclosing(venue.updates()) as updates:
        first = await next_report(updates)
        assert amounts(first) == {"USDT": 1000, "ETH": 2}
        await subscribed(fake, "account", "positions")
        fake.state.now_ms = lambda: PAST_MS
        fake.set_holding("trading", "ETH", Holding(balance=D(3), borrowed=D(1), interest=D("0.1")))
        assert await fake.push("account", coins=["ETH"]) == 1
        pushed = await next_report(updates)
    assert amounts(pushed) == {"USDT": 1000, "ETH": 3}  # USDT, not named, keeps its REST row
    assert amounts(pushed, PositionKind.DEBT) == {"ETH": 1}
    assert pushed.as_of == datetime.fromtimestamp(PAST_MS / 1000, UTC)
    (total,) = pushed.reported
    (before,) = first.reported
    assert total.amount - before.amount == 3000  # OKX's `totalEq` comes with the push


async def test_an_okx_push_without_a_time_is_dated_when_it_arrived() -> None:
    async with venue_on() as (fake, venue), aclosing(venue.updates()) as updates:
        await next_report(updates)
        await subscribed(fake, "account")
        message = dialect(fake).message("account", coins=["USDT"])
        account = message["data"][0]
        del account["uTime"]
        for row in account["details"]:
            row["uTime"] = ""
        assert await fake.send("account", message) == 1
        pushed = await next_report(updates)
    assert pushed.as_of is None  # its age is that of its arrival, never a guessed time
    assert amounts(pushed) == {"USDT": 1000, "ETH": 2}


async def test_okx_debt_moves_with_a_push_that_carries_it_and_is_kept_when_it_does_not() -> None:
    async with venue_on() as (fake, venue), aclosing(venue.updates()) as updates:
        await next_report(updates)
        await subscribed(fake, "account")
        # a repayment: OKX pushes the coin's new cashBal with its new liab and interest
        fake.set_holding("trading", "ETH", Holding(balance=D("1.5"), borrowed=D("0.5")))
        assert await fake.push("account", coins=["ETH"]) == 1
        repaid = await next_report(updates)
        # a push whose row leaves out liab and interest: the last known pair stays
        fake.set_holding("trading", "ETH", Holding(balance=D(4), borrowed=D(2)))
        message = dialect(fake).message("account", coins=["ETH"])
        (row,) = message["data"][0]["details"]
        row["liab"], row["interest"] = "", ""
        assert await fake.send("account", message) == 1
        kept = await next_report(updates)

    def net(report: Any) -> Decimal:
        lines = [p for p in report.positions if p.asset.symbol == "ETH"]
        return sum((-p.amount if p.kind is PositionKind.DEBT else p.amount for p in lines), D(0))

    assert amounts(repaid) == {"USDT": 1000, "ETH": D("1.5")}
    assert amounts(repaid, PositionKind.DEBT) == {"ETH": D("0.5")}
    assert net(repaid) == 1  # cashBal, counted once
    assert amounts(kept, PositionKind.DEBT) == {"ETH": D("0.5")}
    assert net(kept) == 2  # the pushed cashBal (4 - 2), the debt neither lost nor doubled
    assert amounts(kept) == {"USDT": 1000, "ETH": D("2.5")}


async def test_an_okx_position_is_opened_and_closed_by_push() -> None:
    async with venue_on() as (fake, venue), aclosing(venue.updates()) as updates:
        fake.set_positions([FakePosition("ETH", D(-2), D(3100))])
        first = await next_report(updates)
        assert hedges(first) == {"ETH/USDT:USDT:net": -2}
        await subscribed(fake, "account", "positions")
        fake.state.now_ms = lambda: PAST_MS
        fake.set_positions([FakePosition("ETH", D(0), D(3100)), FakePosition("BTC", D(1), D(1))])
        message = dialect(fake).message("positions")
        # ccxt follows every instrument type: a dated future's row is a hedge too, as on REST
        future = message["data"][0] | {"instType": "FUTURES", "instId": FUTURE, "pos": "-3"}
        message["data"].append(future)
        assert await fake.send("positions", message) == 1
        pushed = await next_report(updates)
    assert hedges(pushed) == {"BTC/USDT:USDT:net": 1, "ETH/USDT:USDT-261225:net": D("-0.3")}
    assert pushed.as_of == datetime.fromtimestamp(PAST_MS / 1000, UTC)


async def test_an_okx_coin_gone_to_zero_while_the_socket_was_down_is_zero_after_the_resync() -> (
    None
):
    async with venue_on() as (fake, venue):
        async with aclosing(venue.updates()) as updates:
            await next_report(updates)
            await subscribed(fake, "account")
            await fake.drop_streams()
            fake.set_holding("trading", "ETH", None)
            assert await fake.push("account") == 0  # nobody hears it
            with pytest.raises(VenueUnavailable):
                await next_report(updates)
        async with aclosing(venue.updates()) as updates:  # the poller's reconnect
            again = await next_report(updates)
    assert amounts(again) == {"USDT": 1000}
    assert amounts(again, PositionKind.DEBT) == {}


async def test_a_refused_okx_login_is_an_auth_error() -> None:
    async with venue_on() as (fake, venue), aclosing(venue.updates()) as updates:
        dialect(fake).refuse_stream_auth = True
        await next_report(updates)  # REST still answers
        with pytest.raises(VenueAuthError):
            await next_report(updates)


async def test_a_malformed_okx_push_fails_the_stream_with_the_reason() -> None:
    async with venue_on() as (fake, venue), aclosing(venue.updates()) as updates:
        await next_report(updates)
        await subscribed(fake, "account")
        message = dialect(fake).message("account")
        bad = copy.deepcopy(message)
        del bad["data"][0]["details"][0]["cashBal"]
        assert await fake.send("account", bad) == 1
        with pytest.raises(VenueDataError, match="trading: malformed push \\(no cashBal\\)"):
            await next_report(updates)


async def test_okx_trading_makes_a_streaming_venue_and_funding_does_not() -> None:
    assert isinstance(venue_of(okx_venue_config()), StreamingVenue)
    assert not isinstance(venue_of(okx_venue_config(accounts=["funding"])), StreamingVenue)


# --- the real daemon ------------------------------------------------------------------------


def okx_venue_config(fake: FakeExchange | None = None, **extra: Any) -> dict[str, Any]:
    _, _, password = SECRETS
    okx = {"kind": "okx", "password": password, "accounts": ["trading"], "interval_seconds": 0.2}
    return venue_config(fake, **{**okx, **extra})


@asynccontextmanager
async def okx_daemon(tmp_path: Path, **extra: Any) -> AsyncIterator[tuple[FakeExchange, Daemon]]:
    """The real daemon (its logs captured) following a fake OKX holding `START` in `trading`,
    once its socket is subscribed."""
    async with fake_exchange("okx") as fake:
        fake.set_account("trading", START)
        with capture_logs():
            async with running(tmp_path, okx_venue_config(fake, **extra)) as daemon:
                await subscribed(fake, "account", "positions")
                yield fake, daemon


async def test_an_okx_push_reaches_the_daemons_equity_at_once(tmp_path: Path) -> None:
    async with fake_exchange("okx") as fake:
        fake.set_account("trading", START)
        async with running(tmp_path, okx_venue_config(fake, interval_seconds=30)) as daemon:
            before = daemon.latest()
            assert before is not None
            await subscribed(fake, "account", "positions")
            fake.set_holding("trading", "USDT", Holding(balance=D(2000)))
            assert await fake.push("account", coins=["USDT"]) == 1
            latest = await next_equity(daemon, before)
    assert equity_of(latest) - equity_of(before) == 1000


async def test_a_refused_okx_login_is_noted_and_not_retried_soon(tmp_path: Path) -> None:
    async with fake_exchange("okx") as fake:
        fake.set_account("trading", START)
        dialect(fake).refuse_stream_auth = True
        with capture_logs() as logs:
            async with running(tmp_path, okx_venue_config(fake)) as daemon:
                await store_has(daemon, lambda s: "auth refused" in str(s.note))
                tried = dialect(fake).logins
                polled = len(fake.calls("/api/v5/account/balance"))
                await anyio.sleep(1.5)  # a plain backoff from 0.2 s would have retried by now
                assert dialect(fake).logins == tried
                held = daemon.store.state("cex").latest
                assert held is not None
                assert amounts(held) == {"USDT": 1000, "ETH": 2}  # REST still carries the book
                assert len(fake.calls("/api/v5/account/balance")) >= polled
    assert any(e["event"] == "venue_auth_failed" for e in logs)


async def test_a_dropped_okx_socket_is_covered_by_rest_and_comes_back(tmp_path: Path) -> None:
    async with okx_daemon(tmp_path) as (fake, daemon):
        await fake.drop_streams()
        fake.set_holding("trading", "USDT", Holding(balance=D(1500)))
        assert await fake.push("account") == 0  # the socket is down: nobody hears it
        await store_has(daemon, holds("USDT", 1500))
        assert "stream down" in str(daemon.store.state("cex").note)
        await subscribed(fake, "account", "positions")  # ccxt logged in again
        fake.set_holding("trading", "USDT", Holding(balance=D(1700)))
        assert await fake.push("account", coins=["USDT"]) == 1
        await store_has(daemon, lambda s: s.note is None and holds("USDT", 1700)(s))


async def test_a_silenced_okx_socket_falls_back_to_rest_past_its_keepalive(
    tmp_path: Path,
) -> None:
    async with okx_daemon(tmp_path, keepalive_seconds=0.5) as (fake, daemon):
        dialect(fake).silent = True  # half-open: no pong, no push
        fake.set_holding("trading", "USDT", Holding(balance=D(1300)))
        await store_has(daemon, lambda s: "stream silent" in str(s.note))
        await store_has(daemon, holds("USDT", 1300))


async def test_a_malformed_okx_push_is_noted_with_its_reason_and_the_daemon_goes_on(
    tmp_path: Path,
) -> None:
    async with okx_daemon(tmp_path) as (fake, daemon):
        bad = dialect(fake).message("account")
        bad["data"][0]["details"][0].pop("cashBal")
        assert await fake.send("account", bad) == 1
        await store_has(daemon, lambda s: "no cashBal" in str(s.note))
        fake.set_holding("trading", "USDT", Holding(balance=D(1200)))
        await store_has(daemon, holds("USDT", 1200))
        latest = daemon.latest()
        assert latest is not None
        assert latest.complete
