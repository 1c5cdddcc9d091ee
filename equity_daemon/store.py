"""The shared position store: the latest state of every venue, written by pollers.

Pollers `update()` it; the calculator loop reads `states()`. A report that changes what equity
sees (different positions, a new revision of what the venue serves, or a venue going up or down)
pulls the `changed` trigger, so the loop recalculates right away instead of at its next tick.

Reports are read back with their timestamps moved by however far the wall clock was stepped
since they arrived (see `clock`), so a report's age is the time that really passed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta

import anyio

from equity_daemon.clock import Clock, offset, shift_since
from equity_daemon.model import VenueReport, VenueState

NO_REPORT_YET = "no report yet"
# Below this, a difference between the clocks is drift and rounding, not a step.
SMALLEST_STEP = timedelta(seconds=1)


class Trigger:
    """A level-triggered wake-up: `pull()` any number of times; `wait()` returns once per batch."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def pull(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = anyio.Event()


@dataclass(frozen=True, slots=True)
class _Kept:
    """A report and the clocks' offset when it arrived."""

    report: VenueReport
    offset: timedelta


class PositionStore:
    """Latest `VenueState` per venue name. Every known venue has a state from the start."""

    def __init__(self, venues: Iterable[str], clock: Clock) -> None:
        self._clock = clock
        start = _Kept(VenueReport.failed("", clock(), NO_REPORT_YET), offset(clock))
        self._started = start  # when following began: a venue not heard from yet is awaited
        self._latest = {
            name: replace(start, report=replace(start.report, venue=name)) for name in venues
        }
        self._good: dict[str, _Kept] = {}
        self._notes: dict[str, str | None] = {}
        self.changed = Trigger()

    def update(self, report: VenueReport) -> bool:
        """Record a report; returns (and signals) whether equity could see a difference."""
        previous = self._latest[report.venue].report
        kept = _Kept(report, offset(self._clock))
        self._latest[report.venue] = kept
        if report.ok:
            self._good[report.venue] = kept
        changed = previous.ok != report.ok or (
            report.ok
            and (previous.positions != report.positions or previous.revision != report.revision)
        )
        if changed:
            self.changed.pull()
        return changed

    def note(self, venue: str, text: str | None) -> None:
        """Say how the venue is being followed (`stream silent for 40s; polling`), or clear it."""
        self._notes[venue] = text

    def states(self, venues: Iterable[str]) -> list[VenueState]:
        return [self.state(name) for name in venues]

    def state(self, venue: str) -> VenueState:
        good = self._good.get(venue)
        return VenueState(
            latest=self._read(self._latest[venue]),
            last_good=None if good is None else self._read(good),
            note=self._notes.get(venue),
            followed_since=self._read(self._started).fetched_at,
        )

    def _read(self, kept: _Kept) -> VenueReport:
        shift = shift_since(self._clock, kept.offset)
        if abs(shift) < SMALLEST_STEP:
            return kept.report
        report = kept.report
        as_of = None if report.as_of is None else report.as_of + shift
        return replace(report, fetched_at=report.fetched_at + shift, as_of=as_of)
