"""The calculator: equity = assets - debt, in the share class, with every gap named."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from equity_daemon.calculator import Limits
from equity_daemon.model import PositionKind, PriceUsed, ProblemKind, VenueReport, VenueState
from equity_daemon.prices import QuoteFailure
from equity_daemon.venues.exchanges import Lines
from tests.reports import ETH_3000, NOW, failed, known, ok, pos, quote, snapshot
from tests.venues.test_exchange_mappings import perp

DEBT = PositionKind.DEBT


def test_equity_is_assets_minus_debt_with_breakdowns() -> None:
    snap = snapshot(
        ok(pos("aave", "ETH", "10"), pos("aave", "ETH", "4", DEBT)),
        ok(pos("binance", "USDT", "5000")),
    )
    assert (snap.total_assets, snap.total_debt, snap.equity) == tuple(
        map(Decimal, (35000, 12000, 23000))
    )
    assert snap.equity_by_venue == {"aave": Decimal(18000), "binance": Decimal(5000)}
    assert snap.equity_by_asset == {"ETH": Decimal(18000), "USDT": Decimal(5000)}
    assert snap.complete


def test_a_debt_line_subtracts_its_size_whatever_sign_the_venue_used() -> None:
    snap = snapshot(ok(pos("aave", "USDT", "100"), pos("aave", "USDT", "-40", DEBT)))
    assert snap.equity == 60


def test_negative_equity_is_reported_as_it_is() -> None:
    snap = snapshot(ok(pos("aave", "USDT", "100"), pos("aave", "ETH", "1", DEBT)))
    assert snap.equity == -2900
    assert snap.complete


def test_empty_book_is_complete_with_zero_equity() -> None:
    snap = snapshot(ok(venue="binance"))
    assert snap.equity == 0
    assert snap.complete


def test_excluded_lines_are_reported_but_not_counted() -> None:
    snap = snapshot(
        ok(
            pos("etherfi", "ETH", "2", PositionKind.LOCKED),
            pos("etherfi", "USDT", "700", PositionKind.IN_TRANSIT),
            pos("etherfi", "USDT", "1"),
        )
    )
    assert snap.equity == 1
    assert [(x.kind, x.value) for x in snap.excluded] == [
        (PositionKind.LOCKED, Decimal(6000)),
        (PositionKind.IN_TRANSIT, Decimal(700)),
    ]


def test_hedge_exposure_has_side_size_notional_and_pnl_in_share_class() -> None:
    snap = snapshot(
        ok(
            pos(
                "okx",
                "ETH",
                "-5",
                PositionKind.HEDGE,
                unrealized_pnl="0.1",
                pnl_currency="ETH",
            ),
        )
    )
    (hedge,) = snap.excluded
    assert (hedge.side, hedge.amount, hedge.value, hedge.unrealized_pnl) == (
        "short",
        Decimal(-5),
        Decimal(15000),
        Decimal(300),
    )
    assert snap.equity == 0


def test_hedge_without_usable_pnl_keeps_the_rest() -> None:
    snap = snapshot(
        ok(
            pos("okx", "ETH", "1", PositionKind.HEDGE, unrealized_pnl="n/a", pnl_currency="ETH"),
            pos("okx", "ETH", "1", PositionKind.HEDGE, unrealized_pnl="1", pnl_currency="XYZ"),
            pos("okx", "ETH", "1", PositionKind.HEDGE),
        )
    )
    assert [(h.side, h.unrealized_pnl) for h in snap.excluded] == [("long", None)] * 3
    assert snap.complete


def test_an_unpriced_excluded_line_has_no_value_and_does_not_block_equity() -> None:
    snap = snapshot(
        ok(pos("etherfi", "eETH", "3", PositionKind.LOCKED), pos("etherfi", "ETH", "1"))
    )
    assert snap.excluded[0].value is None
    assert snap.complete
    assert snap.equity == 3000


def test_prices_used_are_listed_with_path_source_and_age() -> None:
    snap = snapshot(ok(pos("lido", "ETH", "1")))
    doc = snap.to_json()
    assert doc["prices"] == [
        {
            "asset": "ETH",
            "price": "3000",
            "path": ["ETH", "USDT"],
            "sources": ["binance"],
            "as_of": NOW.isoformat(),
            "age_seconds": 0.0,
            "suspect": False,
            "fallback": False,
            "stale": False,
        }
    ]


def test_snapshot_json_has_every_money_value_as_a_decimal_string() -> None:
    good = ok(pos("okx", "USDT", "1"), age=timedelta(minutes=10))
    snap = snapshot(
        ok(pos("aave", "ETH", "1.000000000000000001"), pos("aave", "USDT", "0.5", DEBT)),
        failed(good, "okx", "timeout"),
    )
    doc = json.loads(json.dumps(snap.to_json()))
    assert doc["equity"] == "3000.500000000000003"
    assert doc["total_assets"] == "3001.000000000000003"
    assert doc["equity_by_venue"] == {"aave": "2999.500000000000003", "okx": "1"}
    assert doc["complete"] is False
    assert doc["problems"][0]["kind"] == "failed_venue"
    assert doc["at"] == "2026-11-25T12:00:00+00:00"


def test_a_failing_venue_within_its_max_age_keeps_the_book_complete() -> None:
    good = ok(pos("binance", "USDT", "100"), age=timedelta(seconds=30))
    snap = snapshot(failed(good, "binance", "RequestTimeout"))
    assert snap.complete
    assert snap.equity == 100
    assert snap.venues[0].status == "failing"
    assert snap.venues[0].error == "RequestTimeout"


def test_a_failed_venue_past_its_max_age_is_named_with_reason_and_age() -> None:
    good = ok(pos("binance", "USDT", "100"), age=timedelta(minutes=10))
    snap = snapshot(failed(good, "binance", "AuthenticationError"))
    assert not snap.complete
    (problem,) = snap.problems
    assert problem.kind is ProblemKind.FAILED_VENUE
    assert problem.subject == "binance"
    assert problem.detail == "AuthenticationError (last good 10m ago)"
    assert problem.age == timedelta(minutes=10)
    assert snap.equity == 100  # the last good report is still shown
    assert snap.venues[0].age == timedelta(minutes=10)


def test_a_venue_that_never_answered_is_failed() -> None:
    snap = snapshot(failed(None, "okx", "connection refused"))
    assert snap.problems[0].detail == "connection refused (never succeeded)"
    assert snap.venues[0].fetched_at is None


def test_a_venue_whose_reports_stopped_arriving_is_stale() -> None:
    snap = snapshot(ok(pos("binance", "USDT", "1"), age=timedelta(hours=3)))
    assert [(p.kind, p.detail) for p in snap.problems] == [
        (ProblemKind.STALE_VENUE, "last report is 3h old")
    ]


def test_max_age_can_differ_per_venue() -> None:
    limits = Limits(venue_max_age=timedelta(minutes=5), venue_max_ages={"aave": timedelta(hours=1)})
    snap = snapshot(ok(pos("aave", "USDT", "1"), age=timedelta(minutes=30)), limits=limits)
    assert snap.complete


def test_an_unpriced_asset_names_itself_and_the_stale_quote() -> None:
    old = quote("ETH", "USDT", "3000", age=timedelta(minutes=90))
    snap = snapshot(ok(pos("lido", "ETH", "1"), pos("lido", "USDT", "5")), quotes=(old,))
    (problem,) = snap.problems
    assert problem.kind is ProblemKind.UNPRICED
    assert problem.subject == "ETH"
    assert problem.detail == (
        "no fresh price path to USDT (held on lido); no last good price; "
        "stale quotes: ETH/USDT from binance is 90m old"
    )
    assert snap.equity is None  # unknown: never the 5 that could be valued


def test_a_suspect_price_in_equity_makes_the_snapshot_incomplete() -> None:
    quotes = (*ETH_3000, quote("ETH", "USDT", "3100", "okx", rank=1))
    snap = snapshot(ok(pos("lido", "ETH", "1")), quotes=quotes)
    assert [p.kind for p in snap.problems] == [ProblemKind.SUSPECT_PRICE]
    assert "binance 3000 vs okx 3100" in snap.problems[0].detail


def test_a_suspect_price_used_only_by_a_hedge_does_not_block_equity() -> None:
    quotes = (*ETH_3000, quote("ETH", "USDT", "3300", "okx", rank=1))
    hedge = pos("okx", "ETH", "-1", PositionKind.HEDGE)
    snap = snapshot(ok(hedge, pos("okx", "USDT", "9")), quotes=quotes)
    assert snap.complete


def test_problems_are_listed_in_a_stable_order() -> None:
    snap = snapshot(
        failed(None, "okx", "down"),
        failed(None, "bybit", "down"),
        ok(pos("lido", "ZZZ", "1"), pos("lido", "AAA", "1")),
    )
    assert [(p.kind.value, p.subject) for p in snap.problems] == [
        ("failed_venue", "bybit"),
        ("failed_venue", "okx"),
        ("unpriced", "AAA"),
        ("unpriced", "ZZZ"),
    ]


def test_the_age_of_a_venues_data_is_its_own_timestamp_where_it_gives_one() -> None:
    block_time = NOW - timedelta(minutes=6)  # fetched just now, but the block is old
    report = VenueReport("chain", NOW, (pos("chain", "USDT", "5"),), as_of=block_time)
    snap = snapshot(VenueState(report, report))
    (venue,) = snap.venues
    assert venue.age == timedelta(minutes=6)
    assert [(p.kind.value, p.subject) for p in snap.problems] == [("stale_venue", "chain")]


def last_good(symbol: str, price: str, age: timedelta, *path: str) -> dict[str, PriceUsed]:
    """A tracker's memory: `symbol` was last valued at `price` over `path`, `age` ago."""
    return {symbol: PriceUsed(symbol, Decimal(price), path, ("binance",), NOW - age)}


def test_unpriced_asset_is_valued_at_last_good_price_and_named_stale() -> None:
    book = ok(pos("binance", "ETH", "100"), pos("binance", "USDT", "500000"))
    remembered = last_good("ETH", "5000", timedelta(minutes=12), "ETH", "USDT")
    snap = snapshot(book, quotes=(), last_good_prices=remembered)  # the ETH quote disappeared
    assert (snap.equity, snap.total_assets) == (Decimal(1_000_000), Decimal(1_000_000))
    assert snap.equity_by_asset["ETH"] == Decimal(500_000)
    assert not snap.complete
    assert not snap.equity_is_partial
    (problem,) = snap.problems
    assert (problem.kind, problem.subject, problem.age) == (
        ProblemKind.STALE_PRICE,
        "ETH",
        timedelta(minutes=12),
    )
    assert problem.detail == (
        "no fresh price path to USDT; valued at its last good price 5000 via ETH > USDT "
        "(binance), 12m old"
    )
    eth = next(p for p in snap.to_json()["prices"] if p["asset"] == "ETH")
    assert (eth["stale"], eth["age_seconds"], eth["price"]) == (True, 720.0, "5000")


def test_a_fresh_price_wins_over_the_last_good_one() -> None:
    snap = snapshot(ok(pos("lido", "ETH", "1")))
    last = last_good("ETH", "5000", timedelta(minutes=1), "ETH", "USDT")
    remembered = snapshot(ok(pos("lido", "ETH", "1")), last_good_prices=last)
    assert remembered == snap


def test_an_excluded_line_is_not_valued_at_a_stale_price() -> None:
    last = last_good("ETH", "5000", timedelta(minutes=1), "ETH", "USDT")
    snap = snapshot(
        ok(pos("etherfi", "ETH", "2", PositionKind.LOCKED)), quotes=(), last_good_prices=last
    )
    assert snap.excluded[0].value is None
    assert snap.complete


def test_an_asset_never_priced_leaves_equity_partial_and_lists_the_unvalued_lines() -> None:
    snap = snapshot(
        ok(pos("aave", "GHO", "500000", account="pool"), pos("aave", "USDT", "500000")),
        ok(pos("okx", "GHO", "-3")),
    )
    assert snap.equity_is_partial
    assert not snap.complete
    doc = snap.to_json()
    assert (doc["equity_is_partial"], doc["equity"], doc["total_assets"], doc["total_debt"]) == (
        True,
        None,
        None,
        None,
    )
    assert doc["equity_unknown_because"] == ["GHO has no price"]
    # what the gap reaches is unknown; what it cannot reach stays exact
    assert doc["equity_by_venue"] == {"aave": None, "okx": None}
    assert doc["equity_by_asset"] == {"GHO": None, "USDT": "500000"}
    assert doc["equity_by_account"] == {
        "aave": {"main": "500000", "pool": None},
        "okx": {"main": None},
    }
    assert doc["unvalued"] == [
        {"venue": "aave", "account": "pool", "asset": "GHO", "kind": "asset", "amount": "500000"},
        {"venue": "okx", "account": "main", "asset": "GHO", "kind": "asset", "amount": "-3"},
    ]
    assert [(p.kind, p.subject) for p in snap.problems] == [(ProblemKind.UNPRICED, "GHO")]
    assert snap.problems[0].detail.endswith("(held on aave, okx); no last good price")


def test_a_fully_valued_snapshot_says_its_equity_is_not_partial() -> None:
    doc = snapshot(ok(pos("lido", "ETH", "1"))).to_json()
    assert (doc["equity_is_partial"], doc["unvalued"], doc["ignored"]) == (False, [], [])
    assert (doc["quote_failures"], doc["suspect_edges"]) == ([], [])


def test_a_zero_line_without_a_price_is_skipped_and_never_a_problem() -> None:
    zeros = [pos("binance", symbol, "0") for symbol in ("PEPE", "DOGE", "SHIB")]
    snap = snapshot(ok(*zeros, pos("binance", "GHO", "0", DEBT), pos("binance", "USDT", "7")))
    assert snap.complete
    assert not snap.equity_is_partial
    assert snap.equity == 7
    assert [p.asset for p in snap.prices] == ["USDT"]
    assert "PEPE" not in json.dumps(snap.to_json())


def test_a_zero_line_with_a_suspect_or_stale_price_never_makes_the_book_incomplete() -> None:
    disagreeing = (*ETH_3000, quote("ETH", "USDT", "3300", "okx", rank=1))
    assert snapshot(
        ok(pos("okx", "ETH", "0"), pos("okx", "USDT", "1")), quotes=disagreeing
    ).complete
    last = last_good("WBTC", "90000", timedelta(hours=5), "WBTC", "USDT")
    remembered = snapshot(
        ok(pos("okx", "WBTC", "0"), pos("okx", "USDT", "1")), last_good_prices=last
    )
    assert remembered.complete


def test_ignored_assets_are_listed_with_amounts_never_in_equity_nor_a_problem() -> None:
    limits = Limits(ignore_assets=("AIRDROP", "ETH"))
    snap = snapshot(
        ok(
            pos("binance", "AIRDROP", "1000000"),  # no price: not a problem when ignored
            pos("binance", "ETH", "0.0001", account="spot"),  # priced dust: not in equity either
            pos("binance", "ETH", "1", PositionKind.LOCKED, account="earn"),
            pos("binance", "USDT", "10"),
        ),
        limits=limits,
    )
    assert snap.complete
    assert (snap.equity, snap.equity_by_asset, snap.excluded) == (
        Decimal(10),
        {"USDT": Decimal(10)},
        (),
    )
    assert snap.to_json()["ignored"] == [
        {"venue": "binance", "account": "main", "asset": "AIRDROP", "kind": "asset",
         "amount": "1000000"},
        {"venue": "binance", "account": "spot", "asset": "ETH", "kind": "asset",
         "amount": "0.0001"},
        {"venue": "binance", "account": "earn", "asset": "ETH", "kind": "locked", "amount": "1"},
    ]  # fmt: skip


def test_quote_failures_are_named_in_the_snapshot_without_making_it_incomplete() -> None:
    failures = [QuoteFailure("ETH/USDT", "okx", "timeout")]
    quotes = (quote("ETH", "USDT", "-1", "bybit", rank=1), *ETH_3000)
    snap = snapshot(ok(pos("lido", "ETH", "1")), quotes=quotes, quote_failures=failures)
    assert snap.complete
    assert snap.to_json()["quote_failures"] == [
        {"edge": "ETH/USDT", "source": "bybit", "reason": "rate <= 0"},
        {"edge": "ETH/USDT", "source": "okx", "reason": "timeout"},
    ]


def test_a_price_reached_through_a_fallback_is_flagged_in_the_snapshot() -> None:
    quotes = (
        quote("ETH", "USDT", "3000", "binance", age=timedelta(minutes=9), rank=0),
        quote("ETH", "USDT", "3001", "bybit", rank=1),
    )
    snap = snapshot(ok(pos("lido", "ETH", "1")), quotes=quotes)
    assert snap.complete
    (price,) = snap.to_json()["prices"]
    assert (price["sources"], price["fallback"]) == (["bybit"], True)


def test_the_snapshot_names_its_suspect_edges() -> None:
    quotes = (*ETH_3000, quote("USDT", "ETH", "0.0003", "okx", rank=1))
    snap = snapshot(ok(pos("okx", "USDT", "1")), quotes=quotes)
    assert snap.suspect_edges == ("ETH/USDT",)
    assert snap.complete  # the edge prices nothing the book holds in equity


def test_a_value_too_large_to_round_to_the_quantum_is_kept_not_raised() -> None:
    snap = snapshot(ok(pos("binance", "USDT", "1e40"), pos("binance", "USDT", "0.5")))
    assert snap.equity == Decimal("10000000000000000000000000000000000000000.5")
    assert snap.complete


def spot_beside_a_short(*, mark: str | None) -> VenueState:
    """100,000 USDT of margin and 10 ETH spot, hedged by a 10 ETH short entered at 3,000, as the
    exchange venue builds it (`Lines.perp`)."""
    lines = Lines("bybit", "unified", "bybit")
    lines.asset("USDT", Decimal(100_000))
    lines.asset("ETH", Decimal(10))
    mark_price = None if mark is None else Decimal(mark)
    lines.perp(
        perp("short", contracts=Decimal(10), contract_size=Decimal(1), mark_price=mark_price)
    )
    return ok(*lines.positions)


CONTRACT = "bybit:ETH/USDT:USDT"


def test_a_perpetuals_legs_are_its_own_upnl_figure_never_assets_or_debt() -> None:
    # nothing is borrowed: assets are what is held (130,000), debt is 0 — not 160,000 and 30,000
    quotes = (*ETH_3000, quote(CONTRACT, "USDT", "3015", source="bybit"))
    snap = snapshot(spot_beside_a_short(mark="3015"), quotes=quotes)
    assert (snap.total_assets, snap.total_debt) == (Decimal(130_000), Decimal(0))
    assert snap.unrealized_pnl == -150  # the short at its own mark, 3,015, not spot's 3,000
    assets, debt, pnl = known([snap.total_assets, snap.total_debt, snap.unrealized_pnl])
    assert snap.equity == assets - debt + pnl
    assert snap.equity_by_asset == {
        CONTRACT: Decimal(-150),  # both legs, under the contract
        "ETH": Decimal(30_000),
        "USDT": Decimal(100_000),
    }
    (hedge,) = snap.excluded
    assert hedge.unrealized_pnl == -150  # the figure in equity
    doc = snap.to_json()
    assert (doc["total_assets"], doc["total_debt"], doc["unrealized_pnl"]) == (
        "130000",
        "0",
        "-150",
    )


def test_a_perpetual_whose_contract_has_no_price_leaves_both_legs_out() -> None:
    # one leg alone is the notional (+30,000 USDT), never the uPnL; without the short's uPnL
    # the equity is unknown, never the 130,000 held
    snap = snapshot(spot_beside_a_short(mark="3015"))
    assert (snap.equity, snap.unrealized_pnl) == (None, None)
    assert snap.equity_is_partial
    # only what the legs are shown under is unknown: the USDT and ETH held stay known
    assert snap.equity_by_asset == {
        CONTRACT: None,
        "ETH": Decimal(30_000),
        "USDT": Decimal(100_000),
    }
    assert {(line.asset, line.kind) for line in snap.unvalued} == {
        (CONTRACT, PositionKind.UNREALIZED_PNL),
        ("USDT", PositionKind.UNREALIZED_PNL),
    }
    assert [(p.kind, p.subject) for p in snap.problems] == [(ProblemKind.UNPRICED, CONTRACT)]
