"""The conversion graph: paths, inversion, fallbacks, staleness and cross-source checks."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from equity_daemon.prices import resolve
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
