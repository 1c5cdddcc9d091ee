"""One book's card: headline, chart, breakdowns, the lines kept out of equity, venues, prices.

Every string from a snapshot document goes through `html.escape`: assets, accounts, problems,
notes and errors come from venue data, and a venue is not to be trusted with markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

from equity_daemon.line_notes import excluded_note
from equity_daemon.model import EquityPoint
from equity_daemon.status_page.chart import equity_chart
from equity_daemon.status_page.data import RANGES, StatusData
from equity_daemon.status_page.format import age, amount, clock_time, decimal, figure, money
from equity_daemon.status_page.headline import band_of, headline
from equity_daemon.status_page.markup import Column, badge, num, prose, table


def book_card(doc: Mapping[str, Any], data: StatusData) -> str:
    book, share_class = str(doc["book"]), str(doc["share_class"])
    states = [badge("complete", "ok") if doc["complete"] else badge("incomplete", "bad")]
    if doc["equity"] is None:
        states.append(badge("equity unknown", "bad"))
    if doc.get("stale"):
        states.append(badge("stale", "warn"))
    snapshot_age = doc.get("age_seconds")
    meta = f"snapshot #{escape(str(doc['sequence']))} at {escape(clock_time(doc['at'], data.now))}"
    if snapshot_age is not None:
        meta += f" · {escape(age(snapshot_age))} old"
    history = data.histories.get(book, ())
    live = [p for p in _current_point(doc) if not history or p.at > history[-1].at]
    alerts = [e for e in data.events if e.get("book") == book and e.get("kind") == "threshold"]
    chart = equity_chart([*history, *live], alerts, data.now, share_class, data.range, band_of(doc))
    parts = [
        f'<section class="card book" id="book-{escape(book)}">',
        '<div class="book-head">',
        f"<h2>{escape(book)}</h2>",
        f'<div class="badges">{"".join(states)}</div>',
        "</div>",
        headline(doc, data),
        f'<div class="muted">{meta}</div>',
        f'<div class="muted">{_totals(doc, share_class)}</div>',
        _problems(doc.get("problems", [])),
        _chart_head(book, data),
        chart,
        '<div class="columns">',
        _breakdown("By venue", "Venue", doc.get("equity_by_venue", {}), doc["equity"], share_class),
        _breakdown("By asset", "Asset", doc.get("equity_by_asset", {}), doc["equity"], share_class),
        "</div>",
        _excluded(doc.get("excluded", []), share_class),
        _lines("Unvalued (no price; left out of equity)", doc.get("unvalued", [])),
        _lines("Ignored assets", doc.get("ignored", [])),
        _venues(doc.get("venues", [])),
        _prices(doc.get("prices", []), share_class),
        "</section>",
    ]
    return "\n".join(part for part in parts if part)


def _chart_head(book: str, data: StatusData) -> str:
    """The chart's title and its ranges: plain links (`?range=7d`), the page has no script."""
    links = "".join(
        f'<a aria-current="page">{escape(choice.label)}</a>'
        if choice == data.range
        else f'<a href="?range={choice.key}#book-{escape(book)}">{escape(choice.label)}</a>'
        for choice in RANGES
    )
    return (
        f'<div class="chart-head"><h3>Equity, last {escape(data.range.label)}</h3>'
        f'<nav class="ranges" aria-label="chart range">{links}</nav></div>'
    )


def _totals(doc: Mapping[str, Any], share_class: str) -> str:
    """What is held, what is owed and, with open perpetuals, their uPnL (equity is all three);
    `unknown` for a figure the snapshot does not know."""
    assets = figure(doc.get("total_assets"), share_class)
    debt = figure(doc.get("total_debt"), share_class)
    text = f"assets {escape(assets)} · debt {escape(debt)}"
    pnl = doc.get("unrealized_pnl")
    hedged = any(line.get("kind") == "hedge" for line in doc.get("excluded", ()))
    if pnl not in (None, "0") or (pnl is None and hedged):
        text += f" · perpetuals' uPnL {escape(figure(pnl, share_class))}"
    return text


def _current_point(doc: Mapping[str, Any]) -> list[EquityPoint]:
    """The live snapshot, so the chart ends where the number above it is (or with a gap)."""
    equity = decimal(doc["equity"])
    return [EquityPoint(datetime.fromisoformat(doc["at"]), equity, bool(doc["complete"]))]


def _problems(problems: Iterable[Mapping[str, Any]]) -> str:
    items = []
    for problem in problems:
        problem_age = problem.get("age_seconds")
        since = "" if problem_age is None else f" ({age(problem_age)})"
        text = f"{problem['subject']}: {problem['detail']}{since}"
        items.append(f"<li><b>{escape(str(problem['kind']))}</b> {escape(text)}</li>")
    return f'<ul class="problems">{"".join(items)}</ul>' if items else ""


def _breakdown(
    title: str, label: str, values: Mapping[str, str], total: str, share_class: str
) -> str:
    total_value = decimal(total)
    rows = []
    for name, value in values.items():
        share = ""
        value_of = decimal(value)
        if value_of is not None and total_value:
            share = f"{value_of / total_value * 100:.1f} %"
        rows.append([escape(name), escape(figure(value, share_class)), escape(share)])
    return table(title, [label, num(f"Equity ({share_class})"), num("Share")], rows)


def _excluded(lines: Sequence[Mapping[str, Any]], share_class: str) -> str:
    kinds = {"hedge": "hedge", "locked": "locked", "in_transit": "in transit"}
    rows = [
        [
            escape(kinds.get(str(line["kind"]), str(line["kind"]))),
            escape(str(line["venue"])),
            escape(str(line["account"])),
            escape(str(line["asset"])),
            escape(str(line.get("side") or "")),
            amount(line["amount"]),
            escape(money(line.get("value"), share_class)),
            escape(money(line.get("unrealized_pnl"), share_class)),
            escape(excluded_note(str(line["kind"]), line.get("details") or {})),
        ]
        for line in lines
    ]
    head: list[Column | str] = ["Kind", "Venue", "Account", "Asset", "Side", num("Size")]
    head += [num("Notional / value"), num("uPnL"), "Details"]
    return table("Excluded from equity (hedges, locked, in transit)", head, rows) if rows else ""


def _lines(title: str, lines: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            escape(str(line["venue"])),
            escape(str(line["account"])),
            escape(str(line["asset"])),
            escape(str(line["kind"])),
            amount(line["amount"]),
        ]
        for line in lines
    ]
    return table(title, ["Venue", "Account", "Asset", "Kind", num("Amount")], rows) if rows else ""


def _venues(venues: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for venue in venues:
        status = str(venue["status"])
        tone = "ok" if status == "ok" else "warn" if status in ("failing", "waiting") else "bad"
        note = " · ".join(str(text) for text in (venue.get("error"), venue.get("note")) if text)
        data_age = venue.get("age_seconds")
        rows.append(
            [
                escape(str(venue["venue"])),
                badge(status, tone),
                escape("" if data_age is None else age(data_age)),
                escape(note),
            ]
        )
    return table("Venues", ["Venue", "Status", num("Data age"), prose("Note")], rows)


def _prices(prices: Sequence[Mapping[str, Any]], share_class: str) -> str:
    rows = []
    for price in prices:
        flags = [flag for flag in ("suspect", "fallback", "stale") if price.get(flag)]
        rows.append(
            [
                escape(str(price["asset"])),
                amount(price["price"], places=6),
                escape(" → ".join(str(step) for step in price.get("path", []))),
                escape(age(price["age_seconds"])),
                "".join(badge(flag, "warn") for flag in flags),
            ]
        )
    head: list[Column | str] = ["Asset", num(f"Price ({share_class})"), "Path", num("Age"), "Flags"]
    return table("Prices", head, rows) if rows else ""
