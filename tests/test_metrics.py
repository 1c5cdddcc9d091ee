"""Metrics: what a scrape shows for the latest snapshots, and that promtool accepts it."""

from __future__ import annotations

import math
import subprocess
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from prometheus_client import generate_latest

from equity_daemon import __version__
from equity_daemon.metrics import BookView, DaemonMetrics, EquityCollector
from equity_daemon.model import PositionKind, PriceUsed, ProblemKind, VenueReport, VenueState
from tests.reports import NOW, failed, ok, pos, quote, snapshot
from tests.tools import require_tool


def scrape_registry(books: list[BookView], backlog: dict[str, int]) -> DaemonMetrics:
    metrics = DaemonMetrics()
    later = NOW + timedelta(seconds=42)
    metrics.registry.register(EquityCollector(lambda: books, lambda: backlog, lambda: later))
    return metrics


def basis_view() -> BookView:
    lido = ok(pos("lido", "ETH", "10"), pos("lido", "USDT", "-500"))
    okx = ok(
        pos("okx", "USDT", "1000"),
        pos("okx", "USDT", "-25", PositionKind.UNREALIZED_PNL),  # neither held nor owed
        pos("okx", "ETH", "-2", PositionKind.HEDGE, unrealized_pnl="5", pnl_currency="USDT"),
        pos("okx", "ETH", "1", PositionKind.LOCKED),
    )
    quotes = (quote("ETH", "USDT", "3000", age=timedelta(seconds=8)),)
    return BookView("basis", snapshot(lido, okx, quotes=quotes), (lido, okx), age=42.0)


def incomplete_view() -> BookView:
    down = failed(None, "bybit", "down")
    return BookView("other", replace(snapshot(down), book="other"), (down,))


def test_a_scrape_shows_the_latest_snapshot() -> None:
    metrics = scrape_registry([basis_view(), incomplete_view()], {"pager": 3})
    value = metrics.registry.get_sample_value
    money = {"book": "basis", "currency": "USDT"}
    assert value("equity_daemon_equity", money) == 30475
    assert value("equity_daemon_assets", money) == 31000
    assert value("equity_daemon_debt", money) == 500
    assert value("equity_daemon_unrealized_pnl", money) == -25
    assert value("equity_daemon_venue_equity", {**money, "venue": "lido"}) == 29500
    assert value("equity_daemon_asset_equity", {**money, "asset": "ETH"}) == 30000
    assert value("equity_daemon_excluded_value", {**money, "kind": "hedge"}) == 6000
    assert value("equity_daemon_excluded_value", {**money, "kind": "locked"}) == 3000
    assert value("equity_daemon_snapshot_complete", {"book": "basis"}) == 1
    assert value("equity_daemon_snapshot_complete", {"book": "other"}) == 0
    assert value("equity_daemon_snapshot_age_seconds", {"book": "basis"}) == 42
    assert value("equity_daemon_snapshot_sequence", {"book": "basis"}) == 1
    for book, kinds in [("basis", {}), ("other", {ProblemKind.FAILED_VENUE: 1})]:
        for kind in ProblemKind:  # absent kinds are zeros, not missing series
            labels = {"book": book, "kind": kind.value}
            assert value("equity_daemon_snapshot_problems", labels) == kinds.get(kind, 0)
    eth = {"book": "basis", "asset": "ETH"}
    assert value("equity_daemon_price", {**eth, "currency": "USDT"}) == 3000
    assert value("equity_daemon_price_age_seconds", {**eth, "source": "binance"}) == 50
    assert value("equity_daemon_venue_up", {"book": "basis", "venue": "okx"}) == 1
    assert value("equity_daemon_venue_up", {"book": "other", "venue": "bybit"}) == 0
    stamp = value(
        "equity_daemon_venue_last_success_timestamp_seconds", {"book": "basis", "venue": "okx"}
    )
    assert stamp == NOW.timestamp()
    assert value("equity_daemon_outbox_backlog", {"target": "pager"}) == 3
    assert value("equity_daemon_build_info", {"version": __version__}) == 1


def test_counters_and_the_fetch_histogram() -> None:
    metrics = scrape_registry([], {})
    metrics.prepare(["okx"])
    value = metrics.registry.get_sample_value
    assert value("equity_daemon_venue_errors_total", {"venue": "okx", "reason": "timeout"}) == 0
    metrics.failed("okx", "timeout")
    metrics.fetched("okx", 0.3)
    metrics.events.labels("basis", "threshold").inc()
    assert value("equity_daemon_venue_errors_total", {"venue": "okx", "reason": "timeout"}) == 1
    bucket = {"venue": "okx", "le": "0.5"}
    assert value("equity_daemon_venue_fetch_duration_seconds_bucket", bucket) == 1
    assert value("equity_daemon_events_total", {"book": "basis", "kind": "threshold"}) == 1


def test_every_books_event_counters_start_at_zero_so_the_first_alert_is_an_increase() -> None:
    metrics = scrape_registry([], {})
    metrics.prepare(["okx"], books=["basis"])
    value = metrics.registry.get_sample_value
    for kind in ("threshold", "incomplete", "recovered", "reconciliation", "venue_refused"):
        assert value("equity_daemon_events_total", {"book": "basis", "kind": kind}) == 0


def test_an_unpriced_excluded_line_is_left_out_not_zeroed() -> None:
    view = BookView("x", snapshot(ok(pos("etherfi", "eETH", "1", PositionKind.LOCKED))), ())
    metrics = scrape_registry([view], {})
    labels = {"book": "x", "kind": "locked", "currency": "USDT"}
    assert metrics.registry.get_sample_value("equity_daemon_excluded_value", labels) is None


def test_no_label_carries_an_address_or_an_id() -> None:
    venue = VenueReport("wallet", NOW, (pos("wallet", "USDT", "1", account="0xdeadbeef"),))
    view = BookView("basis", snapshot(VenueState(venue, venue)), (VenueState(venue, venue),))
    text = generate_latest(scrape_registry([view], {}).registry).decode()
    assert "0xdeadbeef" not in text


def test_promtool_accepts_the_exposition() -> None:
    promtool = require_tool("promtool", "prometheus")
    metrics = scrape_registry([basis_view(), incomplete_view()], {"pager": 0})
    metrics.prepare(["lido", "okx", "bybit"])
    metrics.failed("okx", "timeout")
    metrics.fetched("okx", 0.3)
    metrics.events.labels("basis", "threshold").inc()
    metrics.webhook_deliveries.labels("pager", "delivered").inc()
    metrics.callback_failures.labels("timeout").inc()
    metrics.quote_errors.labels("okx").inc()
    metrics.cycles.inc()
    exposition = generate_latest(metrics.registry)
    assert exposition.count(b"# HELP") > 20
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, b"", b"")


def test_a_book_without_a_snapshot_yet_shows_only_its_venues() -> None:
    down = failed(None, "bybit", "down")
    metrics = scrape_registry([BookView("fresh", None, (down,))], {})
    value = metrics.registry.get_sample_value
    assert value("equity_daemon_venue_up", {"book": "fresh", "venue": "bybit"}) == 0
    labels = {"book": "fresh", "venue": "bybit"}
    assert value("equity_daemon_venue_last_success_timestamp_seconds", labels) is None
    assert value("equity_daemon_equity", {"book": "fresh", "currency": "USDT"}) is None
    assert value("equity_daemon_snapshot_complete", {"book": "fresh"}) is None


def test_a_partial_equity_is_exported_as_nan_not_as_a_drop() -> None:
    held = ok(pos("aave", "GHO", "500000"), pos("aave", "USDT", "250000"))
    other = ok(pos("binance", "USDT", "250000"))
    view = BookView("basis", snapshot(held, other), (held, other))
    value = scrape_registry([view], {}).registry.get_sample_value

    def nan(name: str, labels: dict[str, str]) -> bool:
        return math.isnan(value(name, labels) or 0)

    money = {"book": "basis", "currency": "USDT"}
    for name in ("equity", "assets", "debt", "unrealized_pnl"):
        assert nan(f"equity_daemon_{name}", money)
    assert nan("equity_daemon_venue_equity", {**money, "venue": "aave"})
    assert value("equity_daemon_venue_equity", {**money, "venue": "binance"}) == 250000
    assert nan("equity_daemon_asset_equity", {**money, "asset": "GHO"})
    assert value("equity_daemon_asset_equity", {**money, "asset": "USDT"}) == 500000
    assert value("equity_daemon_unvalued_positions", {"book": "basis"}) == 1


def test_a_book_valued_at_a_stale_price_exports_its_best_estimate() -> None:
    last = {"ETH": PriceUsed("ETH", Decimal(5000), ("ETH", "USDT"), ("binance",), NOW)}
    held = ok(pos("binance", "ETH", "100"), pos("binance", "USDT", "500000"))
    snap = snapshot(held, quotes=(), last_good_prices=last)
    value = scrape_registry([BookView("basis", snap, (held,))], {}).registry.get_sample_value
    assert value("equity_daemon_equity", {"book": "basis", "currency": "USDT"}) == 1_000_000
    assert value("equity_daemon_unvalued_positions", {"book": "basis"}) == 0
    stale = {"book": "basis", "kind": "stale_price"}
    assert value("equity_daemon_snapshot_problems", stale) == 1


def test_an_unknown_equity_is_nan_in_every_equity_gauge_never_zero() -> None:
    chain = VenueState(VenueReport.failed("chain", NOW, "connection refused"), None)
    cex = ok(pos("binance", "USDT", "250000"))
    view = BookView("basis", snapshot(cex, chain), (cex, chain))
    value = scrape_registry([view], {}).registry.get_sample_value

    def nan(name: str, labels: dict[str, str]) -> bool:
        return math.isnan(value(name, labels) or 0)

    money = {"book": "basis", "currency": "USDT"}
    for name in ("equity", "assets", "debt", "unrealized_pnl"):
        assert nan(f"equity_daemon_{name}", money)
    assert nan("equity_daemon_venue_equity", {**money, "venue": "chain"})
    assert value("equity_daemon_venue_equity", {**money, "venue": "binance"}) == 250000
    assert nan("equity_daemon_asset_equity", {**money, "asset": "USDT"})  # chain may hold some
    assert value("equity_daemon_equity_unknown", {"book": "basis"}) == 1
    known = scrape_registry([basis_view()], {}).registry.get_sample_value
    assert known("equity_daemon_equity_unknown", {"book": "basis"}) == 0
