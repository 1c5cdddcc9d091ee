"""The whole status page, and the sign-in form a token-protected daemon shows instead."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from equity_daemon.status_page.book import book_card
from equity_daemon.status_page.data import StatusData
from equity_daemon.status_page.events import events_card
from equity_daemon.status_page.format import figure
from equity_daemon.status_page.markup import badge
from equity_daemon.status_page.style import STYLE

REFRESH_SECONDS = 15


def render(data: StatusData) -> str:
    """The whole status page."""
    title = " · ".join(f"{doc['book']} {_title_figure(doc)}" for doc in data.snapshots)
    body = [
        _header(data),
        *(book_card(doc, data) for doc in data.snapshots),
        ""
        if data.snapshots
        else '<section class="card"><p class="muted">No snapshot yet.</p></section>',
        events_card(data.events, data.now, data.range),
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


def _title_figure(doc: Mapping[str, Any]) -> str:
    """The tab's figure: the equity of a complete book only ("incomplete" names an estimate)."""
    if doc["equity"] is not None and not doc["complete"]:
        return "incomplete"
    return figure(doc["equity"], str(doc["share_class"]))


def _header(data: StatusData) -> str:
    healthy, health_detail = data.healthy
    ready, reasons = data.ready
    badges = [
        badge("ready", "ok") if ready else badge("not ready", "bad"),
        badge("healthy", "ok") if healthy else badge(health_detail, "bad"),
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


def _footer(open_only: bool = False) -> str:
    guarded = ["/metrics", "/snapshot", "/events"]  # the sign-in page links only the probes
    paths = ["/healthz", "/readyz"] + ([] if open_only else guarded)
    links = " · ".join(f'<a href="{path}">{path}</a>' for path in paths)
    return f'<footer class="muted">{links}</footer>'


def _document(title: str, body: str, refresh: int | None = None) -> str:
    reload = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
{reload}<title>{escape(title)}</title>
<style>{STYLE}</style></head>
<body><main>
{body}
</main></body></html>
"""
