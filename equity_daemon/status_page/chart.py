"""The equity chart: one inline SVG (no script), drawn from history and the live snapshot."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from html import escape
from typing import Any, NamedTuple

from equity_daemon.model import EquityPoint
from equity_daemon.status_page.data import CHART_POINTS, DEFAULT_RANGE, ChartRange
from equity_daemon.status_page.format import PLACES, decimal, money

MIN_SPAN = timedelta(seconds=30)  # the narrowest time axis (a lone point sits at its right end)
WIDTH, HEIGHT = 640, 220
SIDE = 8  # room left and right of the line, so that a dot at either end is drawn whole
TOP, BOTTOM = 16, 28  # room for the time labels below the plot


class Band(NamedTuple):
    """Where the next threshold alert fires (`/snapshot`'s `alert_band`), from `since` on."""

    low: Decimal
    high: Decimal
    reference: Decimal
    since: datetime | None


def equity_chart(
    points: Sequence[EquityPoint],
    threshold_events: Sequence[Mapping[str, Any]],
    now: datetime,
    share_class: str,
    shown: ChartRange = DEFAULT_RANGE,
    band: Band | None = None,
) -> str:
    """An inline SVG line of equity over the `shown` range, with threshold alerts marked and
    the band the equity must leave for the next one.

    Incomplete snapshots are drawn as hollow red dots on the line; their equity is the best
    estimate, not a number to act on. Where the equity was unknown the line breaks over a grey
    band: a gap, never a fall to zero.
    """
    start = now - shown.span
    runs, gaps = _runs_and_gaps([p for p in points if p.at >= start])
    drawn = [p for run in runs for p in run]
    if not drawn:
        return '<p class="muted chart-empty">No history yet.</p>'
    markers = [
        (datetime.fromisoformat(e["at"]), value)
        for e in threshold_events
        if (value := decimal(e.get("equity"))) is not None
        and value.is_finite()
        and datetime.fromisoformat(e["at"]) >= start
    ]
    end = max(now, drawn[-1].at)
    first = min([drawn[0].at, end - MIN_SPAN, *(at for at, _ in markers), *(a for a, _ in gaps)])
    span_seconds = (end - first).total_seconds()
    # money stays Decimal here too: only the pixel coordinates are rounded, when formatted
    values = [p.equity for p in drawn] + [v for _, v in markers]
    if band is not None:
        values += [band.low, band.high]
    low, high = _padded(min(values), max(values))

    def x(at: datetime) -> float:
        return SIDE + (at - first).total_seconds() / span_seconds * (WIDTH - 2 * SIDE)

    def y(value: Decimal) -> Decimal:
        return TOP + (high - value) / (high - low) * (HEIGHT - TOP - BOTTOM)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="equity over the last {escape(shown.label)}">',
        *_grid(low, high, y, share_class),
    ]
    if band is not None:
        parts += _band(band, max(first, band.since or first), x, y, share_class)
    step = math.ceil(len(drawn) / CHART_POINTS)
    base = HEIGHT - BOTTOM
    for gap_from, gap_to in gaps:
        width = max(x(gap_to) - x(gap_from), 3.0)
        parts.append(
            f'<rect class="gap" x="{x(gap_from):.1f}" y="{TOP}" width="{width:.1f}" '
            f'height="{base - TOP}"><title>equity unknown</title></rect>'
        )
    for run in runs:
        line = " ".join(f"{x(at):.1f},{y(value):.1f}" for at, value, _ in _thin(run, step))
        area = f"{x(run[0].at):.1f},{base} {line} {x(run[-1].at):.1f},{base}"
        parts.append(f'<polygon class="area" points="{area}"/>')
        parts.append(f'<polyline class="equity" points="{line}"/>')
    parts += [
        f'<circle class="incomplete" cx="{x(at):.1f}" cy="{y(value):.1f}" r="3"/>'
        for at, value, complete in drawn[-CHART_POINTS:]
        if not complete
    ]
    last_at, last_value, _ = drawn[-1]
    parts.append(f'<circle class="last" cx="{x(last_at):.1f}" cy="{y(last_value):.1f}" r="4"/>')
    for at, value in markers:
        label = escape(f"threshold alert {at:%H:%M:%S} UTC: {money(str(value), share_class)}")
        parts.append(
            f'<circle class="threshold" cx="{x(at):.1f}" cy="{y(value):.1f}" r="5">'
            f"<title>{label}</title></circle>"
        )
    parts += _time_labels(first, end)
    parts.append("</svg>")
    keys = {
        "line": "equity",
        "band": "alert band" if band is not None else "",
        "threshold": "threshold alert" if markers else "",
        "incomplete": "incomplete" if not all(p.complete for p in drawn) else "",
        "gap": "equity unknown" if gaps else "",
    }
    legend = '<div class="legend muted">' + "".join(
        f'<span><span class="key {key}"></span>{text}</span>' for key, text in keys.items() if text
    )
    legend += "</div>"
    return '<figure class="chart-box">' + "".join(parts) + legend + "</figure>"


class _Known(NamedTuple):
    """A point whose equity is known (and finite)."""

    at: datetime
    equity: Decimal
    complete: bool


def _runs_and_gaps(
    points: Sequence[EquityPoint],
) -> tuple[list[list[_Known]], list[tuple[datetime, datetime]]]:
    """The points with a known equity in runs (each a line), and the spans where it was
    unknown: from an unknown point to the next known one (or to the last unknown one)."""
    runs: list[list[_Known]] = [[]]
    gaps: list[tuple[datetime, datetime]] = []
    unknown_since = unknown_until = None
    for at, equity, complete in points:
        if equity is None or not equity.is_finite():
            unknown_since, unknown_until = unknown_since or at, at
            if runs[-1]:
                runs.append([])
            continue
        if unknown_since is not None:
            gaps.append((unknown_since, at))
            unknown_since = None
        runs[-1].append(_Known(at, equity, complete))
    if unknown_since is not None and unknown_until is not None:
        gaps.append((unknown_since, unknown_until))
    return [run for run in runs if run], gaps


def _thin(points: Sequence[_Known], step: int) -> list[_Known]:
    """Every `step`th point, and the last (an SVG of 1440 points says no more than 480)."""
    if step <= 1:
        return list(points)
    thinned = list(points[::step])
    return thinned if thinned[-1] is points[-1] else [*thinned, points[-1]]


def _padded(low: Decimal, high: Decimal) -> tuple[Decimal, Decimal]:
    """A value range with some air, never empty (a flat line sits in the middle)."""
    span = high - low
    pad = span / 10 if span > 0 else max(abs(high) * Decimal("0.0005"), Decimal(1))
    return low - pad, high + pad


def _band(
    band: Band,
    since: datetime,
    x: Callable[[datetime], float],
    y: Callable[[Decimal], Decimal],
    share_class: str,
) -> list[str]:
    """The band the equity must leave for the next alert, from when its reference was set,
    with the reference dashed through it."""
    left, right = x(since), WIDTH - SIDE
    top, bottom = y(band.high), y(band.low)
    title = escape(
        f"next alert below {money(band.low, share_class)} or above "
        f"{money(band.high, share_class)} (reference {money(band.reference, share_class)})"
    )
    return [
        f'<rect class="band" x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" '
        f'height="{max(bottom - top, Decimal(1)):.1f}"><title>{title}</title></rect>',
        f'<line class="reference" x1="{left:.1f}" x2="{right:.1f}" '
        f'y1="{y(band.reference):.1f}" y2="{y(band.reference):.1f}"/>',
    ]


def _grid(
    low: Decimal, high: Decimal, y: Callable[[Decimal], Decimal], share_class: str
) -> list[str]:
    span = high - low
    places = 0 if span >= 50 else 2 if span >= Decimal("0.5") else PLACES.get(share_class, 4) + 2
    lines = []
    for step in range(4):
        value = low + span * (2 * step + 1) / 8
        at = y(value)
        lines.append(f'<line class="grid" x1="0" x2="{WIDTH}" y1="{at:.1f}" y2="{at:.1f}"/>')
        lines.append(f'<text class="axis" x="4" y="{at - 4:.1f}">{value:,.{places}f}</text>')
    return lines


def _time_labels(first: datetime, end: datetime) -> list[str]:
    spanned = end - first
    if spanned > timedelta(days=1):
        shown = "%b %d %H:%M"
    else:
        shown = "%H:%M" if spanned >= timedelta(minutes=10) else "%H:%M:%S"
    middle = first + spanned / 2
    baseline = HEIGHT - 8
    return [
        f'<text class="axis" x="4" y="{baseline}">{first:{shown}}</text>',
        f'<text class="axis" x="{WIDTH / 2}" y="{baseline}" text-anchor="middle">'
        f"{middle:{shown}}</text>",
        f'<text class="axis" x="{WIDTH - 4}" y="{baseline}" text-anchor="end">{end:{shown}}</text>',
    ]
