"""Built-in edges: WETH is ETH and an Aave token is its underlying, with no edge written."""

from __future__ import annotations

from decimal import Decimal

import pytest

from equity_daemon.builtin_edges import builtin_edges, same_as
from equity_daemon.model import PositionKind, ShareClass
from equity_daemon.prices import QuoteFailure
from tests.reports import equity_of, ok, pos, quote, snapshot

ETH_BOOK = (
    quote("wstETH", "stETH", "1.2", "lido"),
    quote("stETH", "ETH", "1", "chainlink"),
)


@pytest.mark.parametrize(
    ("symbol", "underlying"),
    [
        ("WETH", "ETH"),
        ("aEthUSDT", "USDT"),
        ("aEthwstETH", "wstETH"),
        ("aEthLidoWETH", "WETH"),
        ("aEthEtherFiweETH", "weETH"),
        ("variableDebtEthWETH", "WETH"),
        ("variableDebtEthLidoWETH", "WETH"),
        ("ETH", None),
        ("aETHc", None),  # Ankr's staked ETH: no Aave token
        ("stETH", None),
        ("bybit:ETH/USDT:USDT", None),
    ],
)
def test_which_symbols_are_another_asset_by_construction(
    symbol: str, underlying: str | None
) -> None:
    assert same_as(symbol) == underlying


def test_an_aave_weth_token_needs_two_builtin_hops_to_eth() -> None:
    assert builtin_edges(["aEthLidoWETH", "USDT"]) == [("WETH", "ETH"), ("aEthLidoWETH", "WETH")]
    assert builtin_edges(["aEthLidoWETH"], configured=["ETH/WETH"]) == [("aEthLidoWETH", "WETH")]


def test_a_leveraged_staking_book_is_valued_with_no_weth_or_aave_edge_written() -> None:
    snap = snapshot(
        ok(
            pos("wallet", "aEthwstETH", "100"),
            pos("wallet", "variableDebtEthWETH", "80", PositionKind.DEBT),
            pos("wallet", "WETH", "3"),
        ),
        quotes=ETH_BOOK,
        share_class=ShareClass.ETH,
    )
    assert snap.complete, snap.problems
    assert equity_of(snap) == Decimal(120 - 80 + 3)
    weth = next(price for price in snap.prices if price.asset == "WETH")
    assert (weth.price, weth.sources) == (Decimal(1), ("built-in",))


def test_the_book_s_own_edge_for_the_pair_replaces_the_builtin_one() -> None:
    weth_at_a_discount = quote("WETH", "ETH", "0.99", "curve")
    snap = snapshot(
        ok(pos("wallet", "WETH", "100")),
        quotes=(weth_at_a_discount,),
        share_class=ShareClass.ETH,
    )
    assert equity_of(snap) == Decimal(99)
    assert not snap.suspect_edges  # no second source for the edge to disagree with
    assert [p.sources for p in snap.prices if p.asset == "WETH"] == [("curve",)]


def test_a_configured_edge_that_failed_is_not_papered_over_by_the_builtin_one() -> None:
    snap = snapshot(
        ok(pos("wallet", "WETH", "100")),
        quotes=(),
        share_class=ShareClass.ETH,
        quote_failures=(QuoteFailure("WETH/ETH", "curve", "timeout"),),
    )
    assert not snap.complete
    assert [(p.kind, p.subject) for p in snap.problems] == [("unpriced", "WETH")]
