"""Binance: which raw field of which answer becomes which line (docs/exchanges.md).

* `spot`: `balances[]` `free + locked` -> asset.
* `cross_margin`: `userAssets[]` `free + locked` (borrowed coins included) -> asset, `borrowed`
  and `interest` -> debt; total `totalNetAssetOfBtc` (BTC).
* `isolated_margin`: per pair, `baseAsset`/`quoteAsset` `totalAsset` -> asset, `borrowed` and
  `interest` -> debt (line id: the pair); total `totalNetAssetOfBtc` (BTC).
* `usdm`: `assets[]` `walletBalance` -> asset (negative: debt), open positions -> hedge lines
  and legs; total `totalMarginBalance` (USD in multi-assets mode; in single-asset mode USDT's
  alone, so the other assets, and the uPnL of contracts settled in them, are left out of the
  comparison), with `totalUnrealizedProfit` at the exchange's marks (`exchanges.perp`).
* `portfolio_margin`: `crossMarginAsset`, `umWalletBalance`, `cmWalletBalance` (negative when
  losses exceed it) -> asset, CM uPnL -> unrealized_pnl; `crossMarginBorrowed`,
  `crossMarginInterest` -> debt; `negativeBalance` -> debt only for what the wallets do not
  already show below zero (`unshown_negative`); open UM positions (`/papi/v1/um/positionRisk`)
  -> hedge lines and legs, as `usdm`'s; total `/papi/v1/account` `actualEquity` (USD: equity
  without collateral haircuts, as the lines are valued; `accountEquity` applies them), with
  the rows' `umUnrealizedPNL` at the exchange's marks.
* `funding`: `free + locked + freeze` -> asset; `withdrawing` is left out (below).
* `coinm` (COIN-M, `/dapi`): one account per margin coin, `coinm:<COIN>`: its wallet, its
  inverse perpetuals' hedge lines and legs, and its own total (`binance_coinm`).

`usdm` leaves the exchange's `unrealizedProfit` out: its open positions enter as two legs each,
at each contract's mark (`exchanges.perp`); a row's size is checked against its `notional`
(`positionAmt × markPrice`; COIN-M's `notionalValue`, `positionAmt × contractSize / markPrice`
in the coin). In Futures Credits mode (EU) the wallet is in `BNFCR`, a credit
worth 1 USD: the book needs an edge for it (`BNFCR`/`USD` fixed 1, and `USD`/`USDT`).

A funding row's `withdrawing` is a withdrawal under way, out of `free`: the withdrawal history
(`/sapi/v1/capital/withdraw/history`, `WITHDRAWALS`) lists the same withdrawal, so only the
history makes it an `in_transit` line. It is the one source: one record per withdrawal with its
transaction id and raw status, from either wallet (`walletType` 0 spot, 1 funding), matched by
id like every exchange's; `withdrawing` is a per-coin sum no record can be matched against.

Portfolio margin's COIN-M positions are not read: their uPnL is the exchange's figure (an
`unrealized_pnl` line of its own, `upnl`), at the exchange's mark of the read.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from equity_daemon.model import PositionKind
from equity_daemon.venues.exchanges import (
    EVERY_COIN,
    ZERO,
    BadField,
    Lines,
    Perp,
    TransferFields,
    binance_coinm,
    check_notional,
    contract_of,
    market_ref,
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
    "coinm": "coinm",
}
# accounts whose open perpetuals are read, with each `fetch_positions` call's params
# (portfolio margin: its USDⓈ-M positions, `/papi/v1/um/positionRisk`)
POSITIONS: Mapping[str, tuple[Mapping[str, Any], ...]] = {
    "usdm": ({},),
    "portfolio_margin": ({"portfolioMargin": True},),
    "coinm": (binance_coinm.PARAMS,),  # `/dapi/v1/positionRisk`
}
# the ccxt market types an account's instance loads, where not spot and linear (`OPTIONS`)
MARKET_TYPES: Mapping[str, tuple[str, ...]] = {"coinm": ("inverse",)}
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

# The currencies of each account type's own total (reconciliation), for `check-config`:
# `usdm`'s is USDT's alone in single-asset mode, USD in multi-assets mode; each `coinm` total is
# in its own margin coin.
TOTAL_CURRENCIES: Mapping[str, tuple[str, ...]] = {
    "cross_margin": ("BTC",),
    "isolated_margin": ("BTC",),
    "usdm": ("USDT", "USD"),
    "portfolio_margin": ("USD",),
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
            wallets = rows(_get(info, "assets"), "assets")
            for row in wallets:
                lines.asset(text(row, "asset"), number(row, "walletBalance"))
            multi = isinstance(extra, Mapping) and extra.get("multiAssetsMargin") in (True, "true")
            currency = "USD" if multi else "USDT"
            # single-asset mode: the total is USDT's alone, the other wallets are outside it
            outside = () if multi else {text(row, "asset") for row in wallets} - {"USDT"}
            pnl = [(currency, number(info, "totalUnrealizedProfit"))]  # same scope as the total
            total = number(info, "totalMarginBalance")
            lines.total(total, currency, "totalMarginBalance", pnl, uncounted=outside)
        case "portfolio_margin":
            for row in rows(info, "portfolio margin balance"):
                asset = text(row, "asset")
                um = number(row, "umWalletBalance", default=ZERO)
                cm = number(row, "cmWalletBalance", default=ZERO)
                lines.asset(asset, number(row, "crossMarginAsset"))
                lines.asset(asset, um, "um")
                lines.asset(asset, cm, "cm")
                # UM positions enter as legs (`position`); COIN-M ones are not read: their
                # uPnL is the exchange's figure, at its mark
                cm_pnl = number(row, "cmUnrealizedPNL", default=ZERO)
                lines.add(PositionKind.UNREALIZED_PNL, asset, cm_pnl, "upnl")
                lines.debt(asset, number(row, "crossMarginBorrowed", default=ZERO))
                lines.debt(asset, number(row, "crossMarginInterest", default=ZERO), "interest")
                negative = abs(number(row, "negativeBalance", default=ZERO))
                lines.debt(asset, unshown_negative(negative, um, cm), "negative")
            if extra is not None:  # without collateral haircuts, as the lines are valued
                pnl = [  # the UM positions' uPnL inside the total, per asset, from the same read
                    (text(row, "asset"), number(row, "umUnrealizedPNL", default=ZERO))
                    for row in rows(info, "portfolio margin balance")
                ]
                lines.total(number(extra, "actualEquity"), "USD", "actualEquity", pnl)
        case "coinm":
            binance_coinm.balance(lines, info)
        case "funding":
            for row in rows(info, "funding assets"):
                asset = text(row, "asset")
                held = sum(
                    (number(row, k, default=ZERO) for k in ("free", "locked", "freeze")), ZERO
                )
                lines.asset(asset, held)  # `withdrawing`: see the module docstring
        case _:
            raise BadField(f"binance has no account type {account!r}")


def position(lines: Lines, raw: Mapping[str, Any], market: Mapping[str, Any]) -> None:
    """One `/fapi/v3/positionRisk`, `/papi/v1/um/positionRisk` or `/dapi/v1/positionRisk` row
    (zero-size rows are skipped; portfolio margin's rows have no margin type, margin asset or
    isolated wallet; COIN-M's are inverse: contracts of `contractSize` USD)."""
    amount = number(raw, "positionAmt")
    if amount == 0:
        return
    symbol, base, settle, inverse, contract_size = contract_of(market)
    market_id, market_type = market_ref(market)
    isolated = number(raw, "isolatedWallet", default=ZERO) != 0
    margin_mode = raw.get("marginType") or ("isolated" if isolated else "cross")
    mark = optional(raw, "markPrice")
    if not inverse:
        contract_size = Decimal(1)  # USDⓈ-M: amounts in base units
    _check_notional(raw, symbol, amount * contract_size, mark, inverse)
    found = Perp(
        symbol=symbol,
        base=base,
        # Futures Credits mode settles PnL in BNFCR: the raw margin asset says so
        settle=settle if inverse else str(raw.get("marginAsset") or settle),
        side="long" if amount > 0 else "short",
        contracts=abs(amount),
        contract_size=contract_size,
        entry_price=number(raw, "entryPrice"),
        mark_price=mark,
        unrealized_pnl=number(raw, "unRealizedProfit"),
        liquidation_price=optional(raw, "liquidationPrice"),
        leverage=_leverage(raw),
        margin_mode=str(margin_mode).lower(),
        position_side=str(raw.get("positionSide") or "BOTH"),
        inverse=inverse,
        market_id=market_id,
        market_type=market_type,
    )
    if inverse:
        binance_coinm.perp(lines, found)
    else:
        lines.perp(found)


def _check_notional(
    raw: Mapping[str, Any], symbol: str, size: Decimal, mark: Decimal | None, inverse: bool
) -> None:
    """A row's signed size (base units; COIN-M: USD) against the notional Binance gives beside
    it: USDⓈ-M's `notional` is size × mark in the settle coin, COIN-M's `notionalValue` size /
    mark in the coin (a pushed row has neither, nor a mark)."""
    what = "notionalValue" if inverse else "notional"
    notional = optional(raw, what)
    if mark is not None and notional is not None:
        check_notional(symbol, size / mark if inverse else size * mark, notional, what)


def unshown_negative(negative: Decimal, um: Decimal, cm: Decimal) -> Decimal:
    """The part of a portfolio-margin `negativeBalance` that the futures wallets do not already
    show as negative (pitfall 23): a UM or CM wallet below zero is that negative balance, and
    its asset line already subtracts it; only what is left over is a debt line of its own."""
    shown = -(min(um, ZERO) + min(cm, ZERO))
    return max(negative - shown, ZERO)


def _leverage(raw: Mapping[str, Any]) -> Decimal | None:
    """The position's leverage: v3 `positionRisk` has no `leverage` field (v2 had), but its
    `positionInitialMargin` is `|notional| / leverage`, and Binance leverage is a whole number
    (1-125), so the ratio rounded to an integer is the leverage; None without a margin."""
    given = raw.get("leverage")
    if given not in (None, ""):
        return Decimal(str(given))
    margin = number(raw, "positionInitialMargin", default=ZERO)
    notional = number(raw, "notional", default=ZERO)
    if margin <= 0 or notional == 0:
        return None
    return (abs(notional) / margin).to_integral_value()


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


# -- streaming: what a user-data push may patch ----------------------------------------------
#
# How ccxt.pro 4.5.90 subscribes each streamed account, and the events read:
# * `usdm`: `POST /fapi/v1/listenKey`, socket `/private/ws?listenKey=…`; `ACCOUNT_UPDATE`.
# * `portfolio_margin`: `POST /papi/v1/listenKey`, socket `/pm/ws/<listenKey>`;
#   `ACCOUNT_UPDATE` (`fs` UM or CM) and `outboundAccountPosition` (cross margin).
# * `spot`: websocket API `userDataStream.subscribe.signature`; `outboundAccountPosition`.
# * `cross_margin`: `POST /sapi/v1/userListenToken`, then websocket API
#   `userDataStream.subscribe.listenToken`; `outboundAccountPosition`.
# * `coinm`: `POST /dapi/v1/listenKey`, socket `/ws/<listenKey>` (COIN-M's host); `ACCOUNT_UPDATE`.
#
# `balanceUpdate` (a deposit's or transfer's delta) is not applied: Binance sends an
# `outboundAccountPosition` with the absolute balances on every balance change, and a delta
# applied beside it would count the change twice whenever it arrives second. No event carries
# debt (venue-pitfalls 7): a cross-margin or portfolio-margin push is only a cue to read the
# account (`READ_ON_PUSH`), never patched in. `isolated_margin` and `funding` are not streamed
# (ccxt 4.5.90 follows isolated margin one pair per listen token; the funding wallet has no
# user-data stream).

# the account types followed by a stream (their pushes patch the REST snapshot, or cue a read:
# `READ_ON_PUSH`)
STREAMED: frozenset[str] = frozenset({"usdm", "portfolio_margin", "spot", "cross_margin", "coinm"})
# the params of the `watch_balance` / `watch_positions` calls (ccxt's `future` is USDⓈ-M)
WATCH: Mapping[str, Mapping[str, Any]] = {
    "usdm": {"type": "future"},
    "portfolio_margin": {"type": "future", "portfolioMargin": True},
    "spot": {"type": "spot"},
    "cross_margin": {"type": "margin"},
    "coinm": binance_coinm.PARAMS,
}
# the accounts with positions to watch (ccxt sends spot and margin to a futures stream)
WATCH_POSITIONS: frozenset[str] = frozenset({"usdm", "portfolio_margin", "coinm"})
# options of the account's ccxt.pro instance. ccxt 4.5.90's `authenticate` drops `type` from
# the params it hands its delayed `keep_alive_listen_key`, which then takes the type from
# `options['defaultType']` ("spot" unless set), finds no spot listen key and returns without a
# PUT: a futures key would expire after 60 minutes. `defaultType` "future" makes it PUT.
STREAM_OPTIONS: Mapping[str, Mapping[str, Any]] = {
    "usdm": {"defaultType": "future"},
    "portfolio_margin": {"defaultType": "future"},
    "coinm": {"defaultType": "swap", "defaultSubType": "inverse"},  # its PUT goes to the dapi
}
# error codes that mean the stream's key is gone, not that the API key is refused: ccxt reads
# -1125 ("This listenKey does not exist.", a failed keep-alive) as an AuthenticationError
STREAM_LOST_CODES: frozenset[str] = frozenset({"-1125"})
# the accounts whose pushes leave out their debt: a push is a cue to read the account whole at
# once, never patched in (a borrow would show as coins without their debt)
READ_ON_PUSH: frozenset[str] = frozenset({"cross_margin", "portfolio_margin"})
# the asset whose pushed change the patch carries into a pushed account's total: `usdm` moves
# `totalMarginBalance` with USDT's wallet, exact when the total is USDT's alone (single-asset
# mode, whose total leaves the other assets out); `coinm` moves each coin's `marginBalance` with
# that coin's wallet (EVERY_COIN: each total is its coin's own). Any other total a push touched
# is stale until the next REST answer, and is not compared
PUSH_KEEPS_TOTAL: Mapping[str, str] = {"usdm": "USDT", "coinm": EVERY_COIN}


def patch_balance(info: Any, message: Any) -> Any:
    """The raw REST answer `info` with the balances an event names patched; assets it does not
    name keep their REST rows. `ACCOUNT_UPDATE` patches `/fapi/v3/account` (`assets`, with
    account totals) or `/dapi/v1/account` (COIN-M: without), `outboundAccountPosition`
    `/api/v3/account` (`balances`); other events change nothing."""
    event = message.get("e") if isinstance(message, Mapping) else None
    if event == "ACCOUNT_UPDATE":
        if binance_coinm.is_account(info):
            return binance_coinm.patch(info, message)
        return _patch_usdm(info, message)
    if event == "outboundAccountPosition":
        return {**info, "balances": _patch_spot(_get(info, "balances"), message)}
    return info


def _patch_spot(table: Any, message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows keyed by `asset` with each pushed `B[]` row's free `f` and locked `l` written in."""
    found = {text(row, "asset"): dict(row) for row in rows(table, "balances")}
    for row in rows(_get(message, "B"), "B"):
        asset = text(row, "a")
        for key in ("f", "l"):
            number(row, key)  # a number, or the push is malformed
        found[asset] = found.get(asset, {"asset": asset}) | {"free": row["f"], "locked": row["l"]}
    return list(found.values())


def _patch_usdm(info: Any, message: Mapping[str, Any]) -> dict[str, Any]:
    """Each pushed `a.B[]` row sets its asset's `walletBalance` to `wb` (the push's wallet
    balance; its uPnL-free figure is the one REST's `walletBalance` holds); assets it does not
    name keep their REST rows. The push has no account total: `totalMarginBalance` moves by the
    change in USDT's wallet balance (exact in single-asset mode; in multi-assets mode, a USD
    sum of every asset, the venue does not compare it: `PUSH_KEEPS_TOTAL`)."""
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
    """The `a.P[]` rows of a USDⓈ-M or COIN-M `ACCOUNT_UPDATE`, shaped as `/fapi/v3/positionRisk`
    rows (COIN-M's: `/dapi/v1/positionRisk` rows; the venue keeps the REST row's other fields,
    e.g. the leverage). The push has no mark price nor notional: both read empty, never the REST
    row's, which is older than the push (a stale mark as the contract's fallback price, a
    notional of another size)."""
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
            "markPrice": "",
            "notional": "",
            "notionalValue": "",  # COIN-M's
        }
        for row in rows(_get(_get(message, "a"), "P"), "a.P")
    ]


# -- the contract's mark, asked at every cycle (`venues/contract_marks`) ----------------------


def mark_request(market_id: str, market_type: str, inverse: bool) -> tuple[str, dict[str, Any]]:
    """The raw public call that answers a contract's mark: `premiumIndex` of USDⓈ-M (`/fapi`)
    or, for an inverse contract, of COIN-M (`/dapi`)."""
    method = "dapiPublicGetPremiumIndex" if inverse else "fapiPublicGetPremiumIndex"
    return method, {"symbol": market_id}


def mark_answer(answer: Any, market_id: str) -> Decimal:
    """The contract's `markPrice` in a `premiumIndex` answer (an object, or COIN-M's list)."""
    for row in rows(answer if isinstance(answer, list) else [answer], "premiumIndex"):
        if row.get("symbol") == market_id:
            return number(row, "markPrice")
    raise BadField(f"no premium index of {market_id}")


def pushed_market_id(raw: Mapping[str, Any]) -> str:
    """The exchange's market id of a pushed position row (`BTCUSDT`, a perpetual's)."""
    return text(raw, "symbol")


def closed(raw: Mapping[str, Any]) -> bool:
    """Whether a position row is closed (`positionAmt` 0: Binance pushes `pa` "0")."""
    return number(raw, "positionAmt") == 0


def position_key(raw: Mapping[str, Any]) -> tuple[str, str]:
    """Symbol and position side (`BOTH`, or `LONG`/`SHORT` in hedge mode)."""
    return text(raw, "symbol"), str(raw.get("positionSide") or "BOTH")


def stream_end(message: Any) -> str | None:
    """Why a raw frame ends the stream: `listenKeyExpired` (ccxt has no handler for it, and the
    socket stays open but hears nothing more until a new key is used), or the websocket API's
    `eventStreamTerminated` (a listen token expired; ccxt's own error for it says less)."""
    event = message.get("event", message) if isinstance(message, Mapping) else None
    ended = event.get("e") if isinstance(event, Mapping) else None
    if ended == "listenKeyExpired":
        return "listen key expired"
    if ended == "eventStreamTerminated":
        return "event stream terminated"
    return None


def event_ms(message: Any) -> int | None:
    """The event time `E` of a user-data event."""
    value = message.get("E") if isinstance(message, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
