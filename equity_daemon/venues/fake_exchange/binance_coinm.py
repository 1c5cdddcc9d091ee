"""Binance COIN-M futures (`/dapi`) as ccxt 4.5 calls them, for the fake Binance.

The account is `coinm` in the state: per coin, `balance` is the wallet balance and
`unrealized_pnl` the uPnL of the contracts margined in it (the test keeps them consistent with
the positions, as for USDⓈ-M). Its positions are the state's inverse `FakePosition`s (`size` in
USD, as Bybit's): one inverse perpetual `<BASE>USD_PERP` per base of `FakeState.inverse`, each
contract worth `contract_size(base)` USD (100 for BTC, 10 for the others, as on Binance) and
margined and settled in its base coin.

* `GET /dapi/v1/exchangeInfo`, `GET /dapi/v2/leverageBracket`;
* `GET /dapi/v1/premiumIndex`: each perpetual's `markPrice` (the state's mark of its base), a
  list also when one `symbol` is asked for, as COIN-M answers (USDⓈ-M: one object);
* `GET /dapi/v1/account`: `assets[]` (`walletBalance`, `unrealizedProfit`, `marginBalance` =
  wallet + uPnL, in the coin) and `positions[]`;
* `GET /dapi/v1/positionRisk`: `positionAmt` in contracts (signed), `unRealizedProfit` and
  `notionalValue` in the coin;
* user-data stream: `POST /dapi/v1/listenKey` (`PUT` keep-alive), socket `/ws/<listenKey>` (the
  COIN-M stream host's `/ws`, which the market streams' `/ws/<n>` share once `base_url` puts
  both on one server); `push("coinm")` sends an `ACCOUNT_UPDATE` of the coins and positions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from equity_daemon.venues.fake_exchange.server import Json, Route
from equity_daemon.venues.fake_exchange.state import (
    FakePosition,
    FakeState,
    Holding,
    liquidation,
    num,
)

PERPETUAL_DELIVERY = 4133404800000  # Binance's "never" for perpetuals
COINM = "coinm"  # the state's account, and the stream's topic


def contract_size(base: str) -> Decimal:
    """USD per contract of `base`'s COIN-M perpetual."""
    return Decimal(100) if base == "BTC" else Decimal(10)


def symbol(base: str) -> str:
    return f"{base}USD_PERP"


class CoinMargined:
    """**Mixin** of the fake Binance: the COIN-M routes and events over its `state`."""

    state: FakeState

    def coinm_routes(self) -> Sequence[Route]:
        return (
            Route("GET", "/dapi/v1/exchangeInfo", self.coinm_info),
            Route("GET", "/dapi/v2/leverageBracket", self.coinm_brackets, private=True),
            Route("GET", "/dapi/v1/premiumIndex", self.coinm_premium_index),
            Route("GET", "/dapi/v1/account", self.coinm_account, private=True),
            Route("GET", "/dapi/v1/positionRisk", self.coinm_position_risk, private=True),
        )

    def coinm_positions(self) -> list[FakePosition]:
        return [p for p in self.state.positions if p.inverse and p.size]

    def coinm_info(self, query: Mapping[str, str]) -> Json:
        return exchange_info(self.state, [self._coinm_symbol(base) for base in self.state.inverse])

    def _coinm_symbol(self, base: str) -> Json:
        return {
            "symbol": symbol(base),
            "pair": f"{base}USD",
            "contractType": "PERPETUAL",
            "deliveryDate": PERPETUAL_DELIVERY,
            "onboardDate": 1597042800000,
            "contractStatus": "TRADING",
            "contractSize": int(contract_size(base)),
            "marginAsset": base,
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": base,
            "quoteAsset": "USD",
            "pricePrecision": 1,
            "quantityPrecision": 0,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "equalQtyPrecision": 4,
            "triggerProtect": "0.0500",
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.1", "maxPrice": "4520958"},
                {"filterType": "LOT_SIZE", "minQty": "1", "maxQty": "1000000", "stepSize": "1"},
            ],
            "orderTypes": ["LIMIT", "MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
            "liquidationFee": "0.015000",
            "marketTakeBound": "0.05",
        }

    def coinm_brackets(self, query: Mapping[str, str]) -> Json:
        return [
            {
                "symbol": symbol(base),
                "notionalCoef": 1.0,
                "brackets": [
                    {
                        "bracket": 1,
                        "initialLeverage": 125,
                        "qtyCap": 5,
                        "qtylFloor": 0,
                        "maintMarginRatio": 0.004,
                        "cum": 0.0,
                    }
                ],
            }
            for base in self.state.inverse
        ]

    def coinm_premium_index(self, query: Mapping[str, str]) -> Json:
        now = self.state.now_ms()
        asked = query.get("symbol")
        return [
            {
                "symbol": symbol(base),
                "pair": f"{base}USD",
                "markPrice": num(self.state.mark(base)),
                "indexPrice": num(self.state.prices.get(base, Decimal(0))),
                "estimatedSettlePrice": num(self.state.mark(base)),
                "lastFundingRate": "0.00010000",
                "interestRate": "0.00010000",
                "nextFundingTime": now - now % 28_800_000 + 28_800_000,
                "time": now,
            }
            for base in self.state.inverse
            if asked in (None, symbol(base))
        ]

    def coinm_account(self, query: Mapping[str, str]) -> Json:
        now = self.state.now_ms()
        return {
            "assets": [futures_asset(a, h, now) for a, h in self.state.account(COINM).items()],
            "positions": [
                {
                    "symbol": symbol(p.base),
                    "positionAmt": num(self._contracts(p)),
                    "initialMargin": "0",
                    "maintMargin": "0",
                    "unrealizedProfit": num(self.state.position_pnl(p)),
                    "positionInitialMargin": "0",
                    "openOrderInitialMargin": "0",
                    "leverage": str(p.leverage),
                    "isolated": p.margin_mode == "isolated",
                    "positionSide": "BOTH",
                    "entryPrice": num(p.entry_price),
                    "breakEvenPrice": num(p.entry_price),
                    "maxQty": "100",
                    "updateTime": p.updated_ms,
                    "notionalValue": num(self._notional(p)),
                    "isolatedWallet": "0",
                }
                for p in self.coinm_positions()
            ],
            "canDeposit": True,
            "canTrade": True,
            "canWithdraw": True,
            "feeTier": 0,
            "updateTime": 0,
        }

    def coinm_position_risk(self, query: Mapping[str, str]) -> Json:
        return [
            {
                "symbol": symbol(p.base),
                "positionAmt": num(self._contracts(p)),
                "entryPrice": num(p.entry_price),
                "breakEvenPrice": num(p.entry_price),
                "markPrice": num(self.state.position_mark(p)),
                "unRealizedProfit": num(self.state.position_pnl(p)),
                "liquidationPrice": liquidation(p, "0"),
                "leverage": str(p.leverage),
                "maxQty": "100",
                "marginType": p.margin_mode,
                "isolatedMargin": "0",
                "isAutoAddMargin": "false",
                "positionSide": "BOTH",
                "notionalValue": num(self._notional(p)),
                "isolatedWallet": "0",
                "updateTime": p.updated_ms,
            }
            for p in self.coinm_positions()
        ]

    def coinm_update(self, coins: Sequence[str] | None) -> Json:
        """An `ACCOUNT_UPDATE` of the COIN-M account: the wallets of `coins` (all if None) and
        every inverse position (a closed one `pa` "0")."""
        now = self.state.now_ms()
        balances = [
            {"a": asset, "wb": num(h.balance), "cw": num(h.balance), "bc": "0"}
            for asset, h in self.state.account(COINM).items()
            if coins is None or asset in coins
        ]
        positions = [
            {
                "s": symbol(p.base),
                "pa": num(self._contracts(p)),
                "ep": num(p.entry_price),
                "bep": num(p.entry_price),
                "cr": "0",
                "up": num(self.state.position_pnl(p)),
                "mt": p.margin_mode,
                "iw": "0",
                "ps": "BOTH",
            }
            for p in self.state.positions
            if p.inverse
        ]
        return {
            "e": "ACCOUNT_UPDATE",
            "E": now,
            "T": now,
            "i": "SfsR",
            "a": {"m": "ORDER", "B": balances, "P": positions},
        }

    def _contracts(self, p: FakePosition) -> Decimal:
        return p.size / contract_size(p.base)

    def _notional(self, p: FakePosition) -> Decimal:
        """In the coin, signed: the contracts' USD at the mark."""
        return p.size / self.state.position_mark(p)


def exchange_info(state: FakeState, symbols: list[Json]) -> dict[str, Json]:
    """An `exchangeInfo` answer (spot's, USDⓈ-M's and COIN-M's share this much) of `symbols`."""
    return {
        "timezone": "UTC",
        "serverTime": state.now_ms(),
        "rateLimits": [],
        "exchangeFilters": [],
        "symbols": symbols,
    }


def futures_asset(asset: str, h: Holding, now: int) -> dict[str, Json]:
    """A futures wallet's row, as USDⓈ-M's and COIN-M's account answers both have it."""
    margin_balance = h.balance + h.unrealized_pnl
    available = margin_balance - h.initial_margin
    return {
        "asset": asset,
        "walletBalance": num(h.balance),
        "unrealizedProfit": num(h.unrealized_pnl),
        "marginBalance": num(margin_balance),
        "maintMargin": num(h.maint_margin),
        "initialMargin": num(h.initial_margin),
        "positionInitialMargin": num(h.initial_margin),
        "openOrderInitialMargin": "0",
        "crossWalletBalance": num(h.balance),
        "crossUnPnl": num(h.unrealized_pnl),
        "availableBalance": num(available),
        "maxWithdrawAmount": num(available),
        "updateTime": now,  # ccxt skips an asset whose updateTime is 0
    }
