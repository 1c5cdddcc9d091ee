"""Two clocks: the wall clock says what time it is, the monotonic clock how long it has been.

Timestamps shown and stored are wall-clock UTC (spec-notes row 7). Durations — cache lifetimes,
the age of a report or a quote, health — are measured on the monotonic clock, because NTP or an
operator can step the wall clock by minutes in either direction: a backward step must not make a
cached price look new, nor a forward step make every venue look stale.

A timestamp the daemon keeps for a while is therefore kept with the clocks' `offset` at the time
it arrived. `shift_since` tells how far the wall clock has been stepped since; added to the
timestamp, it gives the wall time that, read against the current wall clock, shows the data's
true age.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """**Protocol**: the wall clock (call it) and the monotonic clock, injected for tests."""

    def __call__(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clocks: `datetime.now(UTC)` and `time.monotonic()`."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


def offset(clock: Clock) -> timedelta:
    """Wall time minus monotonic time: constant while nobody steps the wall clock."""
    return clock() - datetime.fromtimestamp(0, UTC) - timedelta(seconds=clock.monotonic())


def shift_since(clock: Clock, then: timedelta) -> timedelta:
    """How far the wall clock has been stepped since `offset(clock)` returned `then`."""
    return offset(clock) - then
