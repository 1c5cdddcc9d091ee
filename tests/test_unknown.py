"""Never a zero, never one side of a disagreement: what the daemon does not know is unknown.

A venue that has not answered yet, a line without a price, a price whose sources disagree and
never agreed: each leaves the equity unknown (None), names why, and raises no move.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from equity_daemon.calculator import Limits
from equity_daemon.model import (
    EquityCandidate,
    ProblemKind,
    ShareClass,
    Snapshot,
    VenueReport,
    VenueState,
)
from equity_daemon.monitor import EventKind, Reference
from equity_daemon.prices import Quote
from equity_daemon.tracker import BookTracker
from tests.reports import ETH_3000, NOW, Clock, ok, pos, quote, snapshot, tracker
from tests.test_calculator import CONTRACT, spot_beside_a_short


def down(venue: str, since: timedelta | None, reason: str = "connection refused") -> VenueState:
    """A venue that has never delivered a good report, followed for `since` (None: unknown)."""
    followed = None if since is None else NOW - since
    return VenueState(VenueReport.failed(venue, NOW, reason), None, followed_since=followed)


def test_a_venue_that_never_answered_leaves_the_equity_unknown_never_zero() -> None:
    snap = snapshot(down("chain", None), quotes=(), share_class=ShareClass.ETH)
    assert (snap.equity, snap.total_assets, snap.total_debt) == (None, None, None)
    assert snap.equity_is_partial
    assert not snap.complete
    assert snap.unreported == ("chain",)
    assert snap.equity_by_venue == {"chain": None}
    doc = snap.to_json()
    assert (doc["equity"], doc["total_assets"], doc["total_debt"]) == (None, None, None)
    assert doc["equity_is_partial"] is True
    assert doc["equity_unknown_because"] == ["chain has not reported since the daemon started"]
    assert doc["unreported"] == ["chain"]
    assert doc["equity_by_venue"] == {"chain": None}


def test_an_unreported_venue_leaves_every_asset_unknown_but_not_the_other_venues() -> None:
    snap = snapshot(ok(pos("binance", "USDT", "500000")), down("chain", None))
    assert snap.equity is None
    assert snap.equity_by_venue == {"binance": Decimal(500000), "chain": None}
    # the chain may hold USDT too: 500,000 is no more the book's USDT than its equity
    assert snap.equity_by_asset == {"USDT": None}
    assert snap.equity_by_account == {"binance": {"main": Decimal(500000)}}


def test_a_venue_not_heard_from_since_start_is_awaited_for_its_max_age_then_failed() -> None:
    limits = Limits(venue_max_age=timedelta(minutes=5))
    waiting = snapshot(down("chain", timedelta(seconds=40)), limits=limits)
    assert [v.status for v in waiting.venues] == ["waiting"]
    (problem,) = waiting.problems
    assert (problem.kind, problem.subject, problem.age) == (
        ProblemKind.UNREPORTED_VENUE,
        "chain",
        timedelta(seconds=40),
    )
    assert problem.detail == (
        "no report since the daemon started 40s ago (latest: connection refused)"
    )
    assert waiting.equity is None

    failed = snapshot(down("chain", timedelta(minutes=6)), limits=limits)
    assert [v.status for v in failed.venues] == ["failed"]
    assert [(p.kind, p.detail) for p in failed.problems] == [
        (ProblemKind.FAILED_VENUE, "connection refused (never succeeded)")
    ]
    assert failed.equity is None


def test_a_venue_refusing_our_key_at_start_is_failed_at_once() -> None:
    refused = VenueReport.failed("cex", NOW, "auth refused", refused=True)
    snap = snapshot(VenueState(refused, None, followed_since=NOW))
    assert [v.status for v in snap.venues] == ["failed"]  # retrying cannot fix it: no waiting
    assert [p.kind for p in snap.problems] == [ProblemKind.FAILED_VENUE]
    assert snap.equity is None


def restored_tracker(clock: Clock, equity: str) -> BookTracker:
    book = tracker(clock, "staking")
    book.restore(Reference("staking", Decimal(equity), 7, NOW, complete=True), 7)
    return book


def test_a_restart_during_an_outage_raises_no_event_and_shows_the_true_figure_after() -> None:
    clock = Clock()
    book = restored_tracker(clock, "1000")
    for seconds in (0, 5, 30):  # the daemon started at NOW; the venue does not answer yet
        clock.now = NOW + timedelta(seconds=seconds)
        cycle = book.judge([down("chain", timedelta(0))], ())
        assert cycle.events == []
        assert cycle.snapshot.equity is None
        assert cycle.reference == book.reference  # nothing known changed
        book.commit(cycle)
    answered = ok(pos("chain", "USDT", "1000"))
    cycle = book.judge([answered], ())
    assert (cycle.events, cycle.snapshot.equity) == ([], Decimal(1000))
    assert cycle.snapshot.complete


def test_an_outage_past_the_max_age_since_start_is_told_once() -> None:
    clock = Clock()
    book = restored_tracker(clock, "1000")
    cycle = book.judge([down("chain", timedelta(minutes=6))], ())
    assert [e.kind for e in cycle.events] == [EventKind.INCOMPLETE]
    (event,) = cycle.events
    assert (event.equity, event.to_json()["equity"]) == (None, None)


# --- a disputed price: 1000 FOO and 500,000 USDT, FOO 500 by both sources, then 5 by one ------

HALF_IN_FOO = ok(pos("binance", "FOO", "1000"), pos("binance", "USDT", "500000"))


def foo(primary: str, check: str) -> tuple[Quote, ...]:
    return (quote("FOO", "USDT", primary, "a", rank=0), quote("FOO", "USDT", check, "b", rank=1))


def run(book: BookTracker, quotes: tuple[Quote, ...]) -> tuple[Snapshot, list[EventKind]]:
    cycle = book.judge([HALF_IN_FOO], quotes)
    book.commit(cycle)
    return cycle.snapshot, [event.kind for event in cycle.events]


def test_a_suspect_price_is_valued_at_the_last_price_its_sources_agreed_on() -> None:
    clock = Clock()
    book = restored_tracker(clock, "1000000")
    agreed, events = run(book, foo("500", "500"))
    assert (agreed.equity, events) == (Decimal(1_000_000), [])

    clock.now += timedelta(minutes=2)
    disputed, events = run(book, foo("5", "500"))
    assert disputed.equity == Decimal(1_000_000)  # never the 505,000 one side says
    assert disputed.equity_by_asset["FOO"] == Decimal(500_000)
    assert events == [EventKind.INCOMPLETE]  # incomplete, named; no threshold move
    (problem,) = disputed.problems
    assert (problem.kind, problem.subject, problem.age) == (
        ProblemKind.SUSPECT_PRICE,
        "FOO",
        timedelta(minutes=2),
    )
    assert problem.detail == (
        "FOO/USDT: a 5 vs b 500 (990000.0 bps); valued at its last agreed price 500 "
        "via FOO > USDT (a), 2m old"
    )
    (price,) = [p for p in disputed.to_json()["prices"] if p["asset"] == "FOO"]
    assert (price["price"], price["suspect"], price["stale"]) == ("500", True, True)

    clock.now += timedelta(minutes=1)
    again, events = run(book, foo("500", "500.1"))
    assert (again.equity, events) == (Decimal(1_000_000), [EventKind.RECOVERED])


def test_a_suspect_price_never_agreed_on_leaves_the_equity_unknown_with_both_figures() -> None:
    snap = snapshot(HALF_IN_FOO, quotes=foo("5", "500"))
    assert snap.equity is None
    assert not snap.complete
    assert snap.equity_candidates == (
        EquityCandidate(("a",), Decimal(505_000)),
        EquityCandidate(("b",), Decimal(1_000_000)),
    )
    (problem,) = snap.problems
    assert problem.kind is ProblemKind.SUSPECT_PRICE
    assert problem.detail == (
        "FOO/USDT: a 5 vs b 500 (990000.0 bps); no price they agreed on yet: left out of equity"
    )
    doc = snap.to_json()
    assert doc["equity_candidates"] == [
        {"sources": ["a"], "equity": "505000"},
        {"sources": ["b"], "equity": "1000000"},
    ]
    assert doc["equity_unknown_because"] == ["FOO has no price its sources agree on"]
    assert doc["equity_by_asset"] == {"FOO": None, "USDT": "500000"}


def test_the_candidates_follow_a_disputed_edge_along_a_longer_path() -> None:
    # wstETH is priced through ETH/USDT, whose sources disagree: each side values it its way
    quotes = (
        quote("wstETH", "ETH", "1.2"),
        quote("ETH", "USDT", "3000", "a", rank=0),
        quote("USDT", "ETH", "0.0005", "b", rank=1),  # 2000 USDT per ETH, quoted the other way
    )
    snap = snapshot(ok(pos("lido", "wstETH", "10"), pos("lido", "USDT", "1")), quotes=quotes)
    assert snap.equity_candidates == (
        EquityCandidate(("a",), Decimal(36_001)),
        EquityCandidate(("b",), Decimal(24_001)),
    )


def test_no_candidates_when_something_else_is_unknown_too() -> None:
    snap = snapshot(HALF_IN_FOO, down("chain", None), quotes=foo("5", "500"))
    assert (snap.equity, snap.equity_candidates) == (None, ())


# --- perpetuals: their uPnL is a figure of the equity like assets and debt --------------------

A_SHORT_AT_3015 = (*ETH_3000, quote(CONTRACT, "USDT", "3015", source="bybit"))


def test_a_gap_leaves_the_perpetuals_upnl_unknown_too_never_zero() -> None:
    # the short's legs are priced (-150 at its mark), but the chain may hold anything
    snap = snapshot(spot_beside_a_short(mark="3015"), down("chain", None), quotes=A_SHORT_AT_3015)
    assert (snap.equity, snap.unrealized_pnl) == (None, None)
    assert snap.to_json()["unrealized_pnl"] is None
    known = snapshot(spot_beside_a_short(mark="3015"), quotes=A_SHORT_AT_3015)
    assert (known.equity, known.unrealized_pnl) == (Decimal(129_850), Decimal(-150))


def test_the_candidates_of_a_disputed_price_count_the_perpetuals_upnl() -> None:
    # 130,000 held and the short's -150 at its mark, beside 1000 FOO (5 or 500) and 500,000 USDT
    quotes = (*A_SHORT_AT_3015, *foo("5", "500"))
    snap = snapshot(spot_beside_a_short(mark="3015"), HALF_IN_FOO, quotes=quotes)
    assert snap.equity is None
    assert snap.equity_candidates == (
        EquityCandidate(("a",), Decimal(634_850)),
        EquityCandidate(("b",), Decimal(1_129_850)),
    )


def test_a_perpetual_left_out_for_its_contracts_price_names_only_that_price() -> None:
    # the USDT leg has a price; only the contract's is missing, and only it is the reason
    snap = snapshot(spot_beside_a_short(mark="3015"))
    assert snap.unknown_because() == [f"{CONTRACT} has no price"]
