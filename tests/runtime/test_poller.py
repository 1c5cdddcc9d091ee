"""Pollers: every way a venue can fail becomes a failed report with a reason; nothing stops."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from decimal import Decimal

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.errors import VenueDataError, VenueUnavailable
from equity_daemon.model import Asset, Position, VenueReport
from equity_daemon.runtime.poller import PollPolicy, backoff, fetch_once, poll_forever
from equity_daemon.store import NO_REPORT_YET, PositionStore
from tests.reports import NOW

pytestmark = pytest.mark.anyio

POLICY = PollPolicy(interval=0.01, timeout=0.2, max_backoff=0.05)


class Recorder:
    def __init__(self) -> None:
        self.fetches: list[str] = []
        self.failures: list[tuple[str, str]] = []

    def fetched(self, venue: str, seconds: float) -> None:
        self.fetches.append(venue)

    def failed(self, venue: str, reason: str) -> None:
        self.failures.append((venue, reason))


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
        (KeyError("secret-looking detail"), "unexpected", "unexpected KeyError"),
    ],
)
async def test_a_failure_becomes_a_failed_report_with_its_reason(
    error: Exception, kind: str, reason: str
) -> None:
    metrics = Recorder()
    with capture_logs() as logs:
        got = await fetch_once(Scripted(error), POLICY, lambda: NOW, metrics)
    assert (got.ok, got.error) == (False, reason)
    assert metrics.failures == [("cex", kind)]
    assert "secret-looking detail" not in str(got.error)
    assert any(entry["event"] == "poll_failed" for entry in logs)


async def test_a_slow_venue_times_out() -> None:
    metrics = Recorder()
    with anyio.fail_after(5), capture_logs():
        got = await fetch_once(Slow(), POLICY, lambda: NOW, metrics)
    assert got.error == "no answer within 0.2s"
    assert metrics.failures == [("cex", "timeout")]


async def test_a_success_is_timed() -> None:
    metrics = Recorder()
    assert (await fetch_once(Scripted(report()), POLICY, lambda: NOW, metrics)).ok
    assert metrics.fetches == ["cex"]


def test_backoff_grows_is_capped_and_jittered() -> None:
    policy = PollPolicy(interval=1, timeout=1, max_backoff=30)
    rng = random.Random(0)
    delays = [backoff(policy, n, rng) for n in range(1, 10)]
    assert all(0.5 * min(30, 2**n) <= d <= min(30, 2**n) for n, d in enumerate(delays, start=1))
    assert max(delays) <= 30


async def test_the_poller_keeps_going_and_the_store_keeps_the_last_good_report() -> None:
    venue = Scripted(report("5"), VenueUnavailable("cex", "down"), report("6"))
    store = PositionStore(["cex"], NOW)
    assert store.state("cex").latest.error == NO_REPORT_YET
    seen: list[str | None] = []
    with capture_logs(), anyio.move_on_after(1):
        async with anyio.create_task_group() as tg:
            tg.start_soon(poll_forever, venue, store, POLICY, lambda: NOW, Recorder())
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
        super().__init__(["cex"], NOW)
        self.seen: list[object] = []

    def update(self, report: VenueReport) -> bool:
        self.seen.append(report.positions[0].amount if report.ok else report.error)
        return super().update(report)


async def test_a_streaming_venue_is_followed_and_refetched_when_its_stream_breaks() -> None:
    venue = Streaming()
    store = RecordingStore()
    with capture_logs(), anyio.move_on_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(poll_forever, venue, store, POLICY, lambda: NOW, Recorder())
            while venue.streams < 2:
                await store.changed.wait()
            tg.cancel_scope.cancel()
    assert store.seen[:5] == [1, 2, 3, "websocket closed", 1]


async def test_only_changes_pull_the_trigger() -> None:
    store = PositionStore(["cex"], NOW)
    assert store.update(report("1"))
    assert not store.update(report("1"))
    assert store.update(report("2"))
    assert store.update(VenueReport.failed("cex", NOW, "down"))
    assert not store.update(VenueReport.failed("cex", NOW, "down again"))
