"""The message a person reads for each kind of event, made from the event as stored."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from equity_daemon.message import PROBLEMS_SHOWN, amount, message_for
from equity_daemon.model import ShareClass, VenueReport, VenueState
from equity_daemon.monitor import EventKind, Reference, ThresholdRule, notice, observe
from tests.reports import NOW, book_at, ok, pos, snapshot


def stored(event_json: dict[str, Any]) -> dict[str, Any]:
    """The event as the outbox hands it over: JSON text read back."""
    loaded: dict[str, Any] = json.loads(json.dumps(event_json))
    return loaded


def threshold_event(reference: str, equity: str) -> dict[str, Any]:
    start = Reference("basis", Decimal(reference), 1, NOW, complete=True)
    _, (event,) = observe(start, book_at(equity, sequence=2), ThresholdRule(), lambda: "ev-1")
    return stored(event.to_json())


def test_a_threshold_message_gives_the_move_and_the_new_equity_in_its_title() -> None:
    message = message_for(threshold_event("1239758.01", "1234550.23"))
    assert message.title == "basis: equity −0.42 % to 1,234,550.23 USDT"
    assert message.body.splitlines() == [
        "Equity: 1,234,550.23 USDT",
        "Reference (last alert): 1,239,758.01 USDT",
        "Change: −5,207.78 USDT (−0.42 %)",
        "At 2026-11-25 12:02:00 UTC · event ev-1",
    ]
    assert message.severity == "warning"


@pytest.mark.parametrize(
    ("reference", "equity", "title"),
    [
        ("1000", "1001", "basis: equity +0.10 % to 1,001.00 USDT"),
        ("-1000", "-1002", "basis: equity −0.20 % to −1,002.00 USDT"),
        ("100000", "100000.1", "basis: equity +0.0001 % to 100,000.10 USDT"),
        ("0", "12", "basis: equity +12.00 USDT to 12.00 USDT"),  # no ratio to a zero
    ],
)
def test_threshold_titles_read_right_for_small_negative_and_zero_references(
    reference: str, equity: str, title: str
) -> None:
    rule = ThresholdRule(Decimal("0.0001"))
    start = Reference("basis", Decimal(reference), 1, NOW, complete=True)
    _, (event,) = observe(start, book_at(equity, sequence=2), rule, lambda: "ev-1")
    assert message_for(stored(event.to_json())).title == title


def test_an_unknown_equity_reads_unknown_with_its_reasons_never_zero() -> None:
    unpriced = snapshot(ok(pos("binance", "USDT", "1000"), pos("binance", "PEPE", "1e9")))
    assert unpriced.equity is None
    _, (event,) = observe(Reference("basis", complete=True), unpriced, ThresholdRule())
    message = message_for(stored(event.to_json()))
    assert message.title == "basis: incomplete, equity unknown"
    lines = message.body.splitlines()
    assert lines[:2] == ["Equity: unknown", "  unknown: PEPE has no price"]
    assert "Incomplete because:" in lines
    assert any(line.startswith("  unpriced PEPE: ") for line in lines)
    assert "No threshold alert fires until the book is complete again." in lines
    assert " 0.00 " not in f" {message.title} {message.body} "
    assert amount(None, "USDT") == "unknown"


def test_an_incomplete_book_with_a_best_estimate_says_so() -> None:
    stale = snapshot(ok(pos("binance", "ETH", "2"), age=timedelta(hours=1)))
    assert stale.equity is not None
    assert not stale.complete
    _, (event,) = observe(Reference("basis", complete=True), stale, ThresholdRule())
    message = message_for(stored(event.to_json()))
    assert message.title == "basis: incomplete, best estimate 6,000.00 USDT"
    assert any(line.startswith("  stale_venue binance: ") for line in message.body.splitlines())


def test_a_long_list_of_problems_is_cut_and_counted() -> None:
    assets = [f"COIN{n}" for n in range(PROBLEMS_SHOWN + 3)]
    many = snapshot(ok(*(pos("binance", asset, "1") for asset in assets)))
    _, (event,) = observe(Reference("basis", complete=True), many, ThresholdRule())
    lines = message_for(stored(event.to_json())).body.splitlines()
    assert sum(line.startswith("  unpriced ") for line in lines) == PROBLEMS_SHOWN
    assert "  … and 3 more" in lines


def test_recovery_says_complete_again_with_the_change_since_the_last_alert() -> None:
    start = Reference("basis", Decimal(1000), 1, NOW, complete=False)
    _, events = observe(start, book_at("1000.5", sequence=3), ThresholdRule(), lambda: "ev-2")
    message = message_for(stored(events[0].to_json()))
    assert message.title == "basis: complete again, equity 1,000.50 USDT"
    assert "Change: +0.50 USDT (+0.05 %)" in message.body.splitlines()
    assert message.severity == "success"


def test_a_refused_venue_is_named_with_the_reason() -> None:
    refused = VenueState(
        latest=VenueReport.failed("binance", NOW, "API key revoked", refused=True),
        last_good=ok(pos("binance", "USDT", "10")).last_good,
    )
    snap = book_at("10")
    detail = f"binance refused our key or a permission: {refused.latest.error}"
    event = notice(snap, EventKind.VENUE_REFUSED, detail, lambda: "ev-3", "binance")
    message = message_for(stored(event.to_json()))
    assert message.title == "basis: binance refused our key"
    assert "binance refused our key or a permission: API key revoked" in message.body
    assert message.severity == "failure"
    restored = notice(snap, EventKind.VENUE_RESTORED, "binance reads again", venue="binance")
    assert message_for(stored(restored.to_json())).title == "basis: binance reads again"


def test_a_reconciliation_notice_names_the_account_and_both_figures() -> None:
    detail = "binance/spot: computed 1000 vs account equity 1010 USDT"
    event = notice(book_at("1000"), EventKind.RECONCILIATION, detail, lambda: "ev-4")
    message = message_for(stored(event.to_json()))
    assert message.title == "basis: binance/spot is off its venue's own total"
    assert detail in message.body.splitlines()


def test_an_eth_book_shows_six_places() -> None:
    eth = snapshot(ok(pos("binance", "ETH", "12.3456789")), share_class=ShareClass.ETH)
    event = notice(eth, EventKind.RECONCILIATION, "x", lambda: "ev-5")
    assert message_for(stored(event.to_json())).body.startswith("Equity: 12.345679 ETH\n")
