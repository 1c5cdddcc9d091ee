"""The conversion graph: paths, inversion, fallbacks, staleness and cross-source checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from equity_daemon.prices import QuoteFailure, resolve
from tests.reports import NOW, quote

q = quote


def test_lst_is_valued_through_its_protocol_rate_and_underlying() -> None:
    table = resolve(
        [q("ETH", "USDT", "3000"), q("wstETH", "stETH", "1.2", "lido"), q("stETH", "ETH", "1")],
        "USDT",
        NOW,
        Decimal(50),
    )
    wsteth = table.prices["wstETH"]
    assert wsteth.price == Decimal(3600)
    assert wsteth.path == ("wstETH", "stETH", "ETH", "USDT")
    assert wsteth.sources == ("lido", "binance", "binance")


def test_an_edge_is_walked_backwards_for_the_other_share_class() -> None:
    table = resolve([q("ETH", "USDT", "4000")], "ETH", NOW, Decimal(50))
    assert table.prices["USDT"].price == Decimal("0.00025")
    assert table.prices["ETH"].price == 1


def test_the_fewest_hops_win_over_a_longer_fresher_path() -> None:
    quotes = [
        q("weETH", "USDT", "3100", "okx", age=timedelta(minutes=4)),
        q("weETH", "eETH", "1.05", "etherfi"),
        q("eETH", "ETH", "1", "feed"),
        q("ETH", "USDT", "3000"),
    ]
    weeth = resolve(quotes, "USDT", NOW, Decimal(50)).prices["weETH"]
    assert weeth.path == ("weETH", "USDT")
    assert weeth.price == Decimal(3100)


def test_among_equally_short_paths_the_freshest_wins_and_the_choice_is_deterministic() -> None:
    quotes = [
        q("X", "A", "2", age=timedelta(minutes=3)),
        q("A", "USDT", "10"),
        q("X", "B", "5"),
        q("B", "USDT", "4", age=timedelta(minutes=1)),
    ]
    first = resolve(quotes, "USDT", NOW, Decimal(50)).prices["X"]
    assert first.path == ("X", "B", "USDT")
    assert resolve(reversed(quotes), "USDT", NOW, Decimal(50)).prices["X"] == first


def test_equal_freshness_breaks_ties_by_name_not_by_input_order() -> None:
    quotes = [q("X", "B", "5"), q("B", "USDT", "4"), q("X", "A", "2"), q("A", "USDT", "10")]
    assert resolve(quotes, "USDT", NOW, Decimal(50)).prices["X"].path == ("X", "A", "USDT")


def test_a_stale_preferred_source_falls_back_to_the_next() -> None:
    quotes = [
        q("ETH", "USDT", "3000", "binance", age=timedelta(minutes=6), rank=0),
        q("ETH", "USDT", "3001", "bybit", rank=1),
    ]
    table = resolve(quotes, "USDT", NOW, Decimal(50))
    assert table.prices["ETH"].sources == ("bybit",)
    assert [stale.source for stale in table.stale] == ["binance"]


def test_only_stale_quotes_leave_the_asset_unpriced() -> None:
    table = resolve([q("ETH", "USDT", "3000", age=timedelta(hours=1))], "USDT", NOW, Decimal(50))
    assert "ETH" not in table.prices


@pytest.mark.parametrize("rate", ["0", "-3000"])
def test_a_non_positive_rate_is_never_used(rate: str) -> None:
    assert "ETH" not in resolve([q("ETH", "USDT", rate)], "USDT", NOW, Decimal(50)).prices


def test_sources_that_disagree_beyond_the_limit_make_the_price_suspect() -> None:
    quotes = [q("ETH", "USDT", "3000", "binance", rank=0), q("ETH", "USDT", "3030", "okx", rank=1)]
    table = resolve(quotes, "USDT", NOW, Decimal(50))
    price = table.prices["ETH"]
    assert price.suspect
    assert price.price == Decimal(3000)
    assert "binance 3000 vs okx 3030 (100.0 bps)" in table.disagreements_on(price)[0].describe()


def test_an_edge_of_fallbacks_only_is_never_suspect() -> None:
    # a contract's mark now, and the older mark its position's answer carried: not a cross-check
    live = replace(q("C", "USDT", "3000", "bybit", rank=0), cross_check=False)
    kept = replace(q("C", "USDT", "3100", "bybit position", rank=1), cross_check=False)
    table = resolve([live, kept], "USDT", NOW, Decimal(50))
    assert not table.prices["C"].suspect
    assert table.prices["C"].price == 3000
    alone = resolve([kept], "USDT", NOW, Decimal(50)).prices["C"]
    assert (alone.price, alone.fallback) == (Decimal(3100), True)


def test_sources_within_the_limit_are_not_suspect_even_when_quoted_inverted() -> None:
    quotes = [q("ETH", "USDT", "3000", rank=0), q("USDT", "ETH", "0.000333", "chainlink", rank=1)]
    assert not resolve(quotes, "USDT", NOW, Decimal(50)).prices["ETH"].suspect


def test_suspicion_follows_every_path_through_the_edge() -> None:
    quotes = [
        q("ETH", "USDT", "3000", rank=0),
        q("ETH", "USDT", "2000", "okx", rank=1),
        q("stETH", "ETH", "1", "feed"),
    ]
    assert resolve(quotes, "USDT", NOW, Decimal(50)).prices["stETH"].suspect


def test_the_oldest_quote_on_the_path_dates_the_price() -> None:
    quotes = [
        q("ETH", "USDT", "3000", age=timedelta(seconds=10)),
        q("stETH", "ETH", "1", age=timedelta(minutes=2)),
    ]
    assert resolve(quotes, "USDT", NOW, Decimal(50)).prices["stETH"].as_of == NOW - timedelta(
        minutes=2
    )


def test_an_unconnected_asset_has_no_price() -> None:
    assert "PEPE" not in resolve([q("PEPE", "DOGE", "1")], "USDT", NOW, Decimal(50)).prices


def test_a_clean_path_is_preferred_over_a_suspect_one_of_equal_length() -> None:
    quotes = [
        q("X", "A", "2"),
        q("A", "USDT", "10", rank=0),
        q("A", "USDT", "11", "okx", rank=1),  # A/USDT is suspect, and its path is the fresher
        q("X", "B", "5", age=timedelta(minutes=1)),
        q("B", "USDT", "4", age=timedelta(minutes=1)),
    ]
    x = resolve(quotes, "USDT", NOW, Decimal(50)).prices["X"]
    assert (x.path, x.price, x.suspect) == (("X", "B", "USDT"), Decimal(20), False)


def test_fewer_hops_still_win_over_a_clean_longer_path() -> None:
    quotes = [
        q("X", "USDT", "20", rank=0),
        q("X", "USDT", "30", "okx", rank=1),
        q("X", "B", "5"),
        q("B", "USDT", "4"),
    ]
    x = resolve(quotes, "USDT", NOW, Decimal(50)).prices["X"]
    assert (x.path, x.suspect) == (("X", "USDT"), True)


def eth_at(bps: int, previously_suspect: frozenset[str] = frozenset()) -> bool:
    """Whether ETH is suspect when a second source quotes `bps` basis points above the first."""
    other = Decimal(3000) * (1 + Decimal(bps) / 10_000)
    quotes = [q("ETH", "USDT", "3000", rank=0), q("ETH", "USDT", other, "okx", rank=1)]
    table = resolve(quotes, "USDT", NOW, Decimal(50), previously_suspect=previously_suspect)
    assert set(table.disagreements) <= {"ETH/USDT"}
    return table.prices["ETH"].suspect


@pytest.mark.parametrize(
    ("bps", "was_suspect", "suspect"),
    [
        (45, False, False),
        (50, False, False),
        (55, False, True),
        (55, True, True),
        (45, True, True),  # still above the exit level, 80 % of the limit
        (40, True, True),
        (39, True, False),
    ],
)
def test_a_suspect_edge_stays_suspect_until_its_deviation_falls_below_the_exit_level(
    bps: int, was_suspect: bool, suspect: bool
) -> None:
    before = frozenset({"ETH/USDT"}) if was_suspect else frozenset()
    assert eth_at(bps, before) is suspect


def test_quote_failures_are_named_in_the_table_and_a_non_positive_rate_is_one() -> None:
    given = [QuoteFailure("ETH/USDT", "binance", "timeout")]
    quotes = [q("ETH", "USDT", "0", "okx", rank=1), q("ETH", "USDT", "3000", "bybit", rank=2)]
    table = resolve(quotes, "USDT", NOW, Decimal(50), quote_failures=given)
    assert table.failures == (
        QuoteFailure("ETH/USDT", "binance", "timeout"),
        QuoteFailure("ETH/USDT", "okx", "rate <= 0"),
    )
    assert table.prices["ETH"].price == 3000  # a fallback covers the failures


def test_a_nan_rate_is_refused_as_a_failure_not_raised() -> None:
    table = resolve([q("ETH", "USDT", "NaN")], "USDT", NOW, Decimal(50))
    assert "ETH" not in table.prices
    assert table.failures == (QuoteFailure("ETH/USDT", "binance", "rate is not finite"),)


def test_a_price_through_a_fallback_source_is_marked_fallback() -> None:
    quotes = [
        q("ETH", "USDT", "3000", "binance", age=timedelta(minutes=6), rank=0),
        q("ETH", "USDT", "3001", "bybit", rank=1),
        q("stETH", "ETH", "1", "chainlink"),
    ]
    prices = resolve(quotes, "USDT", NOW, Decimal(50)).prices
    assert (prices["ETH"].fallback, prices["stETH"].fallback, prices["USDT"].fallback) == (
        True,
        True,
        False,
    )
    preferred = resolve([q("ETH", "USDT", "3000", rank=0)], "USDT", NOW, Decimal(50))
    assert not preferred.prices["ETH"].fallback
