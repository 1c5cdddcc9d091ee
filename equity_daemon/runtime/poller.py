"""One poll loop per venue account: fetch, check, confirm, record, back off on failure.

Whatever a venue does — time out, block in a thread, refuse, answer garbage, raise something
unexpected — the poller turns it into a failed `VenueReport` with a reason and goes on; one venue
never stops another. Every report passes `sanity.check_report` before the store sees it, and a
report that suddenly holds nothing (or almost nothing) of what the last good one held is fetched
once more before it is believed (`sanity.sudden_loss`): an HTTP 200 with an empty body, or a file
caught half-written, must not read as a crash of the book.

Remote venues back off exponentially with jitter after failures (so venues that failed together do
not retry together), up to `max_backoff`; a local venue (a file) is re-read at its interval. Two
failures set a floor under the pause: a refused key or permission (`VenueAuthError`) is retried
no more often than every `max_backoff` (retrying cannot fix it, and exchanges ban IPs that keep
failing authentication), and a venue's `Retry-After` (`VenueUnavailable.retry_after`, from a 429
or 418) is waited out in full. A refused fetch's report is marked `refused`, so that every book
holding the venue raises one `venue_refused` event (`monitor.refusals`), not only a log line.

A streaming venue is followed through `updates()`; REST fetches cover while the stream is down
or silent longer than its keep-alive window, at the venue's interval, until it delivers again.
Its pushes and fetches reach the store in two tasks: a report made before the one the store
holds (a fetch answered, then overtaken by a push recorded first) is not recorded, as it would
take the venue back in time (the venue's own state has both already).
A venue that also yields REST polls between pushes says when its stream last spoke
(`HeardVenue.last_heard`): silence is measured from that, not from its last report.
A stream whose login is refused is reconnected no sooner than `max_backoff`, as a refused fetch.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Protocol, runtime_checkable

import anyio
import structlog
from anyio.abc import TaskGroup

from equity_daemon.clock import Clock
from equity_daemon.errors import VenueAuthError, VenueDataError, VenueUnavailable
from equity_daemon.model import VenueReport
from equity_daemon.runtime.detached import Detached
from equity_daemon.sanity import BadData, check_report, sudden_loss
from equity_daemon.store import PositionStore
from equity_daemon.venues.base import StreamingVenue, Venue

log = structlog.get_logger()

# How long to wait before fetching again to confirm a report that lost (nearly) everything: long
# enough for a non-atomic file save or a venue's hiccup to pass, short enough not to matter.
CONFIRM_DELAY = 1.0


class PollMetrics(Protocol):
    """**Protocol**: where the poller reports how fetches go (see `metrics.DaemonMetrics`)."""

    def fetched(self, venue: str, seconds: float) -> None: ...

    def failed(self, venue: str, reason: str) -> None: ...

    def unconfirmed(self, venue: str) -> None: ...


@runtime_checkable
class HeardVenue(Protocol):
    """**Protocol**: a streaming venue that says when its stream last said something (a push,
    or its start), because it also yields reports that did not come from the stream (REST
    polls of what no push carries): those must not make a dead socket look alive."""

    @property
    def last_heard(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How a venue is polled: `backoff` is off for local venues, which fail only until fixed."""

    interval: float
    timeout: float
    max_backoff: float = 300.0
    backoff: bool = True


def backoff(policy: PollPolicy, failures: int, rng: random.Random) -> float:
    """Exponential in the number of consecutive failures, capped, with jitter in [50 %, 100 %]."""
    if not policy.backoff:
        return policy.interval
    ceiling = min(policy.max_backoff, policy.interval * 2.0 ** min(failures, 30))
    return ceiling * rng.uniform(0.5, 1.0)


async def fetch_once(
    venue: Venue,
    policy: PollPolicy,
    clock: Clock,
    metrics: PollMetrics,
    tg: TaskGroup | None = None,
    detached: Detached[VenueReport] | None = None,
    on_failure: Callable[[Exception], None] | None = None,
) -> VenueReport:
    """One fetch, time-limited and checked; a failed report (with the reason) on any failure.

    With a task group `tg`, the fetch runs there and a venue blocked in a thread cannot hold
    the caller past `policy.timeout`; `detached` keeps such a straggler from being started twice.
    `on_failure` sees the exception of a failed fetch (the poller reads its retry hints).
    """
    started = time.perf_counter()
    try:
        if tg is None:
            with anyio.fail_after(policy.timeout):
                report = await venue.fetch()
        else:
            call = partial(_bounded_fetch, venue, policy.timeout)
            report = await (detached or Detached())(tg, policy.timeout, call)
        report = check_report(report, venue.name, clock())
    except TimeoutError:
        return _failed(venue, clock, metrics, "timeout", f"no answer within {policy.timeout:g}s")
    except Exception as exc:  # the adapter boundary: a bug in one venue must not stop the rest
        if on_failure is not None:
            on_failure(exc)
        return _failed(venue, clock, metrics, *_classify(venue, exc))
    metrics.fetched(venue.name, time.perf_counter() - started)
    return report


async def _bounded_fetch(venue: Venue, seconds: float) -> VenueReport:
    with anyio.fail_after(seconds):
        return await venue.fetch()


def _classify(venue: Venue, exc: Exception) -> tuple[str, str]:
    """A bounded reason kind (a metric label) and a readable reason (no secrets: no URLs)."""
    if isinstance(exc, VenueUnavailable):
        return "unavailable", exc.reason
    if isinstance(exc, VenueAuthError):
        return "auth", exc.reason
    if isinstance(exc, VenueDataError):
        return "malformed", exc.reason
    if isinstance(exc, BadData):
        return "malformed", str(exc)
    log.exception("venue_crashed", venue=venue.name)
    return "unexpected", f"unexpected {type(exc).__name__}"


def _failed(
    venue: Venue, clock: Clock, metrics: PollMetrics, kind: str, reason: str
) -> VenueReport:
    metrics.failed(venue.name, kind)
    log.warning("poll_failed", venue=venue.name, reason_kind=kind, reason=reason)
    return VenueReport.failed(venue.name, clock(), reason, refused=kind == "auth")


class Poller:
    """Keeps one venue's state in the store current.

    Args:
        prices: the book's latest prices by symbol, to judge how much of its value a report lost.
        confirm_delay: seconds before the fetch that confirms a sudden loss.
    """

    def __init__(
        self,
        venue: Venue,
        store: PositionStore,
        policy: PollPolicy,
        clock: Clock,
        metrics: PollMetrics,
        prices: Callable[[], Mapping[str, Decimal]] = dict,
        rng: random.Random | None = None,
        confirm_delay: float = CONFIRM_DELAY,
    ) -> None:
        self.venue = venue
        self._store = store
        self.policy = policy
        self._clock = clock
        self._metrics = metrics
        self._prices = prices
        self._rng = rng or random.Random()
        self._confirm_delay = min(confirm_delay, policy.interval)
        self._detached: Detached[VenueReport] = Detached()
        self._last_push = clock.monotonic()
        self._floor = 0.0  # the shortest pause the last failure allows (auth, Retry-After)

    async def fetch(self, tg: TaskGroup) -> VenueReport:
        """One fetch into the store, confirmed by a second one when it lost (nearly) everything."""
        report = await self._fetch(tg)
        if self._suspicious(report):
            log.warning("report_unconfirmed", venue=self.venue.name, lines=len(report.positions))
            await anyio.sleep(self._confirm_delay)
            report = await self._confirmed(tg, report)
        self._record(report)
        return report

    def _record(self, report: VenueReport) -> None:
        """Into the store, unless it holds a good report made after this good one."""
        held = self._store.state(self.venue.name).latest
        if report.ok and held.ok and report.fetched_at < held.fetched_at:
            log.debug("report_overtaken", venue=self.venue.name)
            return
        self._store.update(report)

    async def run(self, tg: TaskGroup) -> None:
        """Poll (or follow the stream) forever; the first fetch is assumed done by the caller."""
        structlog.contextvars.bind_contextvars(venue=self.venue.name)
        if isinstance(self.venue, StreamingVenue):
            async with anyio.create_task_group() as inner:
                inner.start_soon(self._follow_forever, self.venue, tg)
                await self._cover_silences(self.venue, tg)
        else:
            await self._poll_forever(tg, failures=0)

    async def _fetch(self, tg: TaskGroup) -> VenueReport:
        self._floor = 0.0
        return await fetch_once(
            self.venue,
            self.policy,
            self._clock,
            self._metrics,
            tg,
            self._detached,
            self._note_failure,
        )

    def _note_failure(self, exc: Exception) -> None:
        if isinstance(exc, VenueAuthError):
            self._floor = self.policy.max_backoff
            log.error(
                "venue_auth_failed",
                venue=self.venue.name,
                reason=exc.reason,
                retry_in_seconds=self.policy.max_backoff,
            )
        elif isinstance(exc, VenueUnavailable) and exc.retry_after is not None:
            self._floor = exc.retry_after

    def _suspicious(self, report: VenueReport) -> bool:
        last_good = self._store.state(self.venue.name).last_good
        return report.ok and sudden_loss(last_good, report, self._prices())

    async def _confirmed(self, tg: TaskGroup, report: VenueReport) -> VenueReport:
        """A fresh fetch decides: the same loss again is believed; anything else replaces it."""
        second = await self._fetch(tg)
        if self._suspicious(second):
            log.warning("report_loss_confirmed", venue=self.venue.name)
        else:
            self._metrics.unconfirmed(self.venue.name)
            log.warning("report_loss_not_confirmed", venue=self.venue.name, now_ok=second.ok)
        return second

    async def _poll_forever(self, tg: TaskGroup, failures: int) -> None:
        while True:
            failures = 0 if (await self.fetch(tg)).ok else failures + 1
            await anyio.sleep(self._pause(failures))

    def _pause(self, failures: int) -> float:
        if not failures:
            return self.policy.interval
        return max(backoff(self.policy, failures, self._rng), self._floor)

    async def _follow_forever(self, venue: StreamingVenue, tg: TaskGroup) -> None:
        """Record every push; when the stream breaks, note it and reconnect after a backoff."""
        failures = 0
        while True:
            updates = venue.updates()
            retry_after = 0.0
            refused: VenueAuthError | None = None
            try:
                async for pushed in updates:
                    self._last_push = self._clock.monotonic()
                    failures = 0
                    await self._record_push(pushed, tg)
                reason = "stream ended"
            except Exception as exc:  # the adapter boundary, as in fetch_once
                reason = _classify(venue, exc)[1]
                if isinstance(exc, VenueUnavailable) and exc.retry_after is not None:
                    retry_after = exc.retry_after  # a 429 to one of the stream's REST reads
                refused = exc if isinstance(exc, VenueAuthError) else None
            finally:  # a generator is closed here, in its own task, not later by the collector
                aclose = getattr(updates, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()
            failures += 1
            self._store.note(venue.name, f"stream down ({reason}); polling")
            log.warning("stream_down", venue=venue.name, reason=reason)
            await anyio.sleep(retry_after)  # the exchange's Retry-After, waited out in full
            await self.fetch(tg)  # what changed while it was down; REST covers from here on
            if refused is not None:  # a refused login is not retried soon, even if REST works
                self._note_failure(refused)
            await anyio.sleep(max(backoff(self.policy, failures, self._rng), self._floor))

    async def _record_push(self, pushed: VenueReport, tg: TaskGroup) -> None:
        try:
            report = check_report(pushed, self.venue.name, self._clock())
        except BadData as exc:
            report = _failed(self.venue, self._clock, self._metrics, "malformed", str(exc))
        if self._suspicious(report):
            log.warning("push_unconfirmed", venue=self.venue.name)
            report = await self._confirmed(tg, report)
        venue = self.venue
        speaking = not isinstance(venue, StreamingVenue) or self._silence(venue) < venue.keepalive
        if speaking:  # a REST poll's report between pushes is not the stream speaking again
            self._store.note(venue.name, None)
        self._record(report)

    def _silence(self, venue: StreamingVenue) -> float:
        """Seconds since the stream last said something."""
        heard = venue.last_heard if isinstance(venue, HeardVenue) else None
        return self._clock.monotonic() - (self._last_push if heard is None else heard)

    async def _cover_silences(self, venue: StreamingVenue, tg: TaskGroup) -> None:
        """REST fetches at the venue's interval while the stream says nothing."""
        failures = 0
        while True:
            silent = self._silence(venue)
            if silent < venue.keepalive:
                await anyio.sleep(venue.keepalive - silent)
                continue
            self._store.note(venue.name, f"stream silent for {silent:.0f}s; polling")
            failures = 0 if (await self.fetch(tg)).ok else failures + 1
            await anyio.sleep(self._pause(failures))
