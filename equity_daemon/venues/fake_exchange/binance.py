"""Binance as ccxt 4.5 calls it: spot, cross and isolated margin, USDⓈ-M futures, funding and
portfolio-margin balances, USDⓈ-M positions, deposit and withdrawal history, tickers and marks.

Accounts: `spot`, `margin` (cross), `isolated/<SYMBOL>` (e.g. `isolated/ETHUSDT`), `futures`
(USDⓈ-M), `funding`, `portfolio`. Numbers are strings, as Binance sends them, except where
Binance itself sends JSON numbers (leverage brackets, times, deposit statuses).

The USDⓈ-M user-data stream: `POST /fapi/v1/listenKey` issues a key (`PUT` keeps it alive;
both need only the API-key header, as on Binance), the websocket `/private/ws?listenKey=…`
takes it, and `push("account")` sends an `ACCOUNT_UPDATE` event (`a.B` balances, `a.P`
positions) from the current state to every socket holding a valid key.

The public market streams (`/ws/<n>`, as ccxt numbers its sockets) take `SUBSCRIBE` to
`<symbol>@miniTicker` (ccxt's `watch_ticker`; answered `{"result": null, "id": …}`, no
snapshot, as on Binance), and `push("<symbol>@miniTicker")` sends that symbol's
`24hrMiniTicker` event (Binance sends one a second).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from aiohttp import WSMsgType, web

from equity_daemon.venues.fake_exchange.server import Dialect, Json, Route, WebsocketHandler
from equity_daemon.venues.fake_exchange.state import (
    ZERO,
    FakePosition,
    FakeState,
    Holding,
    Market,
    Transfer,
    num,
)

PRICE_FILTER = {
    "filterType": "PRICE_FILTER",
    "minPrice": "0.01",
    "maxPrice": "1000000",
    "tickSize": "0.01",
}
LOT_SIZE = {"filterType": "LOT_SIZE", "minQty": "0.0001", "maxQty": "9000", "stepSize": "0.0001"}
PERPETUAL_DELIVERY = 4133404800000  # Binance's "never" for perpetuals
# a `24hrMiniTicker` stream event's fields, and the REST ticker's name for each
MINI_TICKER_EVENT = {
    "s": "symbol",
    "c": "lastPrice",
    "o": "openPrice",
    "h": "highPrice",
    "l": "lowPrice",
    "v": "volume",
    "q": "quoteVolume",
}


_keys = itertools.count(1)


class BinanceDialect(Dialect):
    name = "binance"

    def __init__(self, state: FakeState) -> None:
        super().__init__(state)
        self.listen_keys: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._market_sockets: dict[web.WebSocketResponse, set[str]] = {}  # socket -> its topics

    def routes(self) -> Sequence[Route]:
        return (
            Route("GET", "/api/v3/time", self.time),
            Route("GET", "/fapi/v1/time", self.time),
            Route("GET", "/api/v3/exchangeInfo", self.spot_info),
            Route("GET", "/fapi/v1/exchangeInfo", self.futures_info),
            Route("GET", "/api/v3/ticker/24hr", self.spot_tickers),
            Route("GET", "/fapi/v1/ticker/24hr", self.futures_tickers),
            Route("GET", "/fapi/v1/premiumIndex", self.premium_index),
            Route("GET", "/api/v3/account", self.spot_account, private=True),
            Route("GET", "/sapi/v1/margin/account", self.margin_account, private=True),
            Route("GET", "/sapi/v1/margin/isolated/account", self.isolated_account, private=True),
            Route("GET", "/fapi/v3/account", self.futures_account, private=True),
            Route("GET", "/fapi/v1/multiAssetsMargin", self.multi_assets, private=True),
            Route("POST", "/sapi/v1/asset/get-funding-asset", self.funding, private=True),
            Route("GET", "/papi/v1/balance", self.portfolio, private=True),
            Route("GET", "/papi/v1/account", self.portfolio_account, private=True),
            Route("GET", "/fapi/v1/leverageBracket", self.leverage_brackets, private=True),
            Route("GET", "/fapi/v3/positionRisk", self.position_risk, private=True),
            Route("GET", "/sapi/v1/capital/deposit/hisrec", self.deposits, private=True),
            Route("GET", "/sapi/v1/capital/withdraw/history", self.withdrawals, private=True),
            Route("POST", "/fapi/v1/listenKey", self.new_listen_key),
            Route("PUT", "/fapi/v1/listenKey", self.keep_listen_key),
        )

    def websockets(self) -> Sequence[tuple[str, WebsocketHandler]]:
        return (("/private/ws", self.user_data_stream), ("/ws/{n}", self.market_stream))

    # -- the USDⓈ-M user-data stream -----------------------------------------------------------

    def new_listen_key(self, query: Mapping[str, str]) -> Json:
        if self.refuse_stream_auth:
            return {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        key = f"fakelistenkey{next(_keys):08d}"
        self.listen_keys.add(key)
        return {"listenKey": key}

    def keep_listen_key(self, query: Mapping[str, str]) -> Json:
        if query.get("listenKey") not in self.listen_keys:
            return {"code": -1125, "msg": "This listenKey does not exist."}
        return {}

    async def user_data_stream(self, request: web.Request) -> web.StreamResponse:
        """`/private/ws?listenKey=…`: every event of the account; no subscribe, no login."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        if request.query.get("listenKey") not in self.listen_keys:
            await socket.close(code=1008, message=b"invalid listenKey")
            return socket
        self._sockets.append(socket)
        try:
            async for message in socket:
                if message.type is WSMsgType.ERROR:
                    break
        finally:
            self._sockets.remove(socket)
        return socket

    async def push(self, topic: str, coins: Sequence[str] | None = None) -> int:
        """`account`: an `ACCOUNT_UPDATE` with the futures balances (only `coins`, if named)
        and every USDⓈ-M position (a closed one with `pa` "0")."""
        if self._ticker_event(topic) is not None:
            return await self.send(topic, self._ticker_event(topic))
        if topic != "account":
            raise ValueError(f"binance has no private topic {topic!r} here")
        now = self.state.now_ms()
        balances = [
            {"a": asset, "wb": num(h.balance), "cw": num(h.balance), "bc": "0"}
            for asset, h in self.state.account("futures").items()
            if coins is None or asset in coins
        ]
        positions = [
            {
                "s": p.base + p.settle,
                "pa": num(p.size),
                "ep": num(p.entry_price),
                "bep": num(p.entry_price),
                "cr": "0",
                "up": num(self.state.position_pnl(p)),
                "mt": "cross",
                "iw": "0",
                "ps": "BOTH",
                "ma": p.settle,
            }
            for p in self.state.positions
        ]
        event = {
            "e": "ACCOUNT_UPDATE",
            "E": now,
            "T": now,
            "a": {"m": "ORDER", "B": balances, "P": positions},
        }
        for socket in list(self._sockets):
            await socket.send_json(event)
        return len(self._sockets)

    async def drop_streams(self) -> None:
        for socket in [*self._sockets, *self._market_sockets]:
            await socket.close()

    @property
    def subscribers(self) -> dict[str, int]:
        counts = {"account": len(self._sockets)} if self._sockets else {}
        for topics in self._market_sockets.values():
            for topic in topics:
                counts[topic] = counts.get(topic, 0) + 1
        return counts

    # -- the public market streams: `SUBSCRIBE` to `<symbol>@miniTicker` -----------------------

    async def market_stream(self, request: web.Request) -> web.StreamResponse:
        """`/ws/<n>`: raw market streams, subscribed to by `SUBSCRIBE` frames."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        topics: set[str] = set()
        self._market_sockets[socket] = topics
        try:
            async for message in socket:
                if message.type is WSMsgType.TEXT:
                    await socket.send_json(self.market_answer(topics, json.loads(message.data)))
        finally:
            del self._market_sockets[socket]
        return socket

    def market_answer(self, topics: set[str], message: Json) -> Json:
        """Binance's answer to one frame: a subscription's `result`, or its error."""
        params = [str(param) for param in message.get("params") or []]
        if message.get("method") != "SUBSCRIBE" or any(
            self._ticker_event(param) is None for param in params
        ):
            return {"error": {"code": 2, "msg": "Invalid request"}, "id": message.get("id")}
        topics.update(params)
        return {"result": None, "id": message.get("id")}

    async def send(self, topic: str, message: Json) -> int:
        """Send `message` as it is (a test's malformed push) to the subscribers of `topic`."""
        sockets = [socket for socket, topics in self._market_sockets.items() if topic in topics]
        for socket in sockets:
            await socket.send_json(message)
        return len(sockets)

    def _ticker_event(self, topic: str) -> Json | None:
        """The `24hrMiniTicker` event of a `<symbol>@miniTicker` topic (its REST ticker's fields
        under the stream's one-letter names), if the spot market is listed."""
        symbol, _, channel = topic.partition("@")
        rows = [
            self._ticker(m, spot=True)
            for m in self.state.markets
            if (m.base + m.quote).lower() == symbol
        ]
        if channel != "miniTicker" or not rows:
            return None
        event = {short: rows[0][long] for short, long in MINI_TICKER_EVENT.items()}
        return {"e": "24hrMiniTicker", "E": self.state.now_ms(), **event}

    def signed(self, request: web.Request, form: Mapping[str, str]) -> bool:
        has_signature = "signature" in request.query or "signature" in form
        return bool(request.headers.get("X-MBX-APIKEY")) and has_signature

    def auth_error(self) -> tuple[int, Json]:
        return 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}

    def rate_limit_error(self) -> Json:
        return {
            "code": -1003,
            "msg": "Too many requests; current limit of IP is 6000 requests per minute.",
        }

    def not_found(self) -> Json:
        return {"code": -1100, "msg": "Illegal characters found in a parameter."}

    # -- public --------------------------------------------------------------------------------

    def time(self, query: Mapping[str, str]) -> Json:
        return {"serverTime": self.state.now_ms()}

    def spot_info(self, query: Mapping[str, str]) -> Json:
        return {
            "timezone": "UTC",
            "serverTime": self.state.now_ms(),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [self._spot_symbol(m) for m in self.state.markets],
        }

    def _spot_symbol(self, market: Market) -> Json:
        return {
            "symbol": market.base + market.quote,
            "status": "TRADING",
            "baseAsset": market.base,
            "baseAssetPrecision": 8,
            "quoteAsset": market.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": True,
            "filters": [PRICE_FILTER, LOT_SIZE],
            "permissions": [],
            "permissionSets": [["SPOT", "MARGIN"]],
        }

    def futures_info(self, query: Mapping[str, str]) -> Json:
        return {
            "timezone": "UTC",
            "serverTime": self.state.now_ms(),
            "futuresType": "U_MARGINED",
            "rateLimits": [],
            "exchangeFilters": [],
            "assets": [
                {"asset": quote, "marginAvailable": True, "autoAssetExchange": "0"}
                for quote in sorted({m.quote for m in self.state.perps()})
            ],
            "symbols": [self._perp_symbol(m) for m in self.state.perps()],
        }

    def _perp_symbol(self, market: Market) -> Json:
        return {
            "symbol": market.base + market.quote,
            "pair": market.base + market.quote,
            "contractType": "PERPETUAL",
            "deliveryDate": PERPETUAL_DELIVERY,
            "onboardDate": 1569398400000,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": market.base,
            "quoteAsset": market.quote,
            "marginAsset": market.quote,
            "pricePrecision": 2,
            "quantityPrecision": 3,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "settlePlan": 0,
            "triggerProtect": "0.0500",
            "filters": [PRICE_FILTER, LOT_SIZE],
            "orderTypes": ["LIMIT", "MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
        }

    def spot_tickers(self, query: Mapping[str, str]) -> Json:
        return _one_or_all([self._ticker(m, spot=True) for m in self.state.markets], query)

    def futures_tickers(self, query: Mapping[str, str]) -> Json:
        return _one_or_all([self._ticker(m, spot=False) for m in self.state.perps()], query)

    def _ticker(self, market: Market, spot: bool) -> Json:
        last = self.state.prices.get(market.base, ZERO) / self.state.usd(market.quote)
        now = self.state.now_ms()
        ticker = {
            "symbol": market.base + market.quote,
            "priceChange": "0",
            "priceChangePercent": "0",
            "weightedAvgPrice": num(last),
            "lastPrice": num(last),
            "lastQty": "1",
            "openPrice": num(last),
            "highPrice": num(last),
            "lowPrice": num(last),
            "volume": "1000",
            "quoteVolume": num(last * 1000),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": 1,
            "lastId": 2,
            "count": 2,
        }
        if spot:
            ticker |= {"bidPrice": num(last), "bidQty": "1", "askPrice": num(last), "askQty": "1"}
        return ticker

    def premium_index(self, query: Mapping[str, str]) -> Json:
        now = self.state.now_ms()
        rows = [
            {
                "symbol": m.base + m.quote,
                "markPrice": num(self.state.mark(m.base)),
                "indexPrice": num(self.state.prices.get(m.base, ZERO)),
                "estimatedSettlePrice": num(self.state.mark(m.base)),
                "lastFundingRate": "0.00010000",
                "interestRate": "0.00010000",
                "nextFundingTime": now - now % 28_800_000 + 28_800_000,
                "time": now,
            }
            for m in self.state.perps()
        ]
        return _one_or_all(rows, query)

    # -- balances ------------------------------------------------------------------------------

    def spot_account(self, query: Mapping[str, str]) -> Json:
        held = self.state.account("spot")
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": "0.001", "taker": "0.001", "buyer": "0", "seller": "0"},
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.state.now_ms(),
            "accountType": "SPOT",
            "balances": [
                {"asset": asset, "free": num(h.free), "locked": num(h.locked)}
                for asset, h in held.items()
            ],
            "permissions": ["SPOT"],
            "uid": 1000001,
        }

    def _margin_asset(self, asset: str, h: Holding) -> dict[str, Json]:
        return {
            "asset": asset,
            "borrowed": num(h.borrowed),
            "free": num(h.free),
            "interest": num(h.interest),
            "locked": num(h.locked),
            "netAsset": num(h.balance - h.debt),
        }

    def _btc(self, usd: Decimal) -> str:
        btc = self.state.usd("BTC")
        return num(usd / btc if btc else ZERO)

    def margin_account(self, query: Mapping[str, str]) -> Json:
        held = self.state.account("margin")
        assets = sum((h.balance * self.state.usd(a) for a, h in held.items()), ZERO)
        debt = sum((h.debt * self.state.usd(a) for a, h in held.items()), ZERO)
        return {
            "created": True,
            "borrowEnabled": True,
            "marginLevel": num(assets / debt) if debt else "999",
            "collateralMarginLevel": num(assets / debt) if debt else "999",
            "totalAssetOfBtc": self._btc(assets),
            "totalLiabilityOfBtc": self._btc(debt),
            "totalNetAssetOfBtc": self._btc(assets - debt),
            "TotalCollateralValueInUSDT": num(assets),
            "totalOpenOrderLossInUsdt": "0",
            "tradeEnabled": True,
            "transferInEnabled": True,
            "transferOutEnabled": True,
            "accountType": "MARGIN_1",
            "userAssets": [self._margin_asset(a, h) for a, h in held.items()],
        }

    def isolated_account(self, query: Mapping[str, str]) -> Json:
        pairs = []
        assets = debt = ZERO
        for market in self.state.markets:
            symbol = market.base + market.quote
            held = self.state.holdings.get(f"isolated/{symbol}")
            if held is None:
                continue
            sides = {}
            for key, asset in (("baseAsset", market.base), ("quoteAsset", market.quote)):
                h = held.get(asset, Holding())
                assets += h.balance * self.state.usd(asset)
                debt += h.debt * self.state.usd(asset)
                sides[key] = self._margin_asset(asset, h) | {
                    "borrowEnabled": True,
                    "repayEnabled": True,
                    "netAssetOfBtc": self._btc((h.balance - h.debt) * self.state.usd(asset)),
                    "totalAsset": num(h.balance),
                }
            pairs.append(
                {
                    "symbol": symbol,
                    "isolatedCreated": True,
                    "enabled": True,
                    "marginLevel": "999",
                    "marginLevelStatus": "EXCESSIVE",
                    "marginRatio": "5",
                    "indexPrice": num(self.state.prices.get(market.base, ZERO)),
                    "liquidatePrice": "0",
                    "liquidateRate": "0",
                    "tradeEnabled": True,
                    **sides,
                }
            )
        return {
            "assets": pairs,
            "totalAssetOfBtc": self._btc(assets),
            "totalLiabilityOfBtc": self._btc(debt),
            "totalNetAssetOfBtc": self._btc(assets - debt),
        }

    def futures_account(self, query: Mapping[str, str]) -> Json:
        held = self.state.account("futures")
        now = self.state.now_ms()

        def usd(pick: str) -> str:  # multi-assets mode: every asset, in USD; else only USDT
            rows = ((a, _futures_asset(a, h, now)[pick]) for a, h in held.items())
            counted = (r for r in rows if self.state.multi_assets or r[0] == "USDT")
            return num(sum((Decimal(v) * self.state.usd(a) for a, v in counted), ZERO))

        return {
            "totalInitialMargin": usd("initialMargin"),
            "totalMaintMargin": usd("maintMargin"),
            "totalWalletBalance": usd("walletBalance"),
            "totalUnrealizedProfit": usd("unrealizedProfit"),
            "totalMarginBalance": usd("marginBalance"),
            "totalPositionInitialMargin": usd("positionInitialMargin"),
            "totalOpenOrderInitialMargin": "0",
            "totalCrossWalletBalance": usd("crossWalletBalance"),
            "totalCrossUnPnl": usd("crossUnPnl"),
            "availableBalance": usd("availableBalance"),
            "maxWithdrawAmount": usd("maxWithdrawAmount"),
            "assets": [_futures_asset(a, h, now) for a, h in held.items()],
            "positions": [
                {
                    "symbol": p.base + p.settle,
                    "positionSide": "BOTH",
                    "positionAmt": num(p.size),
                    "unrealizedProfit": num(self.state.position_pnl(p)),
                    "isolatedMargin": "0",
                    "notional": num(p.size * self.state.position_mark(p)),
                    "isolatedWallet": "0",
                    "initialMargin": num(abs(p.size) * self.state.position_mark(p) / p.leverage),
                    "maintMargin": num(abs(p.size) * self.state.position_mark(p) / 200),
                    "updateTime": p.updated_ms,
                }
                for p in self.state.positions
            ],
        }

    def multi_assets(self, query: Mapping[str, str]) -> Json:
        return {"multiAssetsMargin": self.state.multi_assets}

    def funding(self, query: Mapping[str, str]) -> Json:
        return [
            {
                "asset": asset,
                "free": num(h.free),
                "locked": num(h.locked),
                "freeze": "0",
                "withdrawing": "0",
                "btcValuation": self._btc(h.balance * self.state.usd(asset)),
            }
            for asset, h in self.state.account("funding").items()
            if not query.get("asset") or query["asset"] == asset
        ]

    def portfolio(self, query: Mapping[str, str]) -> Json:
        """`/papi/v1/balance`: the cross-margin wallet is account `portfolio`, the UM and CM
        futures wallets `portfolio/um` and `portfolio/cm` (their `balance` the wallet balance,
        negative when losses exceed it; `unrealized_pnl` their uPnL). `negativeBalance` is the
        part of the futures wallets below zero, as a positive amount: the same money the
        negative wallet shows, which a netting must not subtract twice."""
        now = self.state.now_ms()
        cross, um, cm = (self.state.account(f"portfolio{s}") for s in ("", "/um", "/cm"))
        rows = []
        for asset in sorted({*cross, *um, *cm}):
            h, u, c = (held.get(asset, Holding()) for held in (cross, um, cm))
            negative = -(min(u.balance, ZERO) + min(c.balance, ZERO))
            rows.append(
                {
                    "asset": asset,
                    "totalWalletBalance": num(h.balance + u.balance + c.balance),
                    "crossMarginAsset": num(h.balance),
                    "crossMarginBorrowed": num(h.borrowed),
                    "crossMarginFree": num(h.free),
                    "crossMarginInterest": num(h.interest),
                    "crossMarginLocked": num(h.locked),
                    "umWalletBalance": num(u.balance),
                    "umUnrealizedPNL": num(h.unrealized_pnl + u.unrealized_pnl),
                    "cmWalletBalance": num(c.balance),
                    "cmUnrealizedPNL": num(c.unrealized_pnl),
                    "updateTime": now,
                    "negativeBalance": num(negative),
                }
            )
        return rows

    def portfolio_account(self, query: Mapping[str, str]) -> Json:
        wallets = [self.state.account(f"portfolio{s}") for s in ("", "/um", "/cm")]
        equity = maint = ZERO
        for held in wallets:
            equity += sum((h.equity * self.state.usd(a) for a, h in held.items()), ZERO)
            maint += sum((h.maint_margin * self.state.usd(a) for a, h in held.items()), ZERO)
        return {
            "uniMMR": num(equity / maint) if maint else "999",
            "accountEquity": num(equity),
            "actualEquity": num(equity),
            "accountInitialMargin": "0",
            "accountMaintMargin": num(maint),
            "accountStatus": "NORMAL",
            "virtualMaxWithdrawAmount": num(equity),
            "totalAvailableBalance": num(equity),
            "totalMarginOpenLoss": "0",
            "updateTime": self.state.now_ms(),
        }

    # -- positions -----------------------------------------------------------------------------

    def leverage_brackets(self, query: Mapping[str, str]) -> Json:
        return [
            {
                "symbol": m.base + m.quote,
                "notionalCoef": 1.0,
                "brackets": [
                    {
                        "bracket": 1,
                        "initialLeverage": 125,
                        "notionalCap": 50000,
                        "notionalFloor": 0,
                        "maintMarginRatio": 0.004,
                        "cum": 0.0,
                    },
                    {
                        "bracket": 2,
                        "initialLeverage": 100,
                        "notionalCap": 600000,
                        "notionalFloor": 50000,
                        "maintMarginRatio": 0.005,
                        "cum": 50.0,
                    },
                ],
            }
            for m in self.state.perps()
        ]

    def position_risk(self, query: Mapping[str, str]) -> Json:
        return [self._risk(p) for p in self.state.positions if p.size]

    def _risk(self, p: FakePosition) -> Json:
        mark = self.state.position_mark(p)
        notional = p.size * mark
        return {
            "symbol": p.base + p.settle,
            "positionSide": "BOTH",
            "positionAmt": num(p.size),
            "entryPrice": num(p.entry_price),
            "breakEvenPrice": num(p.entry_price),
            "markPrice": num(mark),
            "unRealizedProfit": num(self.state.position_pnl(p)),
            "liquidationPrice": "0",
            "isolatedMargin": "0",
            "notional": num(notional),
            "marginAsset": p.settle,
            "isolatedWallet": "0",
            "initialMargin": num(abs(notional) / p.leverage),
            "maintMargin": num(abs(notional) / 200),
            "positionInitialMargin": num(abs(notional) / p.leverage),
            "openOrderInitialMargin": "0",
            "adl": 1,
            "bidNotional": "0",
            "askNotional": "0",
            "updateTime": p.updated_ms,
        }

    # -- money in transit ----------------------------------------------------------------------

    def deposits(self, query: Mapping[str, str]) -> Json:
        return [
            {
                "id": t.id,
                "amount": num(t.amount),
                "coin": t.asset,
                "network": t.network,
                "status": int(t.status),
                "address": t.address,
                "addressTag": "",
                "txId": t.txid,
                "insertTime": t.at_ms,
                "completeTime": t.at_ms,
                "transferType": 0,
                "confirmTimes": "12/12",
                "unlockConfirm": 0,
                "walletType": 0,
            }
            for t in _window(self.state.deposits, query)
        ]

    def withdrawals(self, query: Mapping[str, str]) -> Json:
        return [
            {
                "id": t.id,
                "amount": num(t.amount),
                "transactionFee": num(t.fee),
                "coin": t.asset,
                "status": int(t.status),
                "address": t.address,
                "txId": t.txid,
                "applyTime": _utc_text(t.at_ms),
                "network": t.network,
                "transferType": 0,
                "info": "",
                "confirmNo": 12,
                "walletType": 0,
                "txKey": "",
                "completeTime": _utc_text(t.at_ms),
            }
            for t in _window(self.state.withdrawals, query)
        ]


def _one_or_all(rows: list[Json], query: Mapping[str, str]) -> Json:
    """Binance answers `?symbol=` with one object (an error body when unknown), else a list."""
    symbol = query.get("symbol")
    if symbol is None:
        return rows
    found = [row for row in rows if row["symbol"] == symbol]
    return found[0] if found else {"code": -1121, "msg": "Invalid symbol."}


def _futures_asset(asset: str, h: Holding, now: int) -> dict[str, Json]:
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


def _window(transfers: list[Transfer], query: Mapping[str, str]) -> list[Transfer]:
    start = int(query.get("startTime", 0))
    end = int(query.get("endTime", 2**63))
    coin = query.get("coin")
    return [t for t in transfers if start <= t.at_ms <= end and (coin is None or coin == t.asset)]


def _utc_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
