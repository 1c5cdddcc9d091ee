"""The shared pieces of the per-exchange mappings: numbers from exchange strings, and a
perpetual's two equity legs, whose value at any price is the uPnL at that price."""

from __future__ import annotations

from decimal import Decimal

import pytest

from equity_daemon.model import PositionKind
from equity_daemon.venues.exchanges import BadField, Lines, Perp, binance, number, okx

D = Decimal


def perp(side: str, **extra: object) -> Perp:
    fields: dict[str, object] = {
        "symbol": "ETH/USDT:USDT",
        "base": "ETH",
        "settle": "USDT",
        "side": side,
        "contracts": D(20),
        "contract_size": D("0.1"),
        "entry_price": D(3000),
        "mark_price": D(3100),
        "unrealized_pnl": D(0),
    }
    return Perp(**(fields | extra))  # type: ignore[arg-type]


def value(legs: tuple[tuple[str, Decimal], ...], prices: dict[str, Decimal]) -> Decimal:
    return sum((amount * prices[asset] for asset, amount in legs), D(0))


@pytest.mark.parametrize("price", [D(2500), D(3000), D("3333.33")])
@pytest.mark.parametrize(("side", "sign"), [("long", 1), ("short", -1)])
def test_linear_legs_are_worth_the_upnl_at_any_price(price: Decimal, side: str, sign: int) -> None:
    legs = perp(side).legs()
    assert legs == (("ETH", sign * D(2)), ("USDT", -sign * D(6000)))
    assert value(legs, {"ETH": price, "USDT": D(1)}) == sign * 2 * (price - 3000)


@pytest.mark.parametrize("price", [D(40000), D(50000), D(62500)])
@pytest.mark.parametrize(("side", "sign"), [("long", 1), ("short", -1)])
def test_inverse_legs_are_worth_the_upnl_at_any_price(price: Decimal, side: str, sign: int) -> None:
    # 100 contracts of 100 USD on BTC, entered at 50,000: the uPnL is in BTC
    inverse = perp(
        side,
        symbol="BTC/USD:BTC",
        base="BTC",
        settle="BTC",
        contracts=D(100),
        contract_size=D(100),
        entry_price=D(50000),
        mark_price=price,
        inverse=True,
    )
    legs = inverse.legs()
    upnl_btc = sign * D(10000) * (1 / D(50000) - 1 / price)
    assert value(legs, {"BTC": price, "USD": D(1)}) == pytest.approx(upnl_btc * price)
    assert inverse.base_size == sign * D(10000) / price
    assert inverse.details()["pnl_currency"] == "BTC"
    assert inverse.notional == 10000


def test_a_perp_is_one_hedge_line_and_two_asset_legs_under_one_line_id() -> None:
    lines = Lines("cex", "usdm")
    lines.perp(perp("short", position_side="SHORT"))
    lines.perp(perp("long", contracts=D(0)))  # closed: nothing
    kinds = [(p.kind, p.asset.symbol, p.amount, p.line_id) for p in lines.positions]
    assert kinds == [
        (PositionKind.HEDGE, "ETH", D(-2), "ETH/USDT:USDT:SHORT"),
        (PositionKind.ASSET, "ETH", D(-2), "ETH/USDT:USDT:SHORT"),
        (PositionKind.ASSET, "USDT", D(6000), "ETH/USDT:USDT:SHORT"),
    ]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({}, "no free"),
        ({"free": ""}, "no free"),
        ({"free": "abc"}, "free is not a number"),
        ({"free": "NaN"}, "free is NaN"),
        ({"free": 1.5}, "free is not a decimal string"),
        ({"free": True}, "free is not a decimal string"),
        ([], "expected an object holding free"),
    ],
)
def test_a_field_that_is_not_a_decimal_string_is_bad(row: object, problem: str) -> None:
    with pytest.raises(BadField, match=problem):
        number(row, "free")


def test_numbers_are_exact_and_empty_may_default() -> None:
    assert number({"free": "0.1"}, "free") == D("0.1")
    assert number({"free": ""}, "free", default=D(0)) == 0
    lines = Lines("cex", "spot")
    with pytest.raises(BadField, match="negative"):
        lines.debt("USDT", D(-1))


def test_binance_funding_counts_frozen_coins_and_leaves_withdrawing_ones_to_the_history() -> None:
    lines = Lines("cex", "funding")
    row = {"asset": "USDT", "free": "10", "locked": "1", "freeze": "2", "withdrawing": "5"}
    binance.balance(lines, "funding", [row])
    found = {(p.kind, p.amount, p.line_id) for p in lines.positions}
    # the withdrawal history lists the 5 under way: counted there, once (docs/exchanges.md)
    assert found == {(PositionKind.ASSET, D(13), None)}


@pytest.mark.parametrize(
    ("um", "negative", "debt"),
    [
        ("0", "50", D(50)),  # the wallets show nothing below zero: the negative balance is debt
        ("-50", "50", None),  # the negative UM wallet is that balance: never subtracted twice
        ("-30", "50", D(20)),  # only what the wallet does not show
    ],
)
def test_binance_portfolio_margin_negative_balance_is_debt_once(
    um: str, negative: str, debt: Decimal | None
) -> None:
    lines = Lines("cex", "portfolio_margin")
    row = {
        "asset": "USDT",
        "crossMarginAsset": "100",
        "umWalletBalance": um,
        "cmWalletBalance": "0",
        "negativeBalance": negative,
    }
    binance.balance(lines, "portfolio_margin", [row])
    found = {(p.kind, p.line_id): p.amount for p in lines.positions}
    assert found.get((PositionKind.DEBT, "negative")) == debt
    net = sum(
        (p.amount if p.kind is PositionKind.ASSET else -p.amount for p in lines.positions), D(0)
    )
    assert net == 100 + D(um) - (debt or 0)


def test_an_okx_option_position_is_not_valued_but_fails_with_its_reason() -> None:
    row = {"instType": "OPTION", "instId": "BTC-USD-261225-60000-C", "pos": "1"}
    market = {"symbol": "BTC/USD:BTC-261225-60000-C", "base": "BTC", "settle": "BTC"}
    with pytest.raises(BadField, match="OPTION position, which is not valued"):
        okx.position(Lines("cex", "trading"), row, market, {"data": [{"acctLv": "3"}]})
