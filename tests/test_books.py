"""End-to-end arithmetic on the specification's two typical books."""

from __future__ import annotations

from decimal import Decimal

import pytest

from equity_daemon.calculator import Limits, calculate
from equity_daemon.example import Book, Market, basis_book, leveraged_staking_book
from equity_daemon.model import PositionKind, Snapshot
from tests.reports import NOW, equity_of


def value(book: Book) -> Snapshot:
    return calculate(
        book=book.name,
        share_class=book.share_class,
        venues=book.venues,
        quotes=book.quotes,
        now=NOW,
        sequence=1,
        limits=Limits(),
    )


@pytest.mark.parametrize("eth_move", ["-0.20", "-0.05", "0.05", "0.20"])
def test_a_delta_neutral_basis_book_holds_its_usdt_equity_when_eth_moves(eth_move: str) -> None:
    before = value(basis_book(Market(), NOW))
    moved = Market(eth_usdt=Market().eth_usdt * (1 + Decimal(eth_move)))
    after = value(basis_book(moved, NOW))
    assert before.complete
    assert after.complete
    change = equity_of(after) - equity_of(before)
    assert abs(change) <= abs(equity_of(before)) * Decimal("0.005")
    # the legs themselves did move: the LST gained what the perp's margin lost
    assert after.equity_by_asset["wstETH"] != before.equity_by_asset["wstETH"]


def test_the_basis_book_reports_its_hedge_and_locked_eth_outside_equity() -> None:
    snap = value(basis_book(Market(eth_usdt=Decimal(3300)), NOW))
    kinds = {line.kind: line for line in snap.excluded}
    hedge = kinds[PositionKind.HEDGE]
    assert (hedge.side, hedge.amount, hedge.value) == ("short", Decimal(-120), Decimal(396000))
    assert hedge.unrealized_pnl == Decimal(-36000)
    assert kinds[PositionKind.LOCKED].value == Decimal(6600)


def test_an_eth_share_class_loop_ignores_the_eth_price() -> None:
    cheap = value(leveraged_staking_book(Market(eth_usdt=Decimal(2000)), NOW))
    dear = value(leveraged_staking_book(Market(eth_usdt=Decimal(5000)), NOW))
    assert cheap.equity == dear.equity == Decimal(1000 * Decimal("1.2") - 900)


def test_an_eth_share_class_loop_moves_with_the_staking_rate_only() -> None:
    before = value(leveraged_staking_book(Market(steth_per_wsteth=Decimal("1.2")), NOW))
    after = value(leveraged_staking_book(Market(steth_per_wsteth=Decimal("1.2001")), NOW))
    assert equity_of(after) - equity_of(before) == Decimal("0.1")  # 1000 wstETH x 0.0001 stETH each
    assert after.share_class == "ETH"
    assert after.total_debt == 900
