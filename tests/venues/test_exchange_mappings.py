"""The shared pieces of the per-exchange mappings: numbers from exchange strings, and a
perpetual's two uPnL legs, whose value at any mark of the contract is the uPnL at that mark."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from equity_daemon.model import PositionKind
from equity_daemon.venues.exchanges import BadField, Lines, Perp, binance, bybit, number, okx

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


CONTRACT = "binance:ETH/USDT:USDT"


@pytest.mark.parametrize("mark", [D(2500), D(3000), D("3333.33")])
@pytest.mark.parametrize(("side", "sign"), [("long", 1), ("short", -1)])
def test_linear_legs_are_worth_the_upnl_at_the_contracts_own_mark(
    mark: Decimal, side: str, sign: int
) -> None:
    legs = perp(side).legs(CONTRACT)
    assert legs == ((CONTRACT, sign * D(2)), ("USDT", -sign * D(6000)))
    # the contract's price is its mark, whatever the spot price of ETH
    assert value(legs, {CONTRACT: mark, "USDT": D(1)}) == sign * 2 * (mark - 3000)
    assert perp(side).pnl_at(mark) == sign * 2 * (mark - 3000)


@pytest.mark.parametrize("mark", [D(40000), D(50000), D(62500)])
@pytest.mark.parametrize(("side", "sign"), [("long", 1), ("short", -1)])
def test_inverse_legs_are_worth_the_upnl_at_the_contracts_own_mark(
    mark: Decimal, side: str, sign: int
) -> None:
    # 100 contracts of 100 USD on BTC, entered at 50,000: the uPnL is in BTC
    inverse = perp(
        side,
        symbol="BTC/USD:BTC",
        base="BTC",
        settle="BTC",
        contracts=D(100),
        contract_size=D(100),
        entry_price=D(50000),
        mark_price=mark,
        inverse=True,
    )
    contract = "bybit:BTC/USD:BTC"
    legs = inverse.legs(contract)
    upnl_btc = sign * D(10000) * (1 / D(50000) - 1 / mark)
    # the edge BTC/contract is the mark: one unit of the contract (1 USD) is worth 1/mark BTC
    btc = D(61000)  # spot, not the mark
    assert inverse.mark_edge(contract) == ("BTC", contract)
    assert value(legs, {"BTC": btc, contract: btc / mark}) == pytest.approx(upnl_btc * btc)
    assert inverse.pnl_at(mark) == pytest.approx(upnl_btc)
    assert inverse.base_size == sign * D(10000) / mark
    assert inverse.details()["pnl_currency"] == "BTC"
    assert inverse.notional == 10000


def test_a_perp_is_one_hedge_line_and_two_upnl_legs_under_one_line_id() -> None:
    lines = Lines("cex", "usdm", "binance")
    lines.perp(perp("short", position_side="SHORT"))
    lines.perp(perp("long", contracts=D(0)))  # closed: nothing
    kinds = [(p.kind, p.asset.symbol, p.amount, p.line_id) for p in lines.positions]
    assert kinds == [
        (PositionKind.HEDGE, "ETH", D(-2), "ETH/USDT:USDT:SHORT"),
        (PositionKind.UNREALIZED_PNL, CONTRACT, D(-2), "ETH/USDT:USDT:SHORT"),
        (PositionKind.UNREALIZED_PNL, "USDT", D(6000), "ETH/USDT:USDT:SHORT"),
    ]
    hedge = lines.positions[0].details
    assert (hedge["contract_asset"], hedge["mark_base"], hedge["mark_quote"]) == (
        CONTRACT,
        CONTRACT,
        "USDT",
    )


def test_an_accounts_total_carries_its_positions_upnl_at_the_marks_they_were_read_at() -> None:
    lines = Lines("cex", "usdm", "binance")
    lines.total(D(20000), "USDT", "totalMarginBalance", [("USDT", D(-150))])
    lines.perp(perp("short", mark_price=D(3075)))  # 2 ETH short from 3000: -150 at 3075
    (total,) = lines.reported
    assert total.positions_pnl == (("USDT", D(-150)),)
    lines.split_moment()  # a push patched the account: no longer of the total's moment
    assert lines.reported[0].positions_pnl is None


def test_a_position_without_a_mark_leaves_the_positions_upnl_unknown() -> None:
    lines = Lines("cex", "usdm", "binance")
    lines.total(D(20000), "USDT", "totalMarginBalance", [("USDT", D(0))])
    lines.perp(perp("short", mark_price=None))
    assert lines.reported[0].positions_pnl is None


def bybit_row(**extra: str) -> dict[str, str]:
    return {
        "symbol": "ETHPERP",
        "side": "Sell",
        "size": "10",
        "avgPrice": "3000",
        "sessionAvgPrice": "3500",
        "markPrice": "3600",
        "positionValue": "30000",
        "unrealisedPnl": "-1000",
    } | extra


USDC_PERP = {
    "symbol": "ETH/USDC:USDC",
    "id": "ETHPERP",
    "type": "swap",
    "base": "ETH",
    "settle": "USDC",
}


def test_a_bybit_usdc_contract_counts_only_the_pnl_not_settled_in_its_sessions() -> None:
    # short 10 ETH opened at 3000, settled at 3500 (the wallet paid 5000), mark 3600
    lines = Lines("cex", "unified", "bybit")
    lines.total(D(94000), "USD", "totalEquity", [("USDC", D(-1000))])
    bybit.position(lines, bybit_row(), USDC_PERP)
    legs = {
        p.asset.symbol: p.amount for p in lines.positions if p.kind is PositionKind.UNREALIZED_PNL
    }
    assert legs == {"bybit:ETH/USDC:USDC": D(-10), "USDC": D(35000)}
    assert value(tuple(legs.items()), {"bybit:ETH/USDC:USDC": D(3600), "USDC": D(1)}) == -1000
    assert lines.reported[0].positions_pnl == (("USDC", D(-1000)),)
    assert lines.positions[0].details["entry_price"] == 3000  # the opening price stays shown


def test_a_bybit_usdc_contract_without_its_session_price_fails_rather_than_count_twice() -> None:
    with pytest.raises(BadField, match="no sessionAvgPrice"):
        bybit.position(Lines("cex", "unified"), bybit_row(sessionAvgPrice=""), USDC_PERP)


@pytest.mark.parametrize(
    ("exchange", "row", "market", "field"),
    [
        (
            "binance",
            {
                "symbol": "ETHUSDT",
                "positionAmt": "-2",
                "entryPrice": "3000",
                "markPrice": "3100",
                "notional": "-620",
                "unRealizedProfit": "-200",
            },
            {"symbol": "ETH/USDT:USDT", "id": "ETHUSDT", "base": "ETH", "settle": "USDT"},
            "notional",
        ),
        (
            "bybit",
            {
                "symbol": "ETHUSDT",
                "side": "Sell",
                "size": "2",
                "avgPrice": "3000",
                "markPrice": "3100",
                "positionValue": "600",
                "unrealisedPnl": "-200",
            },
            {"symbol": "ETH/USDT:USDT", "id": "ETHUSDT", "base": "ETH", "settle": "USDT"},
            "positionValue",
        ),
        (
            "okx",
            {
                "instType": "SWAP",
                "instId": "ETH-USDT-SWAP",
                "pos": "-20",
                "avgPx": "3000",
                "markPx": "3100",
                "notionalUsd": "620",
                "upl": "-200",
            },
            {
                "symbol": "ETH/USDT:USDT",
                "id": "ETH-USDT-SWAP",
                "base": "ETH",
                "settle": "USDT",
                "contractSize": 0.1,
            },
            "notionalUsd",
        ),
    ],
)
def test_a_size_that_does_not_match_the_exchanges_notional_fails_its_line_with_the_reason(
    exchange: str, row: dict[str, str], market: dict[str, Any], field: str
) -> None:
    # the exchange's notional is a tenth of contracts × contract size × price: a contract size
    # read wrong would value the position ten times too big
    mapping = {"binance": binance, "bybit": bybit, "okx": okx}[exchange]
    extra = ({"data": [{"acctLv": "3"}]},) if exchange == "okx" else ()
    with pytest.raises(BadField, match=f"ETH/USDT:USDT size does not match.*{field}"):
        mapping.position(Lines("cex", "x"), row, market, *extra)
    tenfold = str(D(row.get(field) or "0") * 10)
    mapping.position(Lines("cex", "x"), row | {field: tenfold}, market, *extra)  # matches


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
