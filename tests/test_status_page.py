"""The status page's HTML: what it shows, that venue data cannot inject markup, the chart."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

from equity_daemon.model import EquityPoint, VenueReport, VenueState
from equity_daemon.status_page.chart import equity_chart
from equity_daemon.status_page.data import CHART_POINTS, StatusData
from equity_daemon.status_page.page import login_page, render
from tests.reports import (
    ETH_3000,
    HOSTILE_ASSET,
    NOW,
    basis_doc,
    hostile_doc,
    ok,
    pos,
    quote,
    snapshot,
)
from tests.test_calculator import CONTRACT, spot_beside_a_short


class Tags(HTMLParser):
    """The elements and attribute names a browser would build from a document."""

    def __init__(self, document: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: set[str] = set()
        self.feed(document)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.update(name for name, _ in attrs)


def event(kind: str, at_minutes: int, equity: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"{kind}-{at_minutes}",
        "book": doc["book"],
        "kind": kind,
        "at": (NOW - timedelta(minutes=at_minutes)).isoformat(),
        "reference": "512000",
        "equity": equity,
        "change": "600",
        "relative_change": "0.00117",
        "snapshot": doc,
    }


def history(count: int, *, every: timedelta = timedelta(minutes=1)) -> list[EquityPoint]:
    return [
        EquityPoint(NOW - every * (count - i), Decimal(512000 + i), complete=i % 10 != 3)
        for i in range(count)
    ]


def data(*docs: dict[str, Any], **changes: Any) -> StatusData:
    fields: dict[str, Any] = {
        "now": NOW,
        "snapshots": list(docs),
        "histories": {},
        "events": [],
        "healthy": (True, "ok"),
        "ready": (True, []),
    }
    return StatusData(**(fields | changes))


def test_a_book_shows_equity_breakdowns_excluded_lines_venues_and_prices() -> None:
    doc = basis_doc()
    page = render(data(doc, histories={"basis": history(30)}))
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "512,500.00 USDT" in text  # 150000 + 120 x 3000 + 2500: equity, with its share class
    assert "complete" in text
    assert "binance 510,000.00 99.5 %" in text  # by venue, with its share
    assert "okx 2,500.00 0.5 %" in text
    assert "ETH 360,000.00" in text  # by asset
    assert "hedge binance usdm ETH short -120 360,000.00 -42.50" in text
    assert "locked binance etherfi ETH 2 6,000.00" in text
    assert "ETH → USDT" in text  # the price path
    assert "Unvalued" not in text  # only when there are such lines
    assert "Ignored" not in text
    assert '<meta name="viewport"' in page
    assert '<meta http-equiv="refresh"' in page
    assert '<div class="scroll"><table>' in page  # tables scroll sideways on a phone


def test_a_book_shows_what_is_held_what_is_owed_and_its_perpetuals_upnl_apart() -> None:
    doc = basis_doc() | {"total_assets": "130000", "total_debt": "0", "unrealized_pnl": "-150"}
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", render(data(doc))))
    assert "assets 130,000.00 · debt 0.00 · perpetuals' uPnL -150.00" in text
    plain = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", render(data(basis_doc()))))
    assert "uPnL -" not in plain.split("Excluded")[0]  # none without open perpetuals


def test_an_incomplete_book_names_its_problems_and_unvalued_lines() -> None:
    page = render(data(hostile_doc(), ready=(False, ["basis: incomplete (failed_venue okx)"])))
    assert "incomplete" in page
    assert "not ready" in page
    assert "failed_venue" in page
    assert "unpriced" in page
    assert "Unvalued" in page


def test_every_string_from_venue_data_is_escaped() -> None:
    doc = hostile_doc()
    events = [event("incomplete", 5, "1000", doc)]
    page = render(data(doc, events=events, histories={"basis": history(5)}))
    parsed = Tags(page)
    assert "img" not in parsed.tags
    assert "script" not in parsed.tags  # the page has no script at all
    assert "onerror" not in parsed.attributes
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;quoted&#x27;" in page
    assert HOSTILE_ASSET not in page
    assert "<script>" not in page


def test_the_sign_in_page_shows_no_data() -> None:
    page = login_page()
    assert '<form method="post" action="/login">' in page
    assert 'type="password"' in page
    assert "not right" not in page
    assert "/snapshot" not in page  # it links the open endpoints only
    assert "not right" in login_page(failed=True)


def test_recent_events_are_listed_newest_first() -> None:
    doc = basis_doc()
    events = [event("threshold", 90, "512600", doc), event("incomplete", 30, "512400", doc)]
    page = render(data(doc, events=events))
    assert page.index(">incomplete<") < page.index(">threshold<")
    assert "+600.00 (+0.117 %)" in page
    empty = render(data(doc))
    assert "None in the last 24 h." in empty


def test_no_snapshot_yet_and_history_trouble_are_said() -> None:
    page = render(data(history_problem="OperationalError: disk I/O error"))
    assert "No snapshot yet." in page
    assert "History unavailable: OperationalError: disk I/O error" in page


def points_of(svg: str) -> list[tuple[float, float]]:
    match = re.search(r'<polyline class="equity" points="([^"]*)"', svg)
    assert match is not None
    return [(float(x), float(y)) for x, y in (p.split(",") for p in match.group(1).split())]


def test_the_chart_draws_the_window_marks_alerts_and_incomplete_points() -> None:
    doc = basis_doc()
    points = [EquityPoint(NOW - timedelta(hours=30), Decimal(1), True), *history(60)]
    alerts = [event("threshold", 20, "512040", doc)]
    svg = equity_chart(points, alerts, NOW, "USDT")
    drawn = points_of(svg)
    assert len(drawn) == 60  # the point older than 24 h is left out
    assert [x for x, _ in drawn] == sorted(x for x, _ in drawn)
    ys = [y for _, y in drawn]
    assert ys[0] > ys[-1]  # rising equity goes up the chart
    assert svg.count('class="threshold"') == 1
    assert svg.count('class="incomplete"') == 6
    assert "threshold alert 11:40:00 UTC: 512,040.00" in svg


def test_the_chart_copes_with_no_one_flat_and_many_points() -> None:
    assert "No history yet." in equity_chart([], [], NOW, "USDT")
    nan = [EquityPoint(NOW, Decimal("NaN"), False)]
    assert "No history yet." in equity_chart(nan, [], NOW, "USDT")
    one = equity_chart([EquityPoint(NOW, Decimal(5), True)], [], NOW, "ETH")
    assert len(points_of(one)) == 1
    flat = [EquityPoint(NOW - timedelta(minutes=i), Decimal(5), True) for i in range(5)]
    assert len({y for _, y in points_of(equity_chart(flat, [], NOW, "ETH"))}) == 1
    many = history(1440)  # a day, one a minute
    thinned = points_of(equity_chart(many, [], NOW, "USDT"))
    assert len(thinned) <= CHART_POINTS + 1
    assert thinned[-1][1] == min(y for _, y in thinned)  # the latest (highest) point is kept


def test_the_live_snapshot_ends_the_line() -> None:
    doc = basis_doc()
    page = render(data(doc, histories={"basis": history(10)}))
    assert len(points_of(page)) == 11


def test_an_event_says_what_it_moved_from_or_what_went_wrong() -> None:
    doc, broken = basis_doc(), hostile_doc()
    events = [event("threshold", 9, "512600", doc), event("recovered", 3, "512600", doc)]
    page = render(data(doc, events=[*events, event("incomplete", 1, "1000", broken)]))
    assert "from 512,000.00" in page
    assert "complete again" in page
    assert "failed_venue okx: " in page
    recorded = basis_doc() | {"at": (NOW - timedelta(minutes=1)).isoformat()}  # history's last
    assert len(points_of(render(data(recorded, histories={"basis": history(10)})))) == 10


def unknown_doc() -> dict[str, Any]:
    """A `/snapshot` document of a book whose chain venue has not answered since the start."""
    chain = VenueState(VenueReport.failed("chain", NOW, "connection refused"), None)
    snap = snapshot(ok(pos("binance", "USDT", "250000")), chain)
    return snap.to_json() | {"age_seconds": 1.0, "stale_after_seconds": 120.0, "stale": False}


def test_an_unknown_equity_has_no_headline_figure_and_says_why() -> None:
    page = render(data(unknown_doc(), histories={"basis": history(5)}))
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    headline = re.search(r'<div class="equity[^"]*">([^<]*)</div>', page)
    assert headline is not None
    assert headline.group(1) == "Equity unknown"  # no figure, not 0
    assert "chain has not reported since the daemon started" in text
    assert "<title>equity-daemon · basis unknown</title>" in page
    assert "assets unknown · debt unknown" in text
    assert "chain unknown" in text  # by venue
    assert "binance 250,000.00" in text  # what the gap cannot reach stays
    assert "USDT unknown" in text  # by asset: the chain may hold USDT too
    assert "equity unknown" in text  # the badge
    assert not re.search(r"\b0\.00\b", text)


def test_a_hedged_book_whose_equity_is_unknown_shows_its_upnl_unknown_never_zero() -> None:
    chain = VenueState(VenueReport.failed("chain", NOW, "connection refused"), None)
    quotes = (*ETH_3000, quote(CONTRACT, "USDT", "3015", source="bybit"))
    snap = snapshot(spot_beside_a_short(mark="3015"), chain, quotes=quotes)
    page = render(data(snap.to_json() | {"age_seconds": 1.0, "stale": False}))
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "assets unknown · debt unknown · perpetuals' uPnL unknown" in text


def test_the_candidates_of_a_disputed_price_are_shown_beside_no_figure() -> None:
    quotes = (quote("FOO", "USDT", "5", "a"), quote("FOO", "USDT", "500", "b", rank=1))
    snap = snapshot(
        ok(pos("binance", "FOO", "1000"), pos("binance", "USDT", "500000")), quotes=quotes
    )
    page = render(data(snap.to_json() | {"age_seconds": 1.0, "stale": False}))
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "Equity unknown" in text
    assert "FOO has no price its sources agree on" in text
    assert "it would be 505,000.00 USDT by a" in text
    assert "it would be 1,000,000.00 USDT by b" in text


def test_the_chart_breaks_where_the_equity_was_unknown() -> None:
    before = history(10)
    unknown = [EquityPoint(NOW - timedelta(seconds=30 - i), None, False) for i in range(3)]
    after = [EquityPoint(NOW - timedelta(seconds=10 - i), Decimal(512100), True) for i in range(3)]
    svg = equity_chart([*before, *unknown, *after], [], NOW, "USDT")
    lines = re.findall(r'<polyline class="equity" points="([^"]*)"', svg)
    assert [len(line.split()) for line in lines] == [10, 3]  # two runs, nothing between
    axis = re.findall(r'<text class="axis" x="4" y="[^"]*">([\d,.]+)</text>', svg)
    assert len(axis) == 4
    assert all(Decimal(label.replace(",", "")) > 511_000 for label in axis)  # no zero to fall to
    (gap,) = re.findall(r'<rect class="gap" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)
    end_of_line = float(lines[0].split()[-1].split(",")[0])
    start_of_next = float(lines[1].split()[0].split(",")[0])
    assert end_of_line < float(gap[0]) < start_of_next  # a grey band where nothing is known
    assert "equity unknown" in svg  # its title and the legend
    only_unknown = equity_chart(unknown, [], NOW, "USDT")
    assert "No history yet." in only_unknown


def test_the_live_snapshot_of_an_unknown_equity_ends_the_line_with_a_gap() -> None:
    page = render(data(unknown_doc(), histories={"basis": history(10)}))
    assert len(points_of(page)) == 10
    assert page.count('<rect class="gap"') == 1  # from the unknown snapshot to now


def test_on_a_phone_a_wide_table_stacks_each_cell_under_its_column_name() -> None:
    doc = basis_doc()
    page = render(data(doc, events=[event("threshold", 9, "512600", doc)]))
    events = page[page.index("Recent events") :]
    assert '<table class="stack">' in events  # six columns: stacked on a phone
    assert '<td class="num" data-label="Change">+600.00 (+0.117 %)</td>' in events
    by_venue = page[page.index("By venue") : page.index("By asset")]
    assert "<table>" in by_venue  # three columns fit a phone as a table
    assert '<td data-label="Venue">binance</td>' in by_venue
    assert "@media (max-width:640px)" in page


def test_the_page_follows_the_systems_dark_mode() -> None:
    page = render(data(basis_doc()))
    assert '<meta name="color-scheme" content="light dark">' in page
    assert "@media (prefers-color-scheme:dark)" in page
