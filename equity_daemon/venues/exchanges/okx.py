"""OKX v5: which raw field of which answer becomes which line (docs/exchanges.md).

* `trading` (`data[0].details[]`): `cashBal + liab` -> asset, `liab - interest` and
  `interest` -> debt, open swaps and dated futures (linear and inverse) -> hedge lines and
  legs; total `totalEq` (USD), with the coins' `upl` at the exchange's marks (`exchanges.perp`).
* `funding` (`data[]`): `bal` -> asset.

**Account mode.** Where OKX shows borrowing depends on the account level (`acctLv` of
`GET /api/v5/account/config`, read once, not every cycle — see `venues/exchange.py`). OKX's
"Get balance" lists `liab`, `interest` and `crossLiab` as applicable to Spot mode (1),
Multi-currency margin (3) and Portfolio margin (4) only, and returns `""` for fields that do
not apply; "Get positions" gives `liab`, `liabCcy` and `interest` for `MARGIN` rows only. So:

| `acctLv`  | balance `liab`/`interest`             | `MARGIN` position rows                   |
|-----------|---------------------------------------|------------------------------------------|
| 1 Spot    | the debt (empty: borrowing is off)    | fail                                     |
| 2 Futures | empty or 0 (else the mode changed)    | isolated: `pos` asset, `liab` + interest |
|           |                                       | debt (`posCcy`, `liabCcy`); cross: fail  |
| 3, 4      | the debt; empty: the mode changed     | fail                                     |

A row the mode cannot place fails the venue with the mode named, never a silently missed
debt: an isolated `MARGIN` position's `pos` includes its margin and is not in `cashBal`, so in
Futures mode it nets as `pos − liab − interest` (its equity, `margin + upl`); in the other
modes the balance's `liab` already includes isolated liabilities while their holdings are
not in `cashBal`, and where a cross `MARGIN` position's holdings sit is not documented.
`OPTION` and `EVENTS` rows are not valued: fail.

OKX's `eq` is already net (`cashBal + upl`, and a borrowed-and-spent coin has `cashBal = -liab`),
so `eq` is never added beside a debt: the holding is rebuilt as `cashBal + liab` and the
liability (principal and interest, `liab` including `interest`) subtracted once. `upl` is left
out: open swaps (the position list only; closed rows live in a history endpoint never read)
enter as two legs each, at each contract's mark (`exchanges.perp`). `pos` is in contracts of
`ctVal` base units (USD for an inverse contract), checked against the row's `notionalUsd`
(`pos × ctVal × markPx`; inverse: `pos × ctVal`).

`trading` streams (private socket, channels `account` and `positions`): a push patches the coins
and positions it names. An `account` push's `details` rows have REST's fields; `liab` and
`interest` are taken from the push only as a pair and only when both are there, else the REST
pair stays. Either way the coin nets to its pushed `cashBal` (asset `cashBal + liab`, debt
`liab`), so a debt is never lost or counted twice, whichever `liab` is used.
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

ACCOUNTS: Mapping[str, str] = {"trading": "trading", "funding": "funding"}
# no `instType`: one call returns every open position (MARGIN, SWAP, FUTURES, OPTION), and
# `position` places each kind or fails, so a futures hedge or a margin loan is never missed
POSITIONS: Mapping[str, tuple[Mapping[str, Any], ...]] = {"trading": ({},)}
# the account level decides where the trading account's debt shows (module docstring)
MODE: Mapping[str, tuple[str, Mapping[str, Any]]] = {"trading": ("privateGetAccountConfig", {})}
LEVELS: Mapping[str, str] = {
    "1": "Spot mode",
    "2": "Futures mode",
    "3": "Multi-currency margin",
    "4": "Portfolio margin",
}
CONTRACTS = frozenset({"SWAP", "FUTURES"})
# deposits not yet credited and withdrawals not yet completed, by the exchange's raw status
# (deposits: 0 waiting for confirmations, 8 suspended, 11 blacklisted address, 12 frozen,
# 13 sub-account interception, 14 KYC limit, 17 travel-rule check; 1 credited and 2 successful
# are in the balance. Withdrawals: stage 1 — 0, 4-10, 12, 17, 19 — and stage 2 — 1, 15, 16 and
# -3 canceling — are under way; -2 canceled, -1 failed and 2 success are final)
DEPOSITS = TransferFields(
    "ccy", "amt", "state", "txId", "depId", frozenset({"0", "8", "11", "12", "13", "14", "17"})
)
WITHDRAWALS = TransferFields(
    "ccy",
    "amt",
    "state",
    "txId",
    "wdId",
    frozenset({"0", "1", "4", "5", "6", "7", "8", "9", "10", "12", "15", "16", "17", "19", "-3"}),
)
# the raw ticker field `observe` reads
TICKER_LAST = "last"
# the same in a `tickers` channel push (`data[0]`): market data follows it
TICKER_STREAM_LAST = "last"
EXTRA: Mapping[str, tuple[str, Mapping[str, Any]]] = {}


def level(mode: Any) -> str:
    """The account level (`acctLv`) of a `/api/v5/account/config` answer, one OKX documents."""
    data = rows(mode.get("data") if isinstance(mode, Mapping) else None, "account config")
    if not data:
        raise BadField("account config is empty")
    found = data[0].get("acctLv")
    if found not in LEVELS:
        raise BadField(f"account level acctLv {found!r} is not one this mapping knows")
    return str(found)


def _mode_name(acct_lv: str) -> str:
    return f"{LEVELS[acct_lv]} (acctLv {acct_lv})"


# The currencies of each account type's own total (reconciliation), for `check-config`
TOTAL_CURRENCIES: Mapping[str, tuple[str, ...]] = {"trading": ("USD",)}


def balance(lines: Lines, account: str, info: Any, extra: Any = None, mode: Any = None) -> None:
    """The lines of one account type from its raw answer (`mode`: the account config)."""
    data = rows(info.get("data") if isinstance(info, Mapping) else None, "data")
    match account:
        case "trading":
            if not data:
                raise BadField("data is empty")
            acct_lv = level(mode)
            summary = data[0]
            pnl = []
            for row in rows(summary.get("details"), "details"):
                asset = text(row, "ccy")
                pnl.append((asset, number(row, "upl", default=ZERO)))
                if acct_lv == "2":  # OKX keeps Futures mode's debt in MARGIN positions
                    if any(number(row, k, default=ZERO) for k in DEBT):
                        raise BadField(
                            f"{asset} has a liab in {_mode_name(acct_lv)}: mode changed?"
                        )
                    lines.asset(asset, number(row, "cashBal"))
                    continue
                if acct_lv in ("3", "4") and any(row.get(k) in (None, "") for k in DEBT):
                    raise BadField(f"{asset} liab is empty in {_mode_name(acct_lv)}: mode changed?")
                liab = abs(number(row, "liab", default=ZERO))
                interest = abs(number(row, "interest", default=ZERO))
                if interest > liab:
                    raise BadField(f"{asset} interest exceeds its liability")
                lines.asset(asset, number(row, "cashBal") + liab)
                lines.debt(asset, liab - interest)
                lines.debt(asset, interest, "interest")
            lines.total(number(summary, "totalEq"), "USD", "totalEq", pnl)
        case "funding":
            for row in data:
                lines.asset(text(row, "ccy"), number(row, "bal"))
        case _:
            raise BadField(f"okx has no account type {account!r}")


def position(
    lines: Lines, raw: Mapping[str, Any], market: Mapping[str, Any], mode: Any = None
) -> None:
    """One `/api/v5/account/positions` row: a swap or dated future (linear or inverse; `pos`
    in contracts of `ctVal`, signed in net mode) or a `MARGIN` position, as the mode says."""
    pos = number(raw, "pos")
    if pos == 0:
        return
    kind = text(raw, "instType")
    if kind == "MARGIN":
        _margin(lines, raw, level(mode))
        return
    if kind not in CONTRACTS:
        raise BadField(f"{raw.get('instId')} is an {kind} position, which is not valued")
    symbol, base, settle, inverse, contract_size = contract_of(market)
    market_id, market_type = market_ref(market)
    pos_side = str(raw.get("posSide") or "net")
    long = pos_side == "long" or (pos_side == "net" and pos > 0)
    margin_mode = str(raw.get("mgnMode") or "cross")
    mark, notional = optional(raw, "markPx"), optional(raw, "notionalUsd")
    if notional is not None and (inverse or mark is not None):
        size = pos * contract_size
        check_notional(symbol, size if inverse else size * (mark or ZERO), notional, "notionalUsd")
    lines.perp(
        Perp(
            symbol=symbol,
            base=base,
            settle=settle,
            side="long" if long else "short",
            contracts=abs(pos),
            contract_size=contract_size,
            entry_price=number(raw, "avgPx"),
            mark_price=mark,
            unrealized_pnl=number(raw, "upl", default=ZERO),
            liquidation_price=optional(raw, "liqPx"),
            leverage=optional(raw, "lever"),
            margin_mode=margin_mode,
            position_side=pos_side,
            inverse=inverse,
            market_id=market_id,
            market_type=market_type,
        ),
        line_id=_line_id(symbol, margin_mode, pos_side),
    )


def _line_id(symbol: str, margin_mode: str, pos_side: str) -> str:
    """A swap or future position's line id. OKX keeps a cross and an isolated position of one
    instrument and side apart (each its own `posId`; `position_key`): an isolated one's id names
    its margin mode. (A cross one's keeps the `symbol:side` every exchange's has.)"""
    if margin_mode == "isolated":
        return f"{symbol}:isolated:{pos_side}"
    return f"{symbol}:{pos_side}"


def _margin(lines: Lines, raw: Mapping[str, Any], acct_lv: str) -> None:
    """A `MARGIN` position: in Futures mode, an isolated one is its holding (`pos` of `posCcy`,
    margin included) and its loan (`liab` and `interest` of `liabCcy`); the module docstring
    says why every other case fails. `interest` is taken as not inside `liab` (OKX's example
    leaves it open): if it is, it is counted twice, a few units of interest too low, which
    reconciliation against `totalEq` shows; the other reading could miss it."""
    inst, margin_mode = text(raw, "instId"), str(raw.get("mgnMode") or "cross")
    if acct_lv != "2" or margin_mode != "isolated":
        raise BadField(
            f"{margin_mode} MARGIN position {inst} in {_mode_name(acct_lv)} is not read: "
            "OKX does not document where its holdings and debt show in this mode"
        )
    line_id = f"{inst}:{margin_mode}:{raw.get('posSide') or 'net'}"
    upl = number(raw, "upl", default=ZERO)
    if upl:  # in its coin's `upl`, but the position's own lines (no legs) hold it
        lines.exclude_pnl(text(raw, "ccy"), upl)
    liab_ccy = text(raw, "liabCcy")
    lines.asset(text(raw, "posCcy"), number(raw, "pos"), line_id)
    lines.debt(liab_ccy, abs(number(raw, "liab", default=ZERO)), line_id)
    lines.debt(liab_ccy, abs(number(raw, "interest", default=ZERO)), f"{line_id}:interest")


# -- streaming (ccxt.pro `watch_balance` / `watch_positions`): what a push may patch ------------

# the account types whose pushes patch the REST snapshot
STREAMED: frozenset[str] = frozenset({"trading"})
# the params of the `watch_balance` / `watch_positions` calls (ccxt subscribes `account` and
# `positions` with `instType` ANY on `/ws/v5/private` after its `login`)
WATCH: Mapping[str, Mapping[str, Any]] = {"trading": {}}
# a coin's debt fields, replaced from a push together or not at all (`interest` is in `liab`)
DEBT = ("liab", "interest")
# the accounts whose pushes leave out their debt: none. `cashBal` is already net of the
# liability and pushed, and a push's `liab`/`interest` pair is taken only whole (module
# docstring), so a push is patched in at once. (The `funding` account beside it is polled.)
READ_ON_PUSH: frozenset[str] = frozenset()


def patch_balance(info: Any, message: Any) -> dict[str, Any]:
    """The raw `/api/v5/account/balance` answer `info` with the coins of an `account` push
    replaced.

    Coins the push does not name keep their REST rows; the account's own fields (`totalEq`,
    `uTime`) are the pushed ones. A pushed coin keeps the REST `liab`/`interest` pair unless
    the push carries both (module docstring). `balance` reads the result as a REST answer.
    """
    data = rows(info["data"], "data")
    summary = dict(data[0])
    coins = {text(c, "ccy"): c for c in rows(summary.get("details"), "details")}
    for row in rows(message.get("data"), "account push"):
        number(row, "totalEq")
        summary |= {k: v for k, v in row.items() if k != "details"}
        for coin in rows(row.get("details"), "details"):
            asset = text(coin, "ccy")
            number(coin, "cashBal")
            pushed = dict(coin)
            if any(coin.get(k) in (None, "") for k in DEBT):
                old = coins.get(asset, {})
                pushed |= {k: old.get(k, "0") for k in DEBT}
            coins[asset] = pushed
    summary["details"] = list(coins.values())
    return {**info, "data": [summary, *data[1:]]}


def pushed_positions(message: Any) -> list[Mapping[str, Any]]:
    """The rows of a `positions` push, shaped as `/api/v5/account/positions` rows (plus
    `pTime`). ccxt subscribes `instType` ANY, as the REST call asks for every type: `position`
    places each row (or fails) exactly as it does a REST row."""
    found = rows(message.get("data"), "positions push")
    for row in found:
        text(row, "instType")
    return found


def closed(raw: Mapping[str, Any]) -> bool:
    """Whether a pushed position row is a closed position (`pos` "0")."""
    return number(raw, "pos") == 0


# -- the contract's mark, asked at every cycle (`venues/contract_marks`) ----------------------


def mark_request(market_id: str, market_type: str, inverse: bool) -> tuple[str, dict[str, Any]]:
    """The raw public call that answers a contract's mark: `/api/v5/public/mark-price`."""
    kind = "FUTURES" if market_type == "future" else "SWAP"
    return "publicGetPublicMarkPrice", {"instType": kind, "instId": market_id}


def mark_answer(answer: Any, market_id: str) -> Decimal:
    """The contract's `markPx` in a `/api/v5/public/mark-price` answer."""
    for row in rows(answer.get("data") if isinstance(answer, Mapping) else None, "data"):
        if row.get("instId") == market_id:
            return number(row, "markPx")
    raise BadField(f"no mark price of {market_id}")


def position_key(raw: Mapping[str, Any]) -> tuple[str, str, str]:
    """What identifies one position: instrument, margin mode (a cross and an isolated position
    of one swap can both be open) and position side (`net`, or `long`/`short` in hedge mode)."""
    return text(raw, "instId"), str(raw.get("mgnMode") or "cross"), str(raw.get("posSide") or "net")


def event_ms(message: Any) -> int | None:
    """The exchange's time of a push: the latest `pTime` (positions) or `uTime` (the account's,
    and each position's) of its data rows; None if there is none."""
    data = message.get("data") if isinstance(message, Mapping) else None
    latest: int | None = None
    for row in data if isinstance(data, list) else ():
        for field in ("pTime", "uTime"):
            value = row.get(field) if isinstance(row, Mapping) else None
            if isinstance(value, str) and value.isdigit():
                latest = max(latest or 0, int(value))
                break
    return latest
