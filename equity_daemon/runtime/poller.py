"""One poll loop per venue account: fetch, time-limit, record, back off on failure.

Whatever a venue does — time out, refuse, answer garbage, raise something unexpected — the poller
turns it into a failed `VenueReport` with a reason and goes on; one venue never stops another.
Failures back off exponentially with jitter (so venues that failed together do not retry
together), up to `max_backoff`; the first success resets the interval.

A streaming venue is fetched once, then followed through `updates()` until that stream ends or
fails, and then fetched again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import anyio
import structlog

from equity_daemon.errors import VenueDataError, VenueUnavailable
from equity_daemon.model import VenueReport
from equity_daemon.store import PositionStore
from equity_daemon.venues.base import StreamingVenue, Venue

log = structlog.get_logger()


class PollMetrics(Protocol):
    """**Protocol**: where the poller reports how fetches go (see `metrics.DaemonMetrics`)."""

    def fetched(self, venue: str, seconds: float) -> None: ...

    def failed(self, venue: str, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class PollPolicy:
    interval: float
    timeout: float
    max_backoff: float = 300.0


def backoff(policy: PollPolicy, failures: int, rng: random.Random) -> float:
    """Exponential in the number of consecutive failures, capped, with jitter in [50 %, 100 %]."""
    ceiling = min(policy.max_backoff, policy.interval * 2.0 ** min(failures, 30))
    return ceiling * rng.uniform(0.5, 1.0)


async def fetch_once(
    venue: Venue, policy: PollPolicy, clock: Callable[[], datetime], metrics: PollMetrics
) -> VenueReport:
    started = time.perf_counter()
    try:
        with anyio.fail_after(policy.timeout):
            report = await venue.fetch()
    except TimeoutError:
        return _failed(venue, clock, metrics, "timeout", f"no answer within {policy.timeout:g}s")
    except Exception as exc:  # the adapter boundary: a bug in one venue must not stop the rest
        return _failed(venue, clock, metrics, *_classify(venue, exc))
    metrics.fetched(venue.name, time.perf_counter() - started)
    return report


def _classify(venue: Venue, exc: Exception) -> tuple[str, str]:
    """A bounded reason kind (a metric label) and a readable reason (no secrets: no URLs)."""
    if isinstance(exc, VenueUnavailable):
        return "unavailable", exc.reason
    if isinstance(exc, VenueDataError):
        return "malformed", exc.reason
    log.exception("venue_crashed", venue=venue.name)
    return "unexpected", f"unexpected {type(exc).__name__}"


def _failed(
    venue: Venue, clock: Callable[[], datetime], metrics: PollMetrics, kind: str, reason: str
) -> VenueReport:
    metrics.failed(venue.name, kind)
    log.warning("poll_failed", venue=venue.name, reason_kind=kind, reason=reason)
    return VenueReport.failed(venue.name, clock(), reason)


async def poll_forever(
    venue: Venue,
    store: PositionStore,
    policy: PollPolicy,
    clock: Callable[[], datetime],
    metrics: PollMetrics,
    rng: random.Random | None = None,
) -> None:
    rng = rng or random.Random()
    failures = 0
    structlog.contextvars.bind_contextvars(venue=venue.name)
    while True:
        report = await fetch_once(venue, policy, clock, metrics)
        store.update(report)
        if report.ok and isinstance(venue, StreamingVenue):
            report = await _follow(venue, store, clock, metrics)
        failures = 0 if report.ok else failures + 1
        await anyio.sleep(policy.interval if report.ok else backoff(policy, failures, rng))


async def _follow(
    venue: StreamingVenue,
    store: PositionStore,
    clock: Callable[[], datetime],
    metrics: PollMetrics,
) -> VenueReport:
    """Record every pushed report; return a failed report when the stream breaks."""
    try:
        async for report in venue.updates():
            store.update(report)
    except Exception as exc:  # the adapter boundary, as in fetch_once
        report = _failed(venue, clock, metrics, *_classify(venue, exc))
        store.update(report)
        return report
    return store.state(venue.name).latest
