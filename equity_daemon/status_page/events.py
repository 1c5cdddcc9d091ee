"""The recent events table: the latest events of every book within the chart's range."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

from equity_daemon.status_page.data import ChartRange
from equity_daemon.status_page.format import change, clock_time, decimal, money
from equity_daemon.status_page.markup import Column, badge, num, prose, table

RECENT_EVENTS = 20
TONES = {
    "threshold": "warn",
    "incomplete": "bad",
    "recovered": "ok",
    "venue_refused": "bad",
    "venue_restored": "ok",
}


def events_card(events: Sequence[Mapping[str, Any]], now: datetime, shown: ChartRange) -> str:
    """The latest `RECENT_EVENTS` events (newest first) of the last `shown.span`."""
    start = now - shown.span
    within = [e for e in events if datetime.fromisoformat(e["at"]) >= start]
    rows = []
    for event in list(reversed(within))[:RECENT_EVENTS]:
        kind = str(event["kind"])
        share_class = str(event.get("snapshot", {}).get("share_class", ""))
        rows.append(
            [
                escape(clock_time(event["at"], now)),
                escape(str(event["book"])),
                badge(kind, TONES.get(kind, "warn")),
                escape(money(event.get("equity"), share_class)),
                escape(_change(event, share_class)),
                _detail(event, share_class),
            ]
        )
    if not rows:
        none = f'<p class="muted">None in the last {escape(shown.label)}.</p>'
        return f'<section class="card"><h2>Recent events</h2>{none}</section>'
    head: list[Column | str] = ["Time (UTC)", "Book", "Event", num("Equity"), num("Change")]
    head += [prose("Detail")]
    return f'<section class="card">{table("Recent events", head, rows, level="h2")}</section>'


def _change(event: Mapping[str, Any], share_class: str) -> str:
    moved = decimal(event.get("change"))
    if moved is None:
        return ""
    return change(moved, decimal(event.get("relative_change")), share_class)


def _detail(event: Mapping[str, Any], share_class: str) -> str:
    """What an event says beyond its numbers: the problems, or the reference it moved from."""
    problems = event.get("snapshot", {}).get("problems", [])
    if event["kind"] == "incomplete" and problems:
        return escape("; ".join(f"{p['kind']} {p['subject']}: {p['detail']}" for p in problems))
    if event["kind"] == "threshold" and event.get("reference") is not None:
        return escape(f"from {money(event['reference'], share_class)}")
    if event["kind"] == "recovered":
        return "complete again"
    return escape(str(event.get("detail") or ""))  # a reconciliation or venue notice says it
