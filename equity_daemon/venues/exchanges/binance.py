"""Binance: which raw field of which answer becomes which line (docs/exchanges.md).

* `spot`: `balances[]` `free + locked` -> asset.
* `cross_margin`: `userAssets[]` `free + locked` (borrowed coins included) -> asset, `borrowed`
  and `interest` -> debt; total `totalNetAssetOfBtc` (BTC).
* `isolated_margin`: per pair, `baseAsset`/`quoteAsset` `totalAsset` -> asset, `borrowed` and
  `interest` -> debt (line id: the pair); total `totalNetAssetOfBtc` (BTC).
* `usdm`: `assets[]` `walletBalance` -> asset (negative: debt), open positions -> hedge lines
  and legs; total `totalMarginBalance` (USDT in single-asset mode, USD in multi-assets mode).
* `portfolio_margin`: `crossMarginAsset`, `umWalletBalance`, `cmWalletBalance` (negative when
  losses exceed it), UM + CM uPnL -> asset; `crossMarginBorrowed`, `crossMarginInterest` ->
  debt; `negativeBalance` -> debt only for what the wallets do not already show below zero
  (`unshown_negative`); total `/papi/v1/account` `actualEquity` (USD).
* `funding`: `free + locked + freeze` -> asset; `withdrawing` -> in transit.

`usdm` leaves the exchange's `unrealizedProfit` out: its open positions enter as two legs each
(`exchanges.Perp`). In Futures Credits mode (EU) the wallet is in `BNFCR`, a credit worth 1 USD:
the book needs an edge for it (`BNFCR`/`USD` fixed 1, and `USD`/`USDT`). A funding row's
`withdrawing` is an `in_transit` line.

Portfolio margin positions are not read yet: its uPnL is the exchange's figure (a line of its
own, `upnl`), valued at the exchange's mark, not both legs at one price.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from equity_daemon.model import PositionKind
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

# our account name -> exchange_client.BALANCES key
ACCOUNTS: Mapping[str, str] = {
    "spot": "spot",
    "cross_margin": "margin",
    "isolated_margin": "isolated",
    "usdm": "futures",
    "portfolio_margin": "portfolio",
    "funding": "funding",
}
# accounts whose open perpetuals are read, with each `fetch_positions` call's params
POSITIONS: Mapping[str, tuple[Mapping[str, Any], ...]] = {"usdm": ({},)}
# one more raw call an account needs: the USDⓈ-M position mode decides the total's currency
# deposits not yet credited and withdrawals not yet completed, by the exchange's raw status
# (deposits: 0 pending, 7 wrong deposit — arrived, not credited, awaiting recovery — and
# 8 waiting for user confirmation; 1 success, 2 rejected and 6 credited-but-locked are not;
# withdrawals: 0 email sent, 2 awaiting approval, 4 processing; 1 cancelled, 3 rejected,
# 5 failure and 6 completed are not)
DEPOSITS = TransferFields("coin", "amount", "status", "txId", "id", frozenset({"0", "7", "8"}))
WITHDRAWALS = TransferFields("coin", "amount", "status", "txId", "id", frozenset({"0", "2", "4"}))
# the raw ticker field `observe` reads
TICKER_LAST = "lastPrice"
# the same in a `<symbol>@miniTicker` stream event (ccxt's `watch_ticker`): market data follows it
TICKER_STREAM_LAST = "c"
# (portfolio margin: the account's own equity, for reconciliation)
EXTRA: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "usdm": ("fapiPrivateGetMultiAssetsMargin", {}),
    "portfolio_margin": ("papiGetAccount", {}),
}


def balance(lines: Lines, account: str, info: Any, extra: Any = None) -> None:
    """The lines of one account type from its raw answer (`extra`: the `EXTRA` call's)."""
    match account:
        case "spot":
            for row in rows(_get(info, "balances"), "balances"):
                lines.asset(text(row, "asset"), number(row, "free") + number(row, "locked"))
        case "cross_margin":
            for row in rows(_get(info, "userAssets"), "userAssets"):
                _margin_asset(lines, row)
            lines.total(number(info, "totalNetAssetOfBtc"), "BTC", "totalNetAssetOfBtc")
        case "isolated_margin":
            for pair in rows(_get(info, "assets"), "assets"):
                symbol = text(pair, "symbol")
                for side in ("baseAsset", "quoteAsset"):
                    _margin_asset(lines, _get(pair, side), symbol, "totalAsset")
            lines.total(number(info, "totalNetAssetOfBtc"), "BTC", "totalNetAssetOfBtc")
        case "usdm":
            for row in rows(_get(info, "assets"), "assets"):
                lines.asset(text(row, "asset"), number(row, "walletBalance"))
            multi = isinstance(extra, Mapping) and extra.get("multiAssetsMargin") in (True, "true")
            currency = "USD" if multi else "USDT"
            lines.total(number(info, "totalMarginBalance"), currency, "totalMarginBalance")
        case "portfolio_margin":
            for row in rows(info, "portfolio margin balance"):
                asset = text(row, "asset")
                um = number(row, "umWalletBalance", default=ZERO)
                cm = number(row, "cmWalletBalance", default=ZERO)
                lines.asset(asset, number(row, "crossMarginAsset"))
                lines.asset(asset, um, "um")
                lines.asset(asset, cm, "cm")
                upnl = number(row, "umUnrealizedPNL", default=ZERO) + number(
                    row, "cmUnrealizedPNL", default=ZERO
                )
                lines.asset(asset, upnl, "upnl")
                lines.debt(asset, number(row, "crossMarginBorrowed", default=ZERO))
                lines.debt(asset, number(row, "crossMarginInterest", default=ZERO), "interest")
                negative = abs(number(row, "negativeBalance", default=ZERO))
                lines.debt(asset, unshown_negative(negative, um, cm), "negative")
            if extra is not None:  # without collateral haircuts, as the lines are valued
                lines.total(number(extra, "actualEquity"), "USD", "actualEquity")
        case "funding":
            for row in rows(info, "funding assets"):
                asset = text(row, "asset")
                held = sum(
                    (number(row, k, default=ZERO) for k in ("free", "locked", "freeze")), ZERO
                )
                lines.asset(asset, held)
                withdrawing = number(row, "withdrawing", default=ZERO)
                lines.add(PositionKind.IN_TRANSIT, asset, withdrawing, "withdrawing")
        case _:
            raise BadField(f"binance has no account type {account!r}")


def position(lines: Lines, raw: Mapping[str, Any], market: Mapping[str, Any]) -> None:
    """One `/fapi/v3/positionRisk` row (zero-size rows are skipped)."""
    amount = number(raw, "positionAmt")
    if amount == 0:
        return
    symbol, base, settle, _, _ = contract_of(market)  # USDⓈ-M: linear, amounts in base units
    isolated = number(raw, "isolatedWallet", default=ZERO) != 0
    margin_mode = raw.get("marginType") or ("isolated" if isolated else "cross")
    leverage = raw.get("leverage")
    lines.perp(
        Perp(
            symbol=symbol,
            base=base,
            # Futures Credits mode settles PnL in BNFCR: the raw margin asset says so
            settle=str(raw.get("marginAsset") or settle),
            side="long" if amount > 0 else "short",
            contracts=abs(amount),
            contract_size=Decimal(1),
            entry_price=number(raw, "entryPrice"),
            mark_price=optional(raw, "markPrice"),
            unrealized_pnl=number(raw, "unRealizedProfit"),
            liquidation_price=optional(raw, "liquidationPrice"),
            leverage=None if leverage in (None, "") else Decimal(str(leverage)),
            margin_mode=str(margin_mode).lower(),
            position_side=str(raw.get("positionSide") or "BOTH"),
        )
    )


def unshown_negative(negative: Decimal, um: Decimal, cm: Decimal) -> Decimal:
    """The part of a portfolio-margin `negativeBalance` that the futures wallets do not already
    show as negative (pitfall 23): a UM or CM wallet below zero is that negative balance, and
    its asset line already subtracts it; only what is left over is a debt line of its own."""
    shown = -(min(um, ZERO) + min(cm, ZERO))
    return max(negative - shown, ZERO)


def _margin_asset(lines: Lines, row: Any, pair: str | None = None, held: str | None = None) -> None:
    asset = text(row, "asset")
    total = number(row, held) if held else number(row, "free") + number(row, "locked")
    lines.asset(asset, total, pair)
    lines.debt(asset, number(row, "borrowed"), pair)
    lines.debt(asset, number(row, "interest"), f"{pair}:interest" if pair else "interest")


def _get(node: Any, key: str) -> Any:
    if not isinstance(node, Mapping) or key not in node:
        raise BadField(f"no {key}")
    return node[key]


# -- streaming (the USDⓈ-M user-data stream's `ACCOUNT_UPDATE`): what a push may patch --------

# the account types whose pushes patch the REST snapshot
STREAMED: frozenset[str] = frozenset({"usdm"})
# the params of the `watch_balance` / `watch_positions` calls (ccxt's `future` is USDⓈ-M)
WATCH: Mapping[str, Mapping[str, Any]] = {"usdm": {"type": "future"}}


def patch_balance(info: Any, message: Any) -> dict[str, Any]:
    """The raw `/fapi/v3/account` answer `info` with the assets of an `ACCOUNT_UPDATE` patched.

    Each pushed `a.B[]` row sets its asset's `walletBalance` to `wb` (the push's wallet
    balance; its uPnL-free figure is the one REST's `walletBalance` holds); assets it does not
    name keep their REST rows. The push has no account total: `totalMarginBalance` moves by the
    change in USDT's wallet balance (exact in single-asset mode; in multi-assets mode other
    assets' changes reach it at the next REST snapshot). Other events change nothing.
    """
    if not isinstance(message, Mapping) or message.get("e") != "ACCOUNT_UPDATE":
        return dict(info)
    assets = {text(row, "asset"): dict(row) for row in rows(_get(info, "assets"), "assets")}
    total = number(info, "totalMarginBalance")
    for row in rows(_get(_get(message, "a"), "B"), "a.B"):
        asset = text(row, "a")
        wallet = number(row, "wb")
        old = assets.get(asset, {"asset": asset, "walletBalance": "0"})
        if asset == "USDT":
            total += wallet - number(old, "walletBalance")
        assets[asset] = old | {"walletBalance": row["wb"]}
    return {**info, "assets": list(assets.values()), "totalMarginBalance": str(total)}


def pushed_positions(message: Any) -> list[Mapping[str, Any]]:
    """The `a.P[]` rows of an `ACCOUNT_UPDATE`, shaped as `/fapi/v3/positionRisk` rows (the
    venue keeps the REST row's other fields, e.g. `markPrice`, which the push lacks)."""
    if not isinstance(message, Mapping) or message.get("e") != "ACCOUNT_UPDATE":
        return []
    return [
        {
            "symbol": text(row, "s"),
            "positionAmt": row["pa"],
            "entryPrice": row["ep"],
            "unRealizedProfit": row["up"],
            "positionSide": row.get("ps", "BOTH"),
            "marginAsset": row.get("ma", ""),
            "marginType": row.get("mt", ""),
            "isolatedWallet": row.get("iw", "0"),
        }
        for row in rows(_get(_get(message, "a"), "P"), "a.P")
    ]


def closed(raw: Mapping[str, Any]) -> bool:
    """Whether a position row is closed (`positionAmt` 0: Binance pushes `pa` "0")."""
    return number(raw, "positionAmt") == 0


def position_key(raw: Mapping[str, Any]) -> tuple[str, str]:
    """Symbol and position side (`BOTH`, or `LONG`/`SHORT` in hedge mode)."""
    return text(raw, "symbol"), str(raw.get("positionSide") or "BOTH")


def event_ms(message: Any) -> int | None:
    """The event time `E` of a user-data event."""
    value = message.get("E") if isinstance(message, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
