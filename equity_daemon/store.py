"""The shared position store: the latest state of every venue, written by pollers.

Pollers `update()` it; the calculator loop reads `states()`. A report that changes what equity
sees (different positions, or a venue going up or down) pulls the `changed` trigger, so the loop
recalculates right away instead of at its next tick.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import anyio

from equity_daemon.model import VenueReport, VenueState

NO_REPORT_YET = "no report yet"


class Trigger:
    """A level-triggered wake-up: `pull()` any number of times; `wait()` returns once per batch."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def pull(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = anyio.Event()


class PositionStore:
    """Latest `VenueState` per venue name. Every known venue has a state from the start."""

    def __init__(self, venues: Iterable[str], started_at: datetime) -> None:
        self._states = {
            name: VenueState(VenueReport.failed(name, started_at, NO_REPORT_YET), None)
            for name in venues
        }
        self.changed = Trigger()

    def update(self, report: VenueReport) -> bool:
        """Record a report; returns (and signals) whether equity could see a difference."""
        previous = self._states[report.venue]
        self._states[report.venue] = previous.updated(report)
        changed = previous.latest.ok != report.ok or (
            report.ok and previous.latest.positions != report.positions
        )
        if changed:
            self.changed.pull()
        return changed

    def states(self, venues: Iterable[str]) -> list[VenueState]:
        return [self._states[name] for name in venues]

    def state(self, venue: str) -> VenueState:
        return self._states[venue]
