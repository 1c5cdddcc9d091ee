"""OKX v5: which raw field of which answer becomes which line (docs/exchanges.md).

* `trading` (`data[0].details[]`): `cashBal + liab` -> asset, `liab - interest` and
  `interest` -> debt, open swaps -> hedge lines and legs; total `totalEq` (USD).
* `funding` (`data[]`): `bal` -> asset.

OKX's `eq` is already net (`cashBal + upl`, and a borrowed-and-spent coin has `cashBal = -liab`),
so `eq` is never added beside a debt: the holding is rebuilt as `cashBal + liab` and the
liability (principal and interest, `liab` including `interest`) subtracted once. `upl` is left
out: open swaps (the position list only; closed rows live in a history endpoint never read)
enter as two legs each. `pos` is in contracts of `ctVal` base units.

`trading` streams (private socket, channels `account` and `positions`): a push patches the coins
and positions it names. An `account` push's `details` rows have REST's fields; `liab` and
`interest` are taken from the push only as a pair and only when both are there, else the REST
pair stays. Either way the coin nets to its pushed `cashBal` (asset `cashBal + liab`, debt
`liab`), so a debt is never lost or counted twice, whichever `liab` is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from equity_daemon.venues.exchanges import (
    ZERO,
    BadField,
    Lines,
    Perp,
    TransferFields,
    contract_of,
    number,
    optional,
    rows,
    text,
)

ACCOUNTS: Mapping[str, str] = {"trading": "trading", "funding": "funding"}
POSITIONS: Mapping[str, tuple[Mapping[str, Any], ...]] = {"trading": ({},)}
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


def balance(lines: Lines, account: str, info: Any, extra: Any = None) -> None:
    """The lines of one account type from its raw answer."""
    data = rows(info.get("data") if isinstance(info, Mapping) else None, "data")
    match account:
        case "trading":
            if not data:
                raise BadField("data is empty")
            summary = data[0]
            for row in rows(summary.get("details"), "details"):
                asset = text(row, "ccy")
                liab = abs(number(row, "liab", default=ZERO))
                interest = abs(number(row, "interest", default=ZERO))
                if interest > liab:
                    raise BadField(f"{asset} interest exceeds its liability")
                lines.asset(asset, number(row, "cashBal") + liab)
                lines.debt(asset, liab - interest)
                lines.debt(asset, interest, "interest")
            lines.total(number(summary, "totalEq"), "USD", "totalEq")
        case "funding":
            for row in data:
                lines.asset(text(row, "ccy"), number(row, "bal"))
        case _:
            raise BadField(f"okx has no account type {account!r}")


def position(lines: Lines, raw: Mapping[str, Any], market: Mapping[str, Any]) -> None:
    """One `/api/v5/account/positions` row; `pos` is signed in net mode."""
    pos = number(raw, "pos")
    if pos == 0:
        return
    symbol, base, settle, inverse, contract_size = contract_of(market)
    pos_side = str(raw.get("posSide") or "net")
    long = pos_side == "long" or (pos_side == "net" and pos > 0)
    lines.perp(
        Perp(
            symbol=symbol,
            base=base,
            settle=settle,
            side="long" if long else "short",
            contracts=abs(pos),
            contract_size=contract_size,
            entry_price=number(raw, "avgPx"),
            mark_price=optional(raw, "markPx"),
            unrealized_pnl=number(raw, "upl", default=ZERO),
            liquidation_price=optional(raw, "liqPx"),
            leverage=optional(raw, "lever"),
            margin_mode=str(raw.get("mgnMode") or "cross"),
            position_side=pos_side,
            inverse=inverse,
        )
    )


# -- streaming (ccxt.pro `watch_balance` / `watch_positions`): what a push may patch ------------

# the account types whose pushes patch the REST snapshot
STREAMED: frozenset[str] = frozenset({"trading"})
# the params of the `watch_balance` / `watch_positions` calls (ccxt subscribes `account` and
# `positions` with `instType` ANY on `/ws/v5/private` after its `login`)
WATCH: Mapping[str, Mapping[str, Any]] = {"trading": {}}
# a coin's debt fields, replaced from a push together or not at all (`interest` is in `liab`)
DEBT = ("liab", "interest")


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
    """The swap rows of a `positions` push, shaped as `/api/v5/account/positions` rows (plus
    `pTime`). ccxt subscribes `instType` ANY; margin, futures and option rows are left out,
    as the REST snapshot (`instType=SWAP`) leaves them out."""
    found = rows(message.get("data"), "positions push")
    return [row for row in found if text(row, "instType") == "SWAP"]


def closed(raw: Mapping[str, Any]) -> bool:
    """Whether a pushed position row is a closed position (`pos` "0")."""
    return number(raw, "pos") == 0


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
