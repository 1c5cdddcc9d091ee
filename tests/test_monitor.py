"""The threshold monitor: compare with the last notified equity; incompleteness is a signal."""

from __future__ import annotations

from decimal import Decimal, localcontext
from itertools import count

import pytest

from equity_daemon.model import Snapshot, VenueReport, VenueState
from equity_daemon.monitor import (
    AlertBand,
    EventKind,
    Reference,
    ThresholdRule,
    observe,
    refusal_events,
    refusals,
)
from equity_daemon.prices import PRICE_PRECISION
from tests.reports import NOW, book_at, ok, pos

RULE = ThresholdRule()


def run(
    *snapshots: Snapshot, rule: ThresholdRule = RULE, reference: Reference | None = None
) -> tuple[Reference, list[tuple[EventKind, Decimal | None]]]:
    ref = reference or Reference("basis")
    seen: list[tuple[EventKind, Decimal | None]] = []
    for snap in snapshots:
        ref, events = observe(ref, snap, rule)
        seen.extend((e.kind, e.change) for e in events)
    return ref, seen


def test_the_first_complete_snapshot_sets_the_reference_silently() -> None:
    ref, events = run(book_at("1000"))
    assert events == []
    assert (ref.equity, ref.sequence, ref.complete) == (Decimal(1000), 1, True)


def test_a_move_of_exactly_the_threshold_fires_and_moves_the_reference() -> None:
    ref, events = run(book_at("1000", sequence=1), book_at("1001", sequence=2))
    assert events == [(EventKind.THRESHOLD, Decimal(1))]
    assert (ref.equity, ref.sequence) == (Decimal(1001), 2)


def test_a_move_below_the_threshold_does_not_fire_nor_move_the_reference() -> None:
    ref, events = run(book_at("1000"), book_at("1000.99"))
    assert events == []
    assert ref.equity == 1000


def test_event_carries_reference_equity_changes_and_snapshot() -> None:
    ids = iter(["e1", "e2"])
    ref, _ = observe(Reference("basis"), book_at("2000"), RULE)
    _, (event,) = observe(ref, book_at("1990", sequence=2), RULE, new_id=lambda: next(ids))
    doc = event.to_json()
    assert doc["id"] == "e1"
    assert (doc["kind"], doc["reference"], doc["equity"]) == ("threshold", "2000", "1990")
    assert (doc["change"], doc["relative_change"]) == ("-10", "-0.005")
    assert doc["snapshot"]["sequence"] == 2


def test_event_ids_are_unique() -> None:
    snaps = [book_at(str(1000 + 10 * i), sequence=i) for i in range(1, 50)]
    ref = Reference("basis")
    ids = []
    for snap in snaps:
        ref, events = observe(ref, snap, RULE)
        ids += [e.id for e in events]
    assert len(ids) == len(set(ids)) == 48


def test_the_absolute_floor_silences_small_books() -> None:
    rule = ThresholdRule(percent=Decimal("0.1"), floor=Decimal(50))
    _, events = run(book_at("1000"), book_at("1040"), book_at("1050"), rule=rule)
    assert events == [(EventKind.THRESHOLD, Decimal(50))]


def test_becoming_incomplete_fires_once_and_recovery_fires_once() -> None:
    ref, events = run(
        book_at("1000", sequence=1),
        book_at("900", complete=False, sequence=2),
        book_at("800", complete=False, sequence=3),
        book_at("1000.5", sequence=4),
        book_at("1000.5", sequence=5),
    )
    assert events == [(EventKind.INCOMPLETE, None), (EventKind.RECOVERED, Decimal("0.5"))]
    assert ref.equity == 1000


def test_a_drift_during_an_outage_alerts_on_recovery() -> None:
    _, events = run(book_at("1000"), book_at("1000", complete=False), book_at("1100"))
    assert events == [
        (EventKind.INCOMPLETE, None),
        (EventKind.RECOVERED, Decimal(100)),
        (EventKind.THRESHOLD, Decimal(100)),
    ]


def test_a_book_that_starts_incomplete_says_so_then_recovers_without_a_threshold_event() -> None:
    ref, events = run(book_at("1", complete=False), book_at("1000"))
    assert events == [(EventKind.INCOMPLETE, None), (EventKind.RECOVERED, None)]
    assert ref.equity == 1000


def test_a_restored_reference_neither_realerts_nor_forgets() -> None:
    restored = Reference("basis", equity=Decimal(1000), sequence=7, complete=True)
    assert run(book_at("1000.5"), reference=restored)[1] == []
    assert run(book_at("1002"), reference=restored)[1] == [(EventKind.THRESHOLD, Decimal(2))]


def test_a_restored_incomplete_state_does_not_repeat_the_incomplete_event() -> None:
    restored = Reference("basis", equity=Decimal(1000), complete=False)
    assert run(book_at("5", complete=False), reference=restored)[1] == []


@pytest.mark.parametrize(
    ("reference", "equity", "fires"),
    [
        ("0", "0", False),
        ("0", "0.0001", True),
        ("-1000", "-1000.5", False),
        ("-1000", "-1001", True),
        ("-1000", "-999", True),
        ("-1000", "-999.5", False),
    ],
)
def test_zero_and_negative_references_are_defined(reference: str, equity: str, fires: bool) -> None:
    assert RULE.crossed(Decimal(reference), Decimal(equity)) is fires


def test_relative_change_is_none_from_a_zero_reference() -> None:
    ref = Reference("basis", equity=Decimal(0), complete=True)
    _, (event,) = observe(ref, book_at("5"), RULE)
    assert (event.change, event.relative_change) == (Decimal(5), None)


def test_relative_change_is_measured_on_the_size_of_a_negative_reference() -> None:
    ref = Reference("basis", equity=Decimal(-1000), complete=True)
    _, (event,) = observe(ref, book_at("-990"), RULE)
    assert event.relative_change == Decimal("0.01")


def test_each_snapshot_is_compared_with_the_reference_not_the_previous_one() -> None:
    steps = count(1)
    snaps = [book_at(str(1000 + Decimal("0.5") * i), sequence=next(steps)) for i in range(5)]
    _, events = run(*snaps)
    assert events == [(EventKind.THRESHOLD, Decimal(1))]


def test_change_and_relative_change_are_computed_at_the_calculators_precision() -> None:
    reference = Reference("basis", equity=Decimal(3), complete=True)
    equity = "12345678901.123456789012345678"  # 29 digits: more than the default context keeps
    _, (event,) = observe(reference, book_at(equity), RULE)
    assert event.change == Decimal("12345678898.123456789012345678")
    relative = event.relative_change
    assert relative is not None
    assert len(relative.as_tuple().digits) == PRICE_PRECISION
    with localcontext(prec=PRICE_PRECISION):
        assert relative == Decimal("12345678898.123456789012345678") / 3


def test_a_refused_venue_is_told_once_until_it_reads_again() -> None:
    snap = book_at("1000")
    good = ok(pos("cex", "USDT", "1000"))
    refused = VenueState(VenueReport.failed("cex", NOW, "bybit: invalid key", refused=True), None)
    timed_out = VenueState(VenueReport.failed("cex", NOW, "timeout"), None)
    seen: list[list[EventKind]] = []
    details: list[str | None] = []
    state: frozenset[str] = frozenset()
    for venues in ([good], [refused], [refused], [timed_out], [good], [timed_out]):
        now = refusals(state, venues)
        events = refusal_events(state, now, venues, snap)
        seen.append([e.kind for e in events])
        details += [e.detail for e in events if e.venue == "cex"]
        state = now
    # a timeout while refused is still refused; a timeout of a venue that reads is not a refusal
    assert seen == [[], [EventKind.VENUE_REFUSED], [], [], [EventKind.VENUE_RESTORED], []]
    assert details == ["cex refused our key or a permission: bybit: invalid key", "cex reads again"]


@pytest.mark.parametrize(
    ("reference", "rule", "edges"),
    [
        ("512000", RULE, ("511488", "512512")),  # 0.1 % of the reference either way
        ("1000", ThresholdRule(floor=Decimal(50)), ("950", "1050")),  # the floor is wider
        ("-1000", RULE, ("-1001", "-999")),  # a negative equity: 0.1 % of its magnitude
        ("0", RULE, ("0", "0")),  # any move from zero alerts
    ],
)
def test_the_alert_band_is_the_reference_plus_or_minus_what_the_rule_needs(
    reference: str, rule: ThresholdRule, edges: tuple[str, str]
) -> None:
    band = AlertBand(Reference("basis", Decimal(reference), 1, NOW, True), rule)
    assert band.edges() == (Decimal(edges[0]), Decimal(edges[1]))
    low, high = band.edges() or (Decimal(0), Decimal(0))
    assert rule.crossed(Decimal(reference), high) or low == high
    assert not rule.crossed(Decimal(reference), (Decimal(reference) + high) / 2)
    assert band.to_json()["low"] == edges[0]


def test_there_is_no_alert_band_before_the_first_reference() -> None:
    band = AlertBand(Reference("basis"), RULE)
    assert band.edges() is None
    assert band.to_json() == {
        "reference": None,
        "reference_at": None,
        "threshold_percent": "0.1",
        "threshold_floor": "0",
        "distance": None,
        "low": None,
        "high": None,
    }
