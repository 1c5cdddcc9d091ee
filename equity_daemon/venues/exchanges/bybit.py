"""Bybit v5: which raw field of which answer becomes which line (docs/exchanges.md).

* `unified` (`result.list[0].coin[]`): `walletBalance` -> asset (negative: debt),
  `spotBorrow` and `accruedInterest` -> debt, open positions -> hedge lines and legs; total
  `totalEquity` (USD), with the coins' `unrealisedPnl` at the exchange's marks (`exchanges.perp`).
* `funding` (`result.balance[]`): `walletBalance` -> asset.

`walletBalance` holds spot-borrowed coins (Bybit's "manual borrow" logic), so `spotBorrow` is
subtracted once as debt. `borrowAmount` is not used: it adds derivatives liabilities, which
already show as a negative `walletBalance`. The coin's `unrealisedPnl` (inside `equity`) is left
out: open positions (USDT and USDC perpetuals and inverse ones such as `BTCUSD`, every page)
enter as two legs each, at each contract's mark (`exchanges.perp`).

**USDC contracts settle every session.** Bybit settles a USDC perpetual's or future's uPnL into
`walletBalance` at every session settlement (8 h): `avgPrice` stays the opening price and
`sessionAvgPrice` moves to the settlement price. The legs of a USDC contract run from
`sessionAvgPrice` (`Perp.settled_price`), so a settled session is never counted twice; a USDC
row without one fails, as what is settled is then unknown.

A row's size is checked against its `positionValue` (the position at its entry price; base coin
of an inverse contract: `size / avgPrice`), at `avgPrice` or, for a USDC contract,
`sessionAvgPrice`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from equity_daemon.venues.exchanges import (
    ZERO,
    BadField,
    Lines,
    Perp,
    TransferFields,
    check_notional,
    contract_of,
    market_ref,
    number,
    optional,
    rows,
    text,
)

ACCOUNTS: Mapping[str, str] = {"unified": "unified", "funding": "funding"}
# ccxt asks `category=linear` with a settle coin (USDT by default: venue-pitfalls 20), and
# `category=inverse` (every settle coin at once) for `subType: inverse`
POSITIONS: Mapping[str, tuple[Mapping[str, Any], ...]] = {
    "unified": ({"settleCoin": "USDT"}, {"settleCoin": "USDC"}, {"subType": "inverse"}),
}
# deposits not yet credited and withdrawals not yet completed, by the exchange's raw status
# (deposits: 1 to be confirmed, 2 processing, 10011 pending to the funding pool; 0 unknown,
# 3 success, 4 failed, 10012 credited to the funding pool and any other code — a rollback of
# a credited deposit among them — are not. Withdrawals: `SecurityCheck`, `Pending`,
# `MoreInformationRequired`; `success`, `BlockchainConfirmed`, `CancelByUser`, `Reject`,
# `Fail` and `Unknown` are not)
DEPOSITS = TransferFields("coin", "amount", "status", "txID", "id", frozenset({"1", "2", "10011"}))
WITHDRAWALS = TransferFields(
    "coin",
    "amount",
    "status",
    "txID",
    "withdrawId",
    frozenset({"SecurityCheck", "Pending", "MoreInformationRequired"}),
)
# the raw ticker field `observe` reads
TICKER_LAST = "lastPrice"
# contracts settled into the wallet at every session (8 h): their legs run from the session price
SESSION_SETTLED = frozenset({"USDC"})
# the same in a public spot ticker push (`tickers.<SYMBOL>`'s `data`): market data follows it
TICKER_STREAM_LAST = "lastPrice"
EXTRA: Mapping[str, tuple[str, Mapping[str, Any]]] = {}

# The currencies of each account type's own total (reconciliation), for `check-config`
TOTAL_CURRENCIES: Mapping[str, tuple[str, ...]] = {"unified": ("USD",)}


def balance(lines: Lines, account: str, info: Any, extra: Any = None) -> None:
    """The lines of one account type from its raw answer."""
    result = info.get("result") if isinstance(info, Mapping) else None
    if not isinstance(result, Mapping):
        raise BadField("no result")
    match account:
        case "unified":
            wallets = rows(result.get("list"), "result.list")
            if not wallets:
                raise BadField("result.list is empty")
            wallet = wallets[0]
            pnl = []
            for coin in rows(wallet.get("coin"), "coin"):
                asset = text(coin, "coin")
                lines.asset(asset, number(coin, "walletBalance"))
                lines.debt(asset, number(coin, "spotBorrow", default=ZERO))
                lines.debt(asset, number(coin, "accruedInterest", default=ZERO), "interest")
                pnl.append((asset, number(coin, "unrealisedPnl", default=ZERO)))
            lines.total(number(wallet, "totalEquity"), "USD", "totalEquity", pnl)
        case "funding":
            for row in rows(result.get("balance"), "result.balance"):
                lines.asset(text(row, "coin"), number(row, "walletBalance"))
        case _:
            raise BadField(f"bybit has no account type {account!r}")


def position(lines: Lines, raw: Mapping[str, Any], market: Mapping[str, Any]) -> None:
    """One `/v5/position/list` row (`size` in base units for linear, USD for inverse)."""
    size = number(raw, "size")
    if size == 0:
        return
    symbol, base, settle, inverse, _ = contract_of(market)
    market_id, market_type = market_ref(market)
    side = raw.get("side")
    if side not in ("Buy", "Sell"):
        raise BadField(f"{symbol} position has side {side!r}")
    entry = number(raw, "avgPrice")
    settled = None
    if settle in SESSION_SETTLED and not inverse:
        settled = number(raw, "sessionAvgPrice")
    _check_size(symbol, raw, size, entry, settled, inverse)
    lines.perp(
        Perp(
            symbol=symbol,
            base=base,
            settle=settle,
            side="long" if side == "Buy" else "short",
            contracts=size,
            # linear: `size` in base units; inverse: in contracts of 1 USD each (ccxt's
            # inverse contractSize is the minimum order quantity, not the contract's value)
            contract_size=Decimal(1),
            entry_price=entry,
            mark_price=optional(raw, "markPrice"),
            unrealized_pnl=number(raw, "unrealisedPnl", default=ZERO),
            liquidation_price=optional(raw, "liqPrice"),
            leverage=optional(raw, "leverage"),
            margin_mode="isolated" if str(raw.get("tradeMode")) == "1" else "cross",
            position_side=str(raw.get("positionIdx", 0)),
            inverse=inverse,
            market_id=market_id,
            market_type=market_type,
            settled_price=settled,
        )
    )


def _check_size(
    symbol: str,
    raw: Mapping[str, Any],
    size: Decimal,
    entry: Decimal,
    settled: Decimal | None,
    inverse: bool,
) -> None:
    """`size` against the row's `positionValue` (at `avgPrice`, or a USDC contract's
    `sessionAvgPrice`: either is accepted); a row without one is not checked."""
    value = optional(raw, "positionValue")
    if value is None:
        return
    prices = [p for p in (entry, settled) if p]
    found = [size / p if inverse else size * p for p in prices]
    best = min(found, key=lambda computed: abs(computed - value), default=ZERO)
    check_notional(symbol, best, value, "positionValue")


# -- the contract's mark, asked at every cycle (`venues/contract_marks`) ----------------------


def mark_request(market_id: str, market_type: str, inverse: bool) -> tuple[str, dict[str, Any]]:
    """The raw public call that answers a contract's mark: `/v5/market/tickers`."""
    return "publicGetV5MarketTickers", {
        "category": "inverse" if inverse else "linear",
        "symbol": market_id,
    }


def mark_answer(answer: Any, market_id: str) -> Decimal:
    """The contract's `markPrice` in a `/v5/market/tickers` answer."""
    result = answer.get("result") if isinstance(answer, Mapping) else None
    listed = rows(result.get("list") if isinstance(result, Mapping) else None, "result.list")
    for row in listed:
        if row.get("symbol") == market_id:
            return number(row, "markPrice")
    raise BadField(f"no ticker of {market_id}")


# -- streaming (ccxt.pro `watch_balance` / `watch_positions`) -----------------------------------

# the account types followed by a stream
STREAMED: frozenset[str] = frozenset({"unified"})
# the accounts whose pushes leave out their debt: `walletBalance` holds spot-borrowed coins
# while `spotBorrow` and `accruedInterest` are read over REST only, so a push is a cue to read
# the account whole at once, never patched in (a borrow would show as coins without their debt)
READ_ON_PUSH: frozenset[str] = frozenset({"unified"})
# the params of the `watch_balance` / `watch_positions` calls, per streamed account type
WATCH: Mapping[str, Mapping[str, Any]] = {"unified": {}}


def position_key(raw: Mapping[str, Any]) -> tuple[str, str]:
    """What identifies one position: its symbol and position index (hedge mode has two)."""
    return text(raw, "symbol"), str(raw.get("positionIdx", 0))
