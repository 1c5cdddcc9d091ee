"""What one rendering of the page reads from the daemon: every read bounded, whatever the range.

History is read thinned to `CHART_POINTS` per book (a week of 5 s cycles is 120,000 rows), and
events by count: the latest `RECENT_EVENTS` of every book for the table, and each book's latest
`ALERTS_READ` threshold alerts for the chart's markers and the headline's "since the alert".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import structlog

from equity_daemon.model import EquityPoint
from equity_daemon.status_page.data import CHANGE_WINDOW, CHART_POINTS, ChartRange, StatusData
from equity_daemon.status_page.events import RECENT_EVENTS

log = structlog.get_logger()

ALERTS_READ = 200  # threshold alerts read per book


class PageSource(Protocol):
    """**Protocol**: what the page reads (the HTTP API's `Backend` is one)."""

    def healthy(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, list[str]]: ...

    def snapshots(self) -> list[dict[str, Any]]: ...

    def exchange_bans(self) -> Mapping[str, datetime]: ...

    async def events(
        self,
        since: datetime | None,
        book: str | None = None,
        limit: int | None = None,
        kind: str | None = None,
    ) -> list[dict[str, Any]]: ...

    async def equity_history(
        self, book: str, since: datetime, points: int | None = None
    ) -> list[EquityPoint]: ...

    async def equity_baseline(self, book: str, at: datetime) -> EquityPoint | None: ...


async def gather(
    source: PageSource, now: datetime, shown: ChartRange, signed_in: bool = False
) -> StatusData:
    """The page's data at `now`, its chart over `shown`; what memory holds when history fails."""
    snapshots = source.snapshots()
    histories: dict[str, list[EquityPoint]] = {}
    baselines: dict[str, EquityPoint] = {}
    events: dict[str, dict[str, Any]] = {}
    problem = None
    try:
        for doc in snapshots:
            book = doc["book"]
            histories[book] = await source.equity_history(book, now - shown.span, CHART_POINTS)
            baseline = await source.equity_baseline(book, now - CHANGE_WINDOW)
            if baseline is not None:
                baselines[book] = baseline
            alerts = await source.events(None, book, ALERTS_READ, "threshold")
            events.update((event["id"], event) for event in alerts)
        latest = await source.events(None, None, RECENT_EVENTS)
        events.update((event["id"], event) for event in latest)
    except Exception as exc:  # the page still shows what memory holds
        problem = f"{type(exc).__name__}: {exc}"
        log.warning("status_page_history_failed", reason=problem)
    return StatusData(
        now=now,
        snapshots=snapshots,
        histories=histories,
        events=sorted(events.values(), key=lambda event: datetime.fromisoformat(event["at"])),
        healthy=source.healthy(),
        ready=source.ready(),
        history_problem=problem,
        signed_in=signed_in,
        exchange_bans=source.exchange_bans(),
        range=shown,
        baselines=baselines,
    )
