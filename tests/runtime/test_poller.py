"""Pollers: every way a venue can fail becomes a failed report with a reason; nothing stops."""

from __future__ import annotations

import random
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.errors import VenueAuthError, VenueDataError, VenueUnavailable
from equity_daemon.model import Asset, Position, VenueReport
from equity_daemon.runtime.poller import Poller, PollPolicy, backoff, fetch_once
from equity_daemon.store import NO_REPORT_YET, PositionStore
from tests.reports import NOW, Clock

pytestmark = pytest.mark.anyio

POLICY = PollPolicy(interval=0.01, timeout=0.2, max_backoff=0.05)


class Recorder:
    def __init__(self) -> None:
        self.fetches: list[str] = []
        self.failures: list[tuple[str, str]] = []
        self.unconfirmed_reports: list[str] = []

    def fetched(self, venue: str, seconds: float) -> None:
        self.fetches.append(venue)

    def failed(self, venue: str, reason: str) -> None:
        self.failures.append((venue, reason))

    def unconfirmed(self, venue: str) -> None:
        self.unconfirmed_reports.append(venue)


def report(amount: str = "1") -> VenueReport:
    return VenueReport("cex", NOW, (Position("cex", "spot", Asset("USDT"), Decimal(amount)),))


class Scripted:
    """Answers with each item in turn: a report, or an exception to raise."""

    name = "cex"

    def __init__(self, *script: VenueReport | Exception) -> None:
        self.script = list(script)
        self.calls = 0

    async def fetch(self) -> VenueReport:
        self.calls += 1
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return item


class Slow:
    name = "cex"

    async def fetch(self) -> VenueReport:
        await anyio.sleep(10)
        return report()


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (VenueUnavailable("cex", "HTTP 503"), "unavailable", "HTTP 503"),
        (VenueDataError("cex", "balances missing"), "malformed", "balances missing"),
        (VenueAuthError("cex", "AuthenticationError -2015"), "auth", "AuthenticationError -2015"),
        (KeyError("secret-looking detail"), "unexpected", "unexpected KeyError"),
    ],
)
async def test_a_failure_becomes_a_failed_report_with_its_reason(
    error: Exception, kind: str, reason: str
) -> None:
    metrics = Recorder()
    with capture_logs() as logs:
        got = await fetch_once(Scripted(error), POLICY, Clock(), metrics)
    assert (got.ok, got.error) == (False, reason)
    assert metrics.failures == [("cex", kind)]
    assert "secret-looking detail" not in str(got.error)
    assert any(entry["event"] == "poll_failed" for entry in logs)


async def test_a_slow_venue_times_out() -> None:
    metrics = Recorder()
    with anyio.fail_after(5), capture_logs():
        got = await fetch_once(Slow(), POLICY, Clock(), metrics)
    assert got.error == "no answer within 0.2s"
    assert metrics.failures == [("cex", "timeout")]


async def test_a_success_is_timed() -> None:
    metrics = Recorder()
    assert (await fetch_once(Scripted(report()), POLICY, Clock(), metrics)).ok
    assert metrics.fetches == ["cex"]


def test_backoff_grows_is_capped_and_jittered() -> None:
    policy = PollPolicy(interval=1, timeout=1, max_backoff=30)
    rng = random.Random(0)
    delays = [backoff(policy, n, rng) for n in range(1, 10)]
    assert all(0.5 * min(30, 2**n) <= d <= min(30, 2**n) for n, d in enumerate(delays, start=1))
    assert max(delays) <= 30


async def test_the_poller_keeps_going_and_the_store_keeps_the_last_good_report() -> None:
    venue = Scripted(report("5"), VenueUnavailable("cex", "down"), report("6"))
    store = PositionStore(["cex"], Clock())
    assert store.state("cex").latest.error == NO_REPORT_YET
    seen: list[str | None] = []
    with capture_logs(), anyio.move_on_after(1):
        async with anyio.create_task_group() as tg:
            tg.start_soon(Poller(venue, store, POLICY, Clock(), Recorder()).run, tg)
            while len(seen) < 3:
                await store.changed.wait()
                state = store.state("cex")
                seen.append(state.latest.error)
                if state.latest.error == "down":
                    assert state.last_good is not None
                    assert state.last_good.positions[0].amount == 5
            tg.cancel_scope.cancel()
    assert seen == [None, "down", None]
    assert store.state("cex").last_good.positions[0].amount == 6  # type: ignore[union-attr]


class Streaming:
    """Pushes two reports, then its stream breaks."""

    name = "cex"
    keepalive = 60.0

    def __init__(self) -> None:
        self.streams = 0

    async def fetch(self) -> VenueReport:
        return report("1")

    async def updates(self) -> AsyncIterator[VenueReport]:
        self.streams += 1
        yield report("2")
        yield report("3")
        raise VenueUnavailable("cex", "websocket closed")


class RecordingStore(PositionStore):
    def __init__(self) -> None:
        super().__init__(["cex"], Clock())
        self.seen: list[object] = []

    def update(self, report: VenueReport) -> bool:
        if not report.ok:
            self.seen.append(report.error)
        else:
            self.seen.append(report.positions[0].amount if report.positions else "empty")
        return super().update(report)


async def test_a_streaming_venue_is_followed_and_refetched_when_its_stream_breaks() -> None:
    venue = Streaming()
    store = RecordingStore()
    with capture_logs(), anyio.move_on_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(Poller(venue, store, POLICY, Clock(), Recorder()).run, tg)
            while venue.streams < 2:
                await store.changed.wait()
            tg.cancel_scope.cancel()
    assert store.seen[:4] == [2, 3, 1, 2]


async def test_only_changes_pull_the_trigger() -> None:
    store = PositionStore(["cex"], Clock())
    assert store.update(report("1"))
    assert not store.update(report("1"))
    assert store.update(report("2"))
    assert store.update(VenueReport.failed("cex", NOW, "down"))
    assert not store.update(VenueReport.failed("cex", NOW, "down again"))


class Quiet:
    """Pushes one report, then says nothing until told to; REST answers meanwhile."""

    name = "cex"
    keepalive = 0.1

    def __init__(self) -> None:
        self.rest_fetches = 0
        self.speak = anyio.Event()

    async def fetch(self) -> VenueReport:
        self.rest_fetches += 1
        return report("7")

    async def updates(self) -> AsyncIterator[VenueReport]:
        yield report("1")
        await self.speak.wait()
        while True:
            yield report("2")
            await anyio.sleep(0.01)


async def test_a_stream_silent_past_its_keepalive_falls_back_to_rest_until_it_delivers_again() -> (
    None
):
    venue = Quiet()
    store = RecordingStore()
    clock = Clock()
    with capture_logs(), anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(Poller(venue, store, POLICY, clock, Recorder()).run, tg)
            while venue.rest_fetches < 3:  # the stream is silent: REST covers at the interval
                clock.now += timedelta(seconds=0.05)
                await anyio.sleep(0.01)
            assert store.state("cex").note is not None
            assert "stream silent" in str(store.state("cex").note)
            assert 7 in store.seen
            venue.speak.set()
            while store.seen[-1] != 2:
                await store.changed.wait()
            await anyio.sleep(0.03)  # a REST fetch already under way when it spoke may finish
            fetches = venue.rest_fetches
            await anyio.sleep(0.05)  # keepalive not yet passed on the monotonic clock
            tg.cancel_scope.cancel()
    assert venue.rest_fetches == fetches  # delivering again: no more REST polling
    assert store.state("cex").note is None


class Emptied:
    """Holds USDT, then answers one empty report (an empty 200), then holds it again."""

    name = "cex"

    def __init__(self, *amounts: str | None) -> None:
        self.amounts = list(amounts)

    async def fetch(self) -> VenueReport:
        amount = self.amounts.pop(0) if len(self.amounts) > 1 else self.amounts[0]
        return VenueReport("cex", NOW, ()) if amount is None else report(amount)


async def test_a_report_that_suddenly_holds_nothing_is_confirmed_before_it_counts() -> None:
    store = RecordingStore()
    metrics = Recorder()
    poller = Poller(Emptied("100", None, "100"), store, POLICY, Clock(), metrics)
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                await poller.fetch(tg)
    assert store.seen == [100, 100]  # the empty report never reached the store
    assert metrics.unconfirmed_reports == ["cex"]
    assert [e["event"] for e in logs if "report" in e["event"]] == [
        "report_unconfirmed",
        "report_loss_not_confirmed",
    ]


async def test_a_report_that_stays_empty_on_a_fresh_fetch_is_believed() -> None:
    store = RecordingStore()
    poller = Poller(Emptied("100", None), store, POLICY, Clock(), Recorder())
    with capture_logs():
        async with anyio.create_task_group() as tg:
            await poller.fetch(tg)
            await poller.fetch(tg)
    assert store.seen == [100, "empty"]


async def test_a_report_that_keeps_most_of_its_value_is_not_questioned() -> None:
    store = RecordingStore()
    metrics = Recorder()
    poller = Poller(Emptied("100", "20"), store, POLICY, Clock(), metrics)
    async with anyio.create_task_group() as tg:
        await poller.fetch(tg)
        await poller.fetch(tg)
    assert store.seen == [100, 20]
    assert metrics.unconfirmed_reports == []


class Stuck:
    """A synchronous library call that ignores cancellation, in a worker thread."""

    name = "cex"

    def __init__(self) -> None:
        self.release = threading.Event()

    async def fetch(self) -> VenueReport:
        await anyio.to_thread.run_sync(self.release.wait)
        return report()


async def test_a_venue_blocked_in_a_thread_cannot_hold_the_caller_past_its_timeout() -> None:
    venue = Stuck()
    store = RecordingStore()
    metrics = Recorder()
    poller = Poller(venue, store, POLICY, Clock(), metrics)
    with capture_logs():
        async with anyio.create_task_group() as tg:
            with anyio.fail_after(2):
                first = await poller.fetch(tg)
                second = await poller.fetch(tg)  # waits for the same straggler, starts no other
            venue.release.set()
    assert (first.error, second.error) == ("no answer within 0.2s", "no answer within 0.2s")
    assert metrics.failures == [("cex", "timeout"), ("cex", "timeout")]


def test_a_failed_file_venue_is_reread_at_its_interval_not_after_backoff() -> None:
    local = PollPolicy(interval=2, timeout=1, backoff=False)
    assert [backoff(local, n, random.Random(0)) for n in (1, 5, 20)] == [2, 2, 2]


async def pause_after(error: Exception, policy: PollPolicy) -> float:
    """The pause the poller takes after one failed fetch raising `error`."""
    poller = Poller(Scripted(error), PositionStore(["cex"], Clock()), policy, Clock(), Recorder())
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            await poller.fetch(tg)
    pause = poller._pause(1)
    if isinstance(error, VenueAuthError):
        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["venue_auth_failed"]
    return pause


async def test_a_refused_key_is_retried_no_more_often_than_the_longest_backoff() -> None:
    policy = PollPolicy(interval=1, timeout=1, max_backoff=300)
    assert await pause_after(VenueAuthError("cex", "auth refused"), policy) == 300
    assert await pause_after(VenueUnavailable("cex", "down"), policy) <= 2  # the usual backoff


async def test_a_retry_after_is_waited_out_in_full() -> None:
    policy = PollPolicy(interval=1, timeout=1, max_backoff=300)
    limited = VenueUnavailable("cex", "rate limited; retry after 120s", retry_after=120)
    assert await pause_after(limited, policy) == 120


async def test_the_floor_goes_with_the_next_fetch() -> None:
    policy = PollPolicy(interval=1, timeout=1, max_backoff=300)
    venue = Scripted(VenueAuthError("cex", "auth refused"), report())
    poller = Poller(venue, PositionStore(["cex"], Clock()), policy, Clock(), Recorder())
    with capture_logs():
        async with anyio.create_task_group() as tg:
            await poller.fetch(tg)
            assert poller._pause(1) == 300
            assert (await poller.fetch(tg)).ok
    assert poller._pause(0) == 1
    assert poller._pause(1) <= 2


class PollsBetweenPushes:
    """A stream that pushed once, long ago, and since yields a REST poll's report every 10 ms:
    it says so through `last_heard`."""

    name = "cex"
    keepalive = 0.1

    def __init__(self, clock: Clock) -> None:
        self.last_heard = clock.monotonic()
        self.rest_fetches = 0

    async def fetch(self) -> VenueReport:
        self.rest_fetches += 1
        return report("7")

    async def updates(self) -> AsyncIterator[VenueReport]:
        while True:
            yield report("5")
            await anyio.sleep(0.01)


async def test_reports_of_rest_polls_do_not_make_a_silent_stream_look_alive() -> None:
    clock = Clock()
    venue = PollsBetweenPushes(clock)
    store = RecordingStore()
    with capture_logs(), anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(Poller(venue, store, POLICY, clock, Recorder()).run, tg)
            while venue.rest_fetches < 2:
                clock.now += timedelta(seconds=0.05)
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert "stream silent" in str(store.state("cex").note)


class RateLimitedStream:
    """Its stream fails at once with a 429 that says to retry after 0.3 s."""

    name = "cex"
    keepalive = 60.0

    def __init__(self) -> None:
        self.failed_at: float | None = None
        self.fetched_at: float | None = None

    async def fetch(self) -> VenueReport:
        if self.fetched_at is None:
            self.fetched_at = anyio.current_time()
        return report("1")

    async def updates(self) -> AsyncIterator[VenueReport]:
        if self.failed_at is None:  # the first failure: a loaded machine may see a second one
            self.failed_at = anyio.current_time()  # before the test looks, after the fetch
        raise VenueUnavailable("cex", "rate limited", retry_after=0.3)
        yield report("2")  # pragma: no cover - makes this a generator


async def test_a_stream_ended_by_a_rate_limit_waits_out_its_retry_after_before_rest() -> None:
    venue = RateLimitedStream()
    with capture_logs(), anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(Poller(venue, RecordingStore(), POLICY, Clock(), Recorder()).run, tg)
            while venue.fetched_at is None:  # noqa: ASYNC110
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert venue.failed_at is not None
    assert venue.fetched_at is not None
    assert venue.fetched_at - venue.failed_at >= 0.3


class Overtaken:
    """A streaming venue whose REST fetch answers, late, a report made before the push its
    stream delivered meanwhile (the poller records the push first)."""

    name = "cex"
    keepalive = 60.0

    def __init__(self) -> None:
        self.pushed = anyio.Event()

    async def fetch(self) -> VenueReport:
        made = report("1")  # made at NOW: before the push
        await self.pushed.wait()
        return made

    async def updates(self) -> AsyncIterator[VenueReport]:
        yield replace(report("2"), fetched_at=NOW + timedelta(seconds=1))
        self.pushed.set()
        await anyio.sleep_forever()


async def test_a_report_older_than_the_one_recorded_never_replaces_it() -> None:
    venue = Overtaken()
    store = RecordingStore()
    with capture_logs(), anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            poller = Poller(venue, store, POLICY, Clock(), Recorder())
            tg.start_soon(poller.fetch, tg)  # out while the push arrives
            tg.start_soon(poller.run, tg)
            await venue.pushed.wait()
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
    assert store.seen == [2]
    assert store.state("cex").latest.positions[0].amount == 2
