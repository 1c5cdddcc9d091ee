"""The book tracker: what it carries between cycles into the pure calculator."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal

from equity_daemon.model import ProblemKind, VenueState
from equity_daemon.monitor import EventKind
from equity_daemon.prices import Quote, QuoteFailure
from equity_daemon.tracker import BookTracker, Cycle
from tests.reports import NOW, Clock, ok, pos, quote, tracker

HALF_IN_ETH = ok(pos("binance", "ETH", "100"), pos("binance", "USDT", "500000"))
ETH_5000 = (quote("ETH", "USDT", "5000"),)


def run(book: BookTracker, venues: VenueState, quotes: tuple[Quote, ...]) -> Cycle:
    cycle = book.judge([venues], quotes)
    book.commit(cycle)
    return cycle


def test_a_vanished_quote_is_valued_at_the_last_good_price_across_cycles() -> None:
    clock = Clock()
    book = tracker(clock)
    assert run(book, HALF_IN_ETH, ETH_5000).snapshot.equity == 1_000_000
    events = []
    for minutes in (1, 2):  # the quote is gone; the remembered price keeps its age
        clock.now = NOW + timedelta(minutes=minutes)
        cycle = run(book, HALF_IN_ETH, ())
        assert cycle.snapshot.equity == 1_000_000
        assert [(p.kind, p.age) for p in cycle.snapshot.problems] == [
            (ProblemKind.STALE_PRICE, timedelta(minutes=minutes))
        ]
        events += cycle.events
    (event,) = events
    assert event.kind is EventKind.INCOMPLETE
    assert (event.equity, event.to_json()["snapshot"]["equity"]) == (Decimal(1_000_000), "1000000")


def test_a_judged_but_uncommitted_cycle_remembers_no_price() -> None:
    book = tracker(Clock())
    book.judge([HALF_IN_ETH], ETH_5000)  # a preview: nothing persisted, nothing committed
    snap = book.judge([HALF_IN_ETH], ()).snapshot
    assert [p.kind for p in snap.problems] == [ProblemKind.UNPRICED]
    assert snap.equity_is_partial


def test_a_suspect_price_is_not_remembered_as_good() -> None:
    book = tracker(Clock())
    disagreeing = (*ETH_5000, quote("ETH", "USDT", "6000", "okx", rank=1))
    run(book, HALF_IN_ETH, disagreeing)
    assert [p.kind for p in run(book, HALF_IN_ETH, ()).snapshot.problems] == [ProblemKind.UNPRICED]


def test_quote_failures_given_to_judge_reach_the_snapshot() -> None:
    failure = QuoteFailure("ETH/USDT", "okx", "timeout")
    snap = tracker(Clock()).judge([HALF_IN_ETH], ETH_5000, [failure]).snapshot
    assert snap.quote_failures == (failure,)
    assert snap.complete


def test_completeness_does_not_flap_with_a_deviation_hovering_around_the_limit() -> None:
    clock = Clock()
    book = tracker(clock)
    kinds: Counter[EventKind] = Counter()
    for cycle in range(60):
        clock.now = NOW + timedelta(seconds=cycle)
        bps = 55 if cycle % 2 else 45  # around the 50 bps limit, equity unchanged
        other = Decimal(5000) * (1 + Decimal(bps) / 10_000)
        quotes = (*ETH_5000, quote("ETH", "USDT", other, "okx", rank=1))
        done = run(book, HALF_IN_ETH, quotes)
        assert done.snapshot.equity == 1_000_000
        kinds.update(event.kind for event in done.events)
    assert kinds[EventKind.INCOMPLETE] <= 1
    assert kinds[EventKind.RECOVERED] <= 1
