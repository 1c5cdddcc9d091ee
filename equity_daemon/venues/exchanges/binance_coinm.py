"""Binance COIN-M futures (`coinm`, `/dapi`): coin-margined inverse perpetuals, an account a coin.

COIN-M keeps a wallet per margin coin, and each contract is margined and settled in its base coin
(`BTCUSD_PERP` in BTC, 100 USD a contract; `ETHUSD_PERP` in ETH, 10 USD). Binance's own total is
per coin too. So each coin is an account of its own here, `coinm:<COIN>` (`coinm:ETH`):

* `GET /dapi/v1/account` `assets[]` `walletBalance` -> asset, in the coin;
* each open perpetual (`GET /dapi/v1/positionRisk`: `positionAmt` contracts of the market's
  `contractSize` USD, `unRealizedProfit` and `notionalValue` in the coin) -> a hedge line and
  its two inverse legs (`exchanges.Perp` with `inverse=True`: `Q / entry` of the coin and `−Q`
  of the contract, `binance:ETH/USD:ETH`, priced at its `/dapi/v1/premiumIndex` mark), in the
  account of the coin it settles in (`Lines.sub_account`);
* total: the coin's `marginBalance` (wallet + uPnL, in the coin), with the `unrealizedProfit`
  of the same row, compared at the marks `positionRisk` carried (`exchanges.perp`).

A coin with nothing in it (COIN-M lists every coin) has no line and no total.

The user-data stream (ccxt.pro `watch_balance`/`watch_positions` with `subType` inverse:
`POST /dapi/v1/listenKey`, socket `wss://dstream.binance.com/ws/<listenKey>`) pushes
`ACCOUNT_UPDATE`: `patch` sets each named coin's `walletBalance` to its `wb` and moves its
`marginBalance` by the same change (exact: the total is the coin's own), so the total is still
comparable; positions are patched as USDⓈ-M's are (`binance.pushed_positions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from equity_daemon.venues.exchanges import BadField, Lines, Perp, number, rows, text

ACCOUNT = "coinm"
# ccxt's params for every COIN-M call: balance, positions, and the stream's watches
PARAMS: Mapping[str, Any] = {"type": "swap", "subType": "inverse"}
# what a coin the REST answer did not have starts from
NEW_ROW: Mapping[str, str] = {"walletBalance": "0", "marginBalance": "0", "unrealizedProfit": "0"}


def balance(lines: Lines, info: Any) -> None:
    """Each coin's wallet and Binance's total for it, in the coin's own account."""
    for row in rows(_assets(info), "assets"):
        asset = text(row, "asset")
        wallet, total = number(row, "walletBalance"), number(row, "marginBalance")
        if wallet == 0 and total == 0:
            continue
        coin = _coin(lines, asset)
        coin.asset(asset, wallet)
        coin.total(total, asset, "marginBalance", [(asset, number(row, "unrealizedProfit"))])


def perp(lines: Lines, found: Perp) -> None:
    """An inverse perpetual, in the account of the coin it is margined in."""
    _coin(lines, found.settle).perp(found)


def patch(info: Any, message: Mapping[str, Any]) -> dict[str, Any]:
    """`/dapi/v1/account` with the wallets of an `ACCOUNT_UPDATE` (`a.B[]`) written in; each
    coin's `marginBalance` moves with its wallet. Coins it does not name keep their rows."""
    assets = {text(row, "asset"): dict(row) for row in rows(_assets(info), "assets")}
    update = message.get("a")
    if not isinstance(update, Mapping):
        raise BadField("no a")
    for row in rows(update.get("B"), "a.B"):
        asset = text(row, "a")
        wallet = number(row, "wb")
        old = assets.get(asset, dict(NEW_ROW, asset=asset))
        moved = number(old, "marginBalance") + wallet - number(old, "walletBalance")
        assets[asset] = old | {"walletBalance": row["wb"], "marginBalance": str(moved)}
    return {**info, "assets": list(assets.values())}


def is_account(info: Any) -> bool:
    """Whether a raw answer is `/dapi/v1/account` (USDⓈ-M's has account-wide totals)."""
    return isinstance(info, Mapping) and "assets" in info and "totalMarginBalance" not in info


def _coin(lines: Lines, coin: str) -> Lines:
    return lines.sub_account(f"{lines.account}:{coin}")


def _assets(info: Any) -> Any:
    if not isinstance(info, Mapping) or "assets" not in info:
        raise BadField("no assets")
    return info["assets"]
