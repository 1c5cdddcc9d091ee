"""A book's headline: its equity in large type and, beside it, how it moved since the last alert
and over 24 h, and how far it is from the next alert.

Only a complete snapshot's equity is a headline figure. An incomplete one (a venue or a price
missing, the rest as last known) is an estimate nothing acts on: it is named as such, below a
headline that says "incomplete"; an unknown one has no figure at all, only the reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from html import escape
from typing import Any

from equity_daemon.model import EquityPoint
from equity_daemon.status_page.chart import Band
from equity_daemon.status_page.data import CHANGE_WINDOW, StatusData
from equity_daemon.status_page.format import change, clock_time, decimal, money

# a baseline this much older than 24 h ago still counts as "over 24 h" (pruned history keeps one
# snapshot an hour); an older or younger one is named by its time
BASELINE_SLACK = timedelta(hours=1)


def band_of(doc: Mapping[str, Any]) -> Band | None:
    """The book's alert band from its `/snapshot` document; None before its first reference."""
    band = doc.get("alert_band") or {}
    low, high, reference = (decimal(band.get(key)) for key in ("low", "high", "reference"))
    if low is None or high is None or reference is None:
        return None
    at = band.get("reference_at")
    return Band(low, high, reference, None if at is None else datetime.fromisoformat(at))


def headline(doc: Mapping[str, Any], data: StatusData) -> str:
    """The figure (or why there is none), the moves beside it, and the band under it."""
    share_class = str(doc["share_class"])
    equity = decimal(doc["equity"])
    if equity is None:
        figure = _unknown(doc, share_class)
    elif not doc["complete"]:
        estimate = f"{money(equity, share_class)} {share_class}"
        figure = (
            '<div class="equity partial">Equity incomplete</div>'
            f'<p class="muted">Estimate {escape(estimate)}: a venue or a price is missing or '
            "old (below), so nothing acts on it.</p>"
        )
    else:
        figure = (
            f'<div class="equity">{escape(money(equity, share_class))}'
            f' <span class="unit">{escape(share_class)}</span></div>'
        )
    shown = equity if doc["complete"] else None
    moves = _moves(doc, shown, data)
    band = _band_text(doc, share_class)
    return f'<div class="headline"><div>{figure}</div>{moves}</div>' + (
        f'<p class="muted band-text">{band}</p>' if band else ""
    )


def _unknown(doc: Mapping[str, Any], share_class: str) -> str:
    """No figure at all for an unknown equity: why, and each side's figure of a disputed
    price."""
    reasons = [escape(str(reason)) for reason in doc.get("equity_unknown_because", [])]
    reasons += [
        escape(f"it would be {money(c['equity'], share_class)} {share_class} by ")
        + escape(", ".join(str(source) for source in c["sources"]))
        for c in doc.get("equity_candidates", [])
    ]
    items = "".join(f"<li>{reason}</li>" for reason in reasons)
    return f'<div class="equity unknown">Equity unknown</div><ul class="problems">{items}</ul>'


def _moves(doc: Mapping[str, Any], equity: Decimal | None, data: StatusData) -> str:
    """Since the last alert, over 24 h, and the distance to the next alert: only for a complete
    equity (an estimate is no figure to measure a move from, nor to)."""
    if equity is None:
        return ""
    share_class = str(doc["share_class"])
    items = []
    band = band_of(doc)
    if band is not None:
        label = _since_reference(str(doc["book"]), band, data)
        items.append(_move(label, equity, band.reference, share_class))
    baseline = data.baselines.get(str(doc["book"]))
    if baseline is not None and baseline.equity is not None:
        label = _over_a_day(baseline, data.now)
        items.append(_move(label, equity, baseline.equity, share_class))
    if band is not None:
        items.append(_next_alert(equity, band, share_class))
    return f'<dl class="moves">{"".join(items)}</dl>' if items else ""


def _move(label: str, equity: Decimal, start: Decimal, share_class: str) -> str:
    moved = equity - start
    relative = moved / abs(start) if start else None
    tone = "up" if moved > 0 else "down" if moved < 0 else "flat"
    text = change(moved, relative, share_class)
    return f'<div><dt>{escape(label)}</dt><dd class="{tone}">{escape(text)}</dd></div>'


def _since_reference(book: str, band: Band, data: StatusData) -> str:
    """The reference is the equity of the book's last threshold alert, or, before any, of its
    first complete snapshot (the events read say which, unless history could not be read)."""
    if band.since is None:
        return "Since the reference"
    at = clock_time(band.since.isoformat(), data.now)
    alerted = any(
        e.get("book") == book
        and e.get("kind") == "threshold"
        and datetime.fromisoformat(e["at"]) == band.since
        for e in data.events
    )
    if alerted:
        return f"Since the alert at {at}"
    return f"Since the reference at {at}" if data.history_problem else f"Since {at} (no alert yet)"


def _over_a_day(baseline: EquityPoint, now: datetime) -> str:
    day_ago = now - CHANGE_WINDOW
    if day_ago - BASELINE_SLACK <= baseline.at <= day_ago:
        return "Over 24 h"
    return f"Since {clock_time(baseline.at.isoformat(), now)}"  # history starts later (or earlier)


def _next_alert(equity: Decimal, band: Band, share_class: str) -> str:
    if band.low == band.high:
        text = "at any change"
    else:
        room = min(band.high - equity, equity - band.low)
        relative = f" ({room / abs(equity) * 100:.3f} %)" if equity else ""
        text = f"{money(max(room, Decimal(0)), share_class)} away{relative}"
    return f'<div><dt>Next alert</dt><dd class="next">{escape(text)}</dd></div>'


def _band_text(doc: Mapping[str, Any], share_class: str) -> str:
    """Where the next alert fires, and the rule that puts it there."""
    band = doc.get("alert_band")
    if band is None:
        return ""
    edges = band_of(doc)
    if edges is None:
        return "No reference yet: the first complete snapshot sets it, and alerts count from it."
    floor = decimal(band.get("threshold_floor"))
    rule = f"{band['threshold_percent']} %"
    if floor:
        rule += f", at least {money(floor, share_class)}"
    text = (
        f"Next alert below {money(edges.low, share_class)} or above "
        f"{money(edges.high, share_class)}: reference {money(edges.reference, share_class)} "
        f"± {money(band.get('distance'), share_class)} ({rule})."
    )
    if not doc["complete"]:
        text += " Alerts wait for a complete snapshot."
    return escape(text)
