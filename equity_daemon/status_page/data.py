"""What one rendering of the status page shows, and the time ranges its chart offers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from equity_daemon.model import EquityPoint

CHART_POINTS = 480  # at most, drawn per book: history is read thinned to this many


@dataclass(frozen=True, slots=True)
class ChartRange:
    """A span the chart can show: `key` is its `?range=` value, `label` how the page names it."""

    key: str
    label: str
    span: timedelta


RANGES = (
    ChartRange("1h", "1 h", timedelta(hours=1)),
    ChartRange("24h", "24 h", timedelta(hours=24)),
    ChartRange("7d", "7 d", timedelta(days=7)),
)
DEFAULT_RANGE = RANGES[1]
CHANGE_WINDOW = timedelta(hours=24)  # the headline's "over 24 h", whatever the chart shows


def chart_range(key: str | None) -> ChartRange | None:
    """The range a `?range=` value names (the default without one); None for any other text."""
    if key is None:
        return DEFAULT_RANGE
    return next((choice for choice in RANGES if choice.key == key), None)


@dataclass(frozen=True, slots=True)
class StatusData:
    """Everything one rendering of the page shows.

    `snapshots` are `/snapshot`'s documents (each with its `alert_band`), `events` `/events`'
    (oldest first: the latest ones, and each book's latest threshold alerts), `histories` each
    book's recorded equity over `range`, `baselines` each book's complete equity 24 h ago (or
    the first after it), what "over 24 h" compares with. `history_problem` says why history
    could not be read, when it could not. `exchange_bans` names each exchange whose ban (its
    `Retry-After`) holds every request to it, with when it ends.
    """

    now: datetime
    snapshots: Sequence[Mapping[str, Any]]
    histories: Mapping[str, Sequence[EquityPoint]]
    events: Sequence[Mapping[str, Any]]
    healthy: tuple[bool, str]
    ready: tuple[bool, Sequence[str]]
    history_problem: str | None = None
    signed_in: bool = False
    exchange_bans: Mapping[str, datetime] = field(default_factory=dict)
    range: ChartRange = DEFAULT_RANGE
    baselines: Mapping[str, EquityPoint] = field(default_factory=dict)
