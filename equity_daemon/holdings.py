"""What each venue of a book holds, as far as its last good report says, and how fresh that is.

Pure. A venue keeps counting with its last good report; its status says how far to trust it:

| latest fetch | last good report             | status    | problem            |
|--------------|------------------------------|-----------|--------------------|
| ok           | within its max age           | `ok`      |                    |
| ok           | older                        | `stale`   | `stale_venue`      |
| failed       | within its max age           | `failing` | (one timeout is not an outage) |
| failed       | older                        | `failed`  | `failed_venue`     |
| failed       | none, followed < max age     | `waiting` | `unreported_venue` |
| failed       | none, longer, or refused     | `failed`  | `failed_venue`     |

A venue with no good report at all is `unreported`: its holdings are unknown (`unknown.Gaps`).
It is awaited for its max age from when the daemon began following it
(`VenueState.followed_since`), as a failing venue is, before it counts as an outage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from equity_daemon.model import (
    Position,
    Problem,
    ProblemKind,
    ReportedTotal,
    VenueState,
    VenueSummary,
)

# (latest fetch succeeded, last good report within max age) -> the venue's status
STATUS = {
    (True, True): "ok",
    (True, False): "stale",
    (False, True): "failing",
    (False, False): "failed",
}
WAITING = "waiting"  # no good report yet, within the venue's max age of being followed


@dataclass
class Holdings:
    """What the venues hold, as far as their last good reports say, and how fresh that is."""

    summaries: list[VenueSummary] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    reported: list[tuple[str, ReportedTotal]] = field(default_factory=list)
    unreported: tuple[str, ...] = ()


def holdings(
    venues: Sequence[VenueState], now: datetime, max_age_of: Callable[[str], timedelta]
) -> Holdings:
    """Each venue's positions from its last good report, its summary, and its problems."""
    held = Holdings()
    unreported = []
    for state in sorted(venues, key=lambda s: s.venue):
        latest, good = state.latest, state.last_good
        max_age = max_age_of(state.venue)
        age = None if good is None else now - good.data_time
        fresh = age is not None and age <= max_age
        status = STATUS[(latest.ok, fresh)]
        if good is None:
            unreported.append(state.venue)
            followed = None if state.followed_since is None else now - state.followed_since
            # a refused key is no outage to wait out: retrying cannot fix it
            if followed is not None and followed <= max_age and not latest.refused:
                status = WAITING
                detail = f"no report since the daemon started {age_text(followed)} ago"
                detail += f" (latest: {latest.error})"
                held.problems.append(
                    Problem(ProblemKind.UNREPORTED_VENUE, state.venue, detail, followed)
                )
        if status == "stale":
            detail = f"last report is {age_text(age)} old"
            held.problems.append(Problem(ProblemKind.STALE_VENUE, state.venue, detail, age))
        elif status == "failed":
            since = "never succeeded" if age is None else f"last good {age_text(age)} ago"
            detail = f"{latest.error} ({since})"
            held.problems.append(Problem(ProblemKind.FAILED_VENUE, state.venue, detail, age))
        held.summaries.append(
            VenueSummary(
                venue=state.venue,
                status=status,
                fetched_at=None if good is None else good.fetched_at,
                age=age,
                block_number=None if good is None else good.block_number,
                error=latest.error,
                note=state.note,
            )
        )
        if good is not None:
            held.positions.extend(good.positions)
            held.reported.extend((state.venue, total) for total in good.reported)
    held.unreported = tuple(unreported)
    return held


def age_text(age: timedelta | None) -> str:
    if age is None:
        return "unknown"
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
