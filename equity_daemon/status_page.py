"""The status page at `/`: pure functions from the daemon's data to one HTML document.

Server-rendered, no JavaScript: the page reloads itself with `<meta http-equiv="refresh">`, and
the equity chart is inline SVG. Every string shown goes through `html.escape`: assets, accounts,
problems, notes and errors come from venue data, and a venue is not to be trusted with markup.

It shows what `/snapshot` and `/events` serve (the same documents), plus the equity history.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from html import escape
from typing import Any, NamedTuple

from equity_daemon.line_notes import excluded_note
from equity_daemon.model import EquityPoint

CHART_WINDOW = timedelta(hours=24)
MIN_SPAN = timedelta(seconds=30)  # the narrowest time axis (a lone point sits at its right end)
REFRESH_SECONDS = 15
RECENT_EVENTS = 20
CHART_POINTS = 480  # at most, drawn; more are thinned (an SVG of 1440 points says no more)
PLACES = {"USDT": 2, "ETH": 4}  # decimals shown for equity, by share class


@dataclass(frozen=True, slots=True)
class StatusData:
    """Everything one rendering of the page shows.

    `snapshots` are `/snapshot`'s documents, `events` `/events`' (oldest first), `histories` each
    book's recorded equity over `CHART_WINDOW`. `history_problem` says why history could not be
    read, when it could not. `exchange_bans` names each exchange whose ban (its `Retry-After`)
    holds every request to it, with when it ends.
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


def render(data: StatusData) -> str:
    """The whole status page."""
    title = " · ".join(
        f"{doc['book']} {_figure(doc['equity'], doc['share_class'])}" for doc in data.snapshots
    )
    body = [
        _header(data),
        *(_book(doc, data) for doc in data.snapshots),
        ""
        if data.snapshots
        else '<section class="card"><p class="muted">No snapshot yet.</p></section>',
        _events(data.events, data.now),
        _footer(),
    ]
    return _document(
        f"equity-daemon · {title}" if title else "equity-daemon",
        "\n".join(body),
        refresh=REFRESH_SECONDS,
    )


def login_page(failed: bool = False) -> str:
    """The sign-in form a token-protected daemon shows instead of its data."""
    error = '<p class="error">That token is not right.</p>' if failed else ""
    form = f"""<section class="card login">
<h1>equity-daemon</h1>
<p class="muted">This daemon is protected by a token.</p>
{error}
<form method="post" action="/login">
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>
</section>"""
    return _document("equity-daemon · sign in", form + _footer(open_only=True))


# --- the parts ---------------------------------------------------------------------------


def _header(data: StatusData) -> str:
    healthy, health_detail = data.healthy
    ready, reasons = data.ready
    badges = [
        _badge("ready", "ok") if ready else _badge("not ready", "bad"),
        _badge("healthy", "ok") if healthy else _badge(health_detail, "bad"),
    ]
    sign_out = (
        '<form method="post" action="/logout"><button class="link">Sign out</button></form>'
        if data.signed_in
        else ""
    )
    lines = [
        '<header class="top">',
        '<div class="brand">equity-daemon</div>',
        f'<div class="badges">{"".join(badges)}</div>',
        f'<div class="muted">{escape(data.now.strftime("%Y-%m-%d %H:%M:%S"))} UTC</div>',
        sign_out,
        "</header>",
    ]
    if reasons:
        items = "".join(f"<li>{escape(reason)}</li>" for reason in reasons)
        lines.append(f'<ul class="notice">{items}</ul>')
    if data.history_problem is not None:
        lines.append(f'<p class="notice">History unavailable: {escape(data.history_problem)}</p>')
    for exchange, until in sorted(data.exchange_bans.items()):
        lines.append(
            f'<p class="notice">{escape(exchange)} banned until {until:%H:%M:%S} UTC: '
            "no request is sent to it before then (its Retry-After).</p>"
        )
    return "\n".join(lines)


def _book(doc: Mapping[str, Any], data: StatusData) -> str:
    book, share_class = str(doc["book"]), str(doc["share_class"])
    states = [_badge("complete", "ok") if doc["complete"] else _badge("incomplete", "bad")]
    if doc["equity"] is None:
        states.append(_badge("equity unknown", "bad"))
    if doc.get("stale"):
        states.append(_badge("stale", "warn"))
    age = doc.get("age_seconds")
    meta = f"snapshot #{escape(str(doc['sequence']))} at {escape(_time(doc['at'], data.now))}"
    if age is not None:
        meta += f" · {escape(_age(age))} old"
    history = data.histories.get(book, ())
    live = [p for p in _current_point(doc) if not history or p.at > history[-1].at]
    points = [*history, *live]
    events = [e for e in data.events if e.get("book") == book and e.get("kind") == "threshold"]
    parts = [
        f'<section class="card book" id="book-{escape(book)}">',
        '<div class="book-head">',
        f"<h2>{escape(book)}</h2>",
        f'<div class="badges">{"".join(states)}</div>',
        "</div>",
        _headline(doc, share_class),
        f'<div class="muted">{meta}</div>',
        f'<div class="muted">{_totals(doc, share_class)}</div>',
        _problems(doc.get("problems", [])),
        "<h3>Equity, last 24 h</h3>",
        equity_chart(points, events, data.now, share_class),
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


def _headline(doc: Mapping[str, Any], share_class: str) -> str:
    """The equity in large type; when it is unknown, no figure at all, and why."""
    if doc["equity"] is not None:
        return (
            f'<div class="equity">{escape(_money(doc["equity"], share_class))}'
            f' <span class="unit">{escape(share_class)}</span></div>'
        )
    reasons = [escape(str(reason)) for reason in doc.get("equity_unknown_because", [])]
    reasons += [
        escape(f"it would be {_money(c['equity'], share_class)} {share_class} by ")
        + escape(", ".join(str(source) for source in c["sources"]))
        for c in doc.get("equity_candidates", [])
    ]
    items = "".join(f"<li>{reason}</li>" for reason in reasons)
    return f'<div class="equity unknown">Equity unknown</div><ul class="problems">{items}</ul>'


def _totals(doc: Mapping[str, Any], share_class: str) -> str:
    """What is held, what is owed and, with open perpetuals, their uPnL (equity is all three);
    `unknown` for a figure the snapshot does not know."""
    assets = _figure(doc.get("total_assets"), share_class)
    debt = _figure(doc.get("total_debt"), share_class)
    text = f"assets {escape(assets)} · debt {escape(debt)}"
    pnl = doc.get("unrealized_pnl")
    hedged = any(line.get("kind") == "hedge" for line in doc.get("excluded", ()))
    if pnl not in (None, "0") or (pnl is None and hedged):
        text += f" · perpetuals' uPnL {escape(_figure(pnl, share_class))}"
    return text


def _current_point(doc: Mapping[str, Any]) -> list[EquityPoint]:
    """The live snapshot, so the chart ends where the number above it is (or with a gap)."""
    equity = _decimal(doc["equity"])
    return [EquityPoint(datetime.fromisoformat(doc["at"]), equity, bool(doc["complete"]))]


def _problems(problems: Iterable[Mapping[str, Any]]) -> str:
    items = []
    for problem in problems:
        age = problem.get("age_seconds")
        since = "" if age is None else f" ({_age(age)})"
        text = f"{problem['subject']}: {problem['detail']}{since}"
        items.append(f"<li><b>{escape(str(problem['kind']))}</b> {escape(text)}</li>")
    return f'<ul class="problems">{"".join(items)}</ul>' if items else ""


def _breakdown(
    title: str, label: str, values: Mapping[str, str], total: str, share_class: str
) -> str:
    total_value = _decimal(total)
    rows: list[list[Cell]] = []
    for name, value in values.items():
        share = ""
        amount = _decimal(value)
        if amount is not None and total_value:
            share = f"{amount / total_value * 100:.1f} %"
        rows.append([escape(name), _num(escape(_figure(value, share_class))), _num(escape(share))])
    head: list[Cell] = [label, _num(f"Equity ({escape(share_class)})"), _num("Share")]
    return _table(title, head, rows)


def _excluded(lines: Sequence[Mapping[str, Any]], share_class: str) -> str:
    kinds = {"hedge": "hedge", "locked": "locked", "in_transit": "in transit"}
    rows: list[list[Cell]] = [
        [
            escape(kinds.get(str(line["kind"]), str(line["kind"]))),
            escape(str(line["venue"])),
            escape(str(line["account"])),
            escape(str(line["asset"])),
            escape(str(line.get("side") or "")),
            _num(_amount(line["amount"])),
            _num(_money(line.get("value"), share_class)),
            _num(_money(line.get("unrealized_pnl"), share_class)),
            escape(excluded_note(str(line["kind"]), line.get("details") or {})),
        ]
        for line in lines
    ]
    head: list[Cell] = ["Kind", "Venue", "Account", "Asset", "Side"]
    head += [_num("Size"), _num("Notional / value"), _num("uPnL"), "Details"]
    return _table("Excluded from equity (hedges, locked, in transit)", head, rows) if rows else ""


def _lines(title: str, lines: Sequence[Mapping[str, Any]]) -> str:
    rows: list[list[Cell]] = [
        [
            escape(str(line["venue"])),
            escape(str(line["account"])),
            escape(str(line["asset"])),
            escape(str(line["kind"])),
            _num(_amount(line["amount"])),
        ]
        for line in lines
    ]
    head: list[Cell] = ["Venue", "Account", "Asset", "Kind", _num("Amount")]
    return _table(title, head, rows) if rows else ""


def _venues(venues: Sequence[Mapping[str, Any]]) -> str:
    rows: list[list[Cell]] = []
    for venue in venues:
        status = str(venue["status"])
        tone = "ok" if status == "ok" else "warn" if status in ("failing", "waiting") else "bad"
        note = " · ".join(str(text) for text in (venue.get("error"), venue.get("note")) if text)
        age = venue.get("age_seconds")
        rows.append(
            [
                escape(str(venue["venue"])),
                _badge(status, tone),
                _num(escape("" if age is None else _age(age))),
                _prose(escape(note)),
            ]
        )
    return _table("Venues", ["Venue", "Status", _num("Data age"), "Note"], rows)


def _prices(prices: Sequence[Mapping[str, Any]], share_class: str) -> str:
    rows: list[list[Cell]] = []
    for price in prices:
        flags = [flag for flag in ("suspect", "fallback", "stale") if price.get(flag)]
        rows.append(
            [
                escape(str(price["asset"])),
                _num(_amount(price["price"], places=6)),
                escape(" → ".join(str(step) for step in price.get("path", []))),
                _num(escape(_age(price["age_seconds"]))),
                "".join(_badge(flag, "warn") for flag in flags),
            ]
        )
    head: list[Cell] = ["Asset", _num(f"Price ({escape(share_class)})"), "Path", _num("Age"), ""]
    return _table("Prices", head, rows) if rows else ""


def _events(events: Sequence[Mapping[str, Any]], now: datetime) -> str:
    recent = list(reversed(events))[:RECENT_EVENTS]
    rows: list[list[Cell]] = []
    for event in recent:
        kind = str(event["kind"])
        tone = {
            "threshold": "warn",
            "incomplete": "bad",
            "recovered": "ok",
            "venue_refused": "bad",
            "venue_restored": "ok",
        }.get(kind, "warn")
        share_class = str(event.get("snapshot", {}).get("share_class", ""))
        rows.append(
            [
                escape(_time(event["at"], now)),
                escape(str(event["book"])),
                _badge(kind, tone),
                _num(_money(event.get("equity"), share_class)),
                _num(_change(event, share_class)),
                _prose(_event_detail(event, share_class)),
            ]
        )
    if not rows:
        none = '<p class="muted">None in the last 24 h.</p>'
        return f'<section class="card"><h2>Recent events</h2>{none}</section>'
    head: list[Cell] = ["Time (UTC)", "Book", "Event", _num("Equity"), _num("Change"), "Detail"]
    return f'<section class="card">{_table("Recent events", head, rows, level="h2")}</section>'


def _change(event: Mapping[str, Any], share_class: str) -> str:
    change = event.get("change")
    if change is None:
        return ""
    text = _money(change, share_class)
    relative = _decimal(event.get("relative_change"))
    if relative is not None:
        text += f" ({relative * 100:+.3f} %)"
    if not text.startswith("-"):
        text = "+" + text
    return escape(text)


def _event_detail(event: Mapping[str, Any], share_class: str) -> str:
    """What an event says beyond its numbers: the problems, or the reference it moved from."""
    problems = event.get("snapshot", {}).get("problems", [])
    if event["kind"] == "incomplete" and problems:
        return escape("; ".join(f"{p['kind']} {p['subject']}: {p['detail']}" for p in problems))
    if event["kind"] == "threshold" and event.get("reference") is not None:
        return escape(f"from {_money(event['reference'], share_class)}")
    if event["kind"] == "recovered":
        return "complete again"
    return escape(str(event.get("detail") or ""))  # a reconciliation or venue notice says it


def _footer(open_only: bool = False) -> str:
    guarded = ["/metrics", "/snapshot", "/events"]  # the sign-in page links only the probes
    paths = ["/healthz", "/readyz"] + ([] if open_only else guarded)
    links = " · ".join(f'<a href="{path}">{path}</a>' for path in paths)
    return f'<footer class="muted">{links}</footer>'


# --- the chart ---------------------------------------------------------------------------

WIDTH, HEIGHT = 640, 220
SIDE = 8  # room left and right of the line, so that a dot at either end is drawn whole
TOP, BOTTOM = 16, 28  # room for the time labels below the plot


def equity_chart(
    points: Sequence[EquityPoint],
    threshold_events: Sequence[Mapping[str, Any]],
    now: datetime,
    share_class: str,
) -> str:
    """An inline SVG line of equity over the last `CHART_WINDOW`, with threshold alerts marked.

    Incomplete snapshots are drawn as hollow red dots on the line; their equity is the best
    estimate, not a number to act on. Where the equity was unknown the line breaks over a grey
    band: a gap, never a fall to zero.
    """
    start = now - CHART_WINDOW
    runs, gaps = _runs_and_gaps([p for p in points if p.at >= start])
    drawn = [p for run in runs for p in run]
    if not drawn:
        return '<p class="muted chart-empty">No history yet.</p>'
    markers = [
        (datetime.fromisoformat(e["at"]), value)
        for e in threshold_events
        if (value := _decimal(e.get("equity"))) is not None
        and value.is_finite()
        and datetime.fromisoformat(e["at"]) >= start
    ]
    end = max(now, drawn[-1].at)
    first = min([drawn[0].at, end - MIN_SPAN, *(at for at, _ in markers), *(a for a, _ in gaps)])
    span_seconds = (end - first).total_seconds()
    # money stays Decimal here too: only the pixel coordinates are rounded, when formatted
    values = [p.equity for p in drawn] + [v for _, v in markers]
    low, high = _padded(min(values), max(values))

    def x(at: datetime) -> float:
        return SIDE + (at - first).total_seconds() / span_seconds * (WIDTH - 2 * SIDE)

    def y(value: Decimal) -> Decimal:
        return TOP + (high - value) / (high - low) * (HEIGHT - TOP - BOTTOM)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="equity over the last 24 hours">',
        *_grid(low, high, y, share_class),
    ]
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
        label = escape(f"threshold alert {at:%H:%M:%S} UTC: {_money(str(value), share_class)}")
        parts.append(
            f'<circle class="threshold" cx="{x(at):.1f}" cy="{y(value):.1f}" r="5">'
            f"<title>{label}</title></circle>"
        )
    parts += _time_labels(first, end)
    parts.append("</svg>")
    keys = ['<span class="key line"></span>equity']
    if markers:
        keys.append('<span class="key threshold"></span>threshold alert')
    if not all(p.complete for p in drawn):
        keys.append('<span class="key incomplete"></span>incomplete')
    if gaps:
        keys.append('<span class="key gap"></span>equity unknown')
    legend = f'<div class="legend muted">{"".join(keys)}</div>'
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
    shown = "%H:%M" if end - first >= timedelta(minutes=10) else "%H:%M:%S"
    middle = first + (end - first) / 2
    baseline = HEIGHT - 8
    return [
        f'<text class="axis" x="4" y="{baseline}">{first:{shown}}</text>',
        f'<text class="axis" x="{WIDTH / 2}" y="{baseline}" text-anchor="middle">'
        f"{middle:{shown}}</text>",
        f'<text class="axis" x="{WIDTH - 4}" y="{baseline}" text-anchor="end">{end:{shown}}</text>',
    ]


# --- small pieces ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Styled:
    """A table cell with a class: `num` (a number: right-aligned) or `prose` (text that wraps;
    other cells do not, the table scrolls instead). `html` is escaped already."""

    html: str
    style: str


Cell = str | Styled  # a table cell's HTML, escaped already


def _table(
    title: str, head: Sequence[Cell], rows: Sequence[Sequence[Cell]], level: str = "h3"
) -> str:
    """A titled table in a box that scrolls sideways on a narrow screen."""
    header = "".join(
        f'<th class="{cell.style}">{cell.html}</th>'
        if isinstance(cell, Styled)
        else f"<th>{cell}</th>"
        for cell in head
    )
    body = "".join("<tr>" + "".join(_cell(cell) for cell in row) + "</tr>" for row in rows)
    if not rows:
        body = f'<tr><td colspan="{len(head)}" class="muted">none</td></tr>'
    return (
        f'<div class="block"><{level}>{escape(title)}</{level}><div class="scroll">'
        f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></div></div>"
    )


def _cell(cell: Cell) -> str:
    if isinstance(cell, Styled):
        return f'<td class="{cell.style}">{cell.html}</td>'
    return f"<td>{cell}</td>"


def _num(html_text: str) -> Styled:
    return Styled(html_text, "num")


def _prose(html_text: str) -> Styled:
    return Styled(html_text, "prose")


def _badge(text: str, tone: str) -> str:
    return f'<span class="badge {tone}">{escape(text)}</span>'


def _decimal(text: Any) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(str(text))
    except InvalidOperation:
        return None


def _figure(text: Any, share_class: str) -> str:
    """A total or breakdown entry of a snapshot document: `unknown` for null, never 0."""
    return "unknown" if text is None else _money(text, share_class)


def _money(text: Any, share_class: str) -> str:
    """A share-class value with thousands separators, to the cent (USDT) or 4 places (ETH)."""
    value = _decimal(text)
    if value is None:
        return "" if text is None else str(text)
    if not value.is_finite():
        return "n/a"
    return f"{value:,.{PLACES.get(share_class, 4)}f}"


def _amount(text: Any, places: int = 8) -> str:
    """An amount or rate as HTML, with thousands separators and at most `places` decimals (the
    exact figure, when rounded, in a tooltip)."""
    value = _decimal(text)
    if value is None or not value.is_finite():
        return escape(str(text))
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -places:
        return escape(f"{value:,f}")
    rounded = value.quantize(Decimal(1).scaleb(-places)).normalize()
    return f'<span title="{escape(str(text))}">{escape(f"{rounded:,f}")}</span>'


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60} min"


def _time(iso: str, now: datetime) -> str:
    """`HH:MM:SS` today (UTC), with the date before it on another day."""
    at = datetime.fromisoformat(iso).astimezone(UTC)
    return f"{at:%H:%M:%S}" if at.date() == now.astimezone(UTC).date() else f"{at:%Y-%m-%d %H:%M}"


# --- the document ------------------------------------------------------------------------

STYLE = """
:root{--bg:#f4f6f8;--card:#fff;--line:#e3e7ec;--text:#1d2330;--muted:#667085;--accent:#2563eb;
--ok:#15803d;--ok-bg:#dcfce7;--bad:#b42318;--bad-bg:#fee4e2;--warn:#9a6700;--warn-bg:#fef3c7}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1080px;margin:0 auto;padding:16px}
.top{display:flex;flex-wrap:wrap;align-items:center;gap:8px 16px;margin-bottom:12px}
.brand{font-weight:700;font-size:17px;margin-right:auto}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:18px 20px;
margin-bottom:16px;box-shadow:0 1px 2px rgba(16,24,40,.04)}
h1,h2,h3{margin:0}
h2{font-size:20px}
h3{font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);
margin:18px 0 6px;font-weight:600}
.book-head{display:flex;flex-wrap:wrap;align-items:center;gap:8px 12px}
.equity{font-size:34px;font-weight:650;margin:6px 0 2px;font-variant-numeric:tabular-nums;
letter-spacing:-.01em}
.unit{font-size:18px;color:var(--muted);font-weight:500}
.equity.unknown{color:var(--muted)}
.muted{color:var(--muted)}
.badges{display:flex;flex-wrap:wrap;gap:6px}
.badge{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12.5px;font-weight:600;
white-space:nowrap}
.badge.ok{color:var(--ok);background:var(--ok-bg)}
.badge.bad{color:var(--bad);background:var(--bad-bg)}
.badge.warn{color:var(--warn);background:var(--warn-bg)}
.notice,.problems{background:var(--bad-bg);color:var(--bad);border-radius:8px;margin:10px 0;
padding:8px 12px 8px 28px}
p.notice{padding-left:12px}
.columns{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:0 24px}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{width:100%;border-collapse:collapse;font-size:14px}
th.num{text-align:right}
th{text-align:left;font-weight:600;color:var(--muted);font-size:12.5px;padding:6px 10px;
border-bottom:1px solid var(--line);white-space:nowrap}
td{padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:top}
tr:last-child td{border-bottom:0}
td{white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.prose{white-space:normal;min-width:14em}
figure{margin:0}
.chart{display:block;width:100%;height:auto;background:#fbfcfe;border:1px solid var(--line);
border-radius:8px}
.chart .grid{stroke:var(--line);stroke-width:1}
.chart .axis{fill:var(--muted);font-size:11px;font-family:inherit}
.chart .area{fill:rgba(37,99,235,.08);stroke:none}
.chart .equity{fill:none;stroke:var(--accent);stroke-width:2;stroke-linejoin:round}
.chart .incomplete{fill:#fff;stroke:var(--bad);stroke-width:2}
.chart .last{fill:var(--accent);stroke:#fff;stroke-width:2}
.chart .threshold{fill:#f59e0b;stroke:#fff;stroke-width:2}
.chart .gap{fill:rgba(102,112,133,.14)}
.legend{font-size:12.5px;margin-top:6px;display:flex;flex-wrap:wrap;align-items:center;gap:4px}
.key{display:inline-block;width:12px;height:12px;border-radius:50%;margin:0 4px 0 12px}
.key.line{height:3px;border-radius:2px;background:var(--accent);margin-left:0}
.key.threshold{background:#f59e0b}
.key.incomplete{border:2px solid var(--bad)}
.key.gap{border-radius:2px;background:rgba(102,112,133,.3)}
footer{text-align:center;font-size:13px;padding:8px 0 24px}
a{color:var(--accent)}
.login{max-width:380px;margin:12vh auto 16px}
.login form{display:grid;gap:8px;margin-top:14px}
input{font:inherit;padding:8px 10px;border:1px solid var(--line);border-radius:8px}
button{font:inherit;padding:8px 14px;border:0;border-radius:8px;background:var(--accent);
color:#fff;font-weight:600;cursor:pointer}
button.link{background:none;color:var(--accent);padding:0;font-weight:500}
.error{color:var(--bad)}
@media (max-width:600px){main{padding:10px}.card{padding:14px}.equity{font-size:28px}
.chart .axis{font-size:20px}}
"""


def _document(title: str, body: str, refresh: int | None = None) -> str:
    reload = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{reload}<title>{escape(title)}</title>
<style>{STYLE}</style></head>
<body><main>
{body}
</main></body></html>
"""
