"""OKX v5: which raw field of which answer becomes which line (docs/exchanges.md).

* `trading` (`data[0].details[]`): `cashBal + liab` -> asset, `liab - interest` and
  `interest` -> debt, open swaps -> hedge lines and legs; total `totalEq` (USD).
* `funding` (`data[]`): `bal` -> asset.

OKX's `eq` is already net (`cashBal + upl`, and a borrowed-and-spent coin has `cashBal = -liab`),
so `eq` is never added beside a debt: the holding is rebuilt as `cashBal + liab` and the
liability (principal and interest, `liab` including `interest`) subtracted once. `upl` is left
out: open swaps (the position list only; closed rows live in a history endpoint never read)
enter as two legs each. `pos` is in contracts of `ctVal` base units.
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
DEPOSITS = TransferFields(
    "ccy", "amt", "state", "txId", "depId", frozenset({"0", "8", "11", "12", "13", "14"})
)
WITHDRAWALS = TransferFields(
    "ccy",
    "amt",
    "state",
    "txId",
    "wdId",
    frozenset({"0", "1", "4", "5", "6", "7", "8", "9", "10", "12", "15", "16", "17"}),
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
