"""Binance as ccxt 4.5 calls it: spot, cross and isolated margin, USDⓈ-M futures, funding and
portfolio-margin balances, USDⓈ-M positions (also as portfolio margin's UM positions, from the
same `FakeState.positions`: the linear ones), deposit and withdrawal history, tickers and marks;
COIN-M futures (`/dapi`, the inverse positions) in `binance_coinm`.

Accounts: `spot`, `margin` (cross), `isolated/<SYMBOL>` (e.g. `isolated/ETHUSDT`), `futures`
(USDⓈ-M), `funding`, `portfolio`, `coinm` (COIN-M). Numbers are strings, as Binance sends them,
except where Binance itself sends JSON numbers (leverage brackets, times, deposit statuses).

User-data streams, as ccxt.pro follows them (`push(topic)` sends from the current state):

* `account` (USDⓈ-M): `POST /fapi/v1/listenKey`, socket `/private/ws?listenKey=…`;
  `ACCOUNT_UPDATE`.
* `portfolio`: `POST /papi/v1/listenKey`, socket `/pm/ws/<listenKey>`;
  `outboundAccountPosition` (cross margin) and `ACCOUNT_UPDATE` (`fs` UM).
* `spot`: socket `/ws-api/v3`, `userDataStream.subscribe.signature`; `outboundAccountPosition`.
* `margin`: `POST /sapi/v1/userListenToken`, then `/ws-api/v3`,
  `userDataStream.subscribe.listenToken`; `outboundAccountPosition`.
* `coinm`: `POST /dapi/v1/listenKey`, socket `/ws/<listenKey>`; `ACCOUNT_UPDATE`.

Listen-key and listen-token requests need only the API-key header, as on Binance. The websocket
API answers each `{id, method, params}` with `{id, status, result | error}` and wraps every event
as `{subscriptionId, event}`. No push carries debt: Binance streams no `borrowed`/`interest`.

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

from aiohttp import web

from equity_daemon.venues.fake_exchange.binance_coinm import (
    COINM,
    CoinMargined,
    exchange_info,
    futures_asset,
)
from equity_daemon.venues.fake_exchange.server import (
    Json,
    Route,
    Stream,
    StreamingDialect,
    WebsocketHandler,
)
from equity_daemon.venues.fake_exchange.state import (
    ZERO,
    FakePosition,
    FakeState,
    Holding,
    Market,
    Transfer,
    liquidation,
    num,
)

PRICE_FILTER = {
    "filterType": "PRICE_FILTER",
    "minPrice": "0.01",
    "maxPrice": "1000000",
    "tickSize": "0.01",
}
# withdrawal statuses still under way: 0 email sent, 2 awaiting approval, 4 processing
WITHDRAWAL_UNDER_WAY = frozenset({"0", "2", "4"})
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
# what a websocket-API method subscribes to, when its params hold what it needs
WS_API_METHODS: Mapping[str, str] = {
    "userDataStream.subscribe.signature": "spot",
    "userDataStream.subscribe.listenToken": "margin",
}
TOKEN_VALIDITY_MS = 86_400_000  # a listen token's default (and longest) life: 24 h
SUBSCRIPTION_ID = 0


class BinanceDialect(CoinMargined, StreamingDialect):
    name = "binance"

    def __init__(self, state: FakeState) -> None:
        super().__init__(state)
        self.listen_keys: set[str] = set()  # USDⓈ-M's and portfolio margin's
        self.listen_tokens: set[str] = set()  # margin's, for the websocket API
        self._keys: dict[str, str] = {}  # a listen-key socket's (by `Stream.id`) key

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
            Route("GET", "/papi/v1/um/leverageBracket", self.leverage_brackets, private=True),
            Route("GET", "/papi/v1/um/positionRisk", self.um_position_risk, private=True),
            Route("GET", "/sapi/v1/capital/deposit/hisrec", self.deposits, private=True),
            Route("GET", "/sapi/v1/capital/withdraw/history", self.withdrawals, private=True),
            Route("POST", "/fapi/v1/listenKey", self.new_listen_key),
            Route("PUT", "/fapi/v1/listenKey", self.keep_listen_key),
            Route("POST", "/papi/v1/listenKey", self.new_listen_key),
            Route("PUT", "/papi/v1/listenKey", self.keep_listen_key),
            Route("POST", "/sapi/v1/userListenToken", self.new_listen_token),
            *self.coinm_routes(),
            Route("POST", "/dapi/v1/listenKey", self.new_listen_key),
            Route("PUT", "/dapi/v1/listenKey", self.keep_listen_key),
        )

    def websockets(self) -> Sequence[tuple[str, WebsocketHandler]]:
        return (
            ("/private/ws", self.serve_stream),
            ("/pm/ws/{listenKey}", self.serve_stream),
            ("/ws-api/v3", self.serve_stream),
            ("/ws/{n}", self.serve_ws),
        )

    async def serve_ws(self, request: web.Request) -> web.StreamResponse:
        """`/ws/<n>`: a market stream (ccxt numbers them), or COIN-M's user-data stream when `n`
        is a listen key (`base_url` puts both stream hosts' `/ws` on this one server)."""
        if request.match_info["n"] in self.listen_keys:
            return await self.serve_stream(request)
        return await self.serve_public_stream(request)

    # -- the USDⓈ-M user-data stream -----------------------------------------------------------

    def new_listen_key(self, query: Mapping[str, str]) -> Json:
        if self.refuse_stream_auth:
            return {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        key = f"fakelistenkey{next(_keys):08d}"
        self.listen_keys.add(key)
        return {"listenKey": key}

    def keep_listen_key(self, query: Mapping[str, str]) -> Json:
        """The PUT names no key (an account has one): it fails once the key is gone."""
        key = query.get("listenKey")
        if not self.listen_keys or (key is not None and key not in self.listen_keys):
            return {"code": -1125, "msg": "This listenKey does not exist."}
        return {}

    def new_listen_token(self, query: Mapping[str, str]) -> Json:
        if self.refuse_stream_auth:
            return {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        token = f"fakelistentoken{next(_keys):08d}"
        self.listen_tokens.add(token)
        return {"token": token, "expirationTime": self.state.now_ms() + TOKEN_VALIDITY_MS}

    def opened(self, stream: Stream, request: web.Request) -> bool:
        """A user-data socket (`/private/ws?listenKey=…`, `/pm/ws/<listenKey>`,
        `/ws/<listenKey>`) follows its account from the start, if its key is valid; a
        websocket-API or market one subscribes later."""
        if stream.public or request.path.startswith("/ws-api/"):
            return True
        info = request.match_info
        key = info.get("listenKey") or info.get("n") or request.query.get("listenKey", "")
        if key not in self.listen_keys:
            return False
        stream.authenticated = True
        if request.path.startswith("/pm/"):
            stream.topics.add("portfolio")
        else:
            stream.topics.add(COINM if request.path.startswith("/ws/") else "account")
        self._keys[stream.id] = key
        return True

    def answer(self, stream: Stream, frame: str) -> Sequence[str]:
        """The websocket API: `{id, method, params}` answered `{id, status, result | error}`; a
        user-data socket ignores what it is sent."""
        if stream.id in self._keys:
            return ()
        request = json.loads(frame)
        if not isinstance(request, dict):
            request = {}
        method, params = request.get("method"), request.get("params") or {}
        reply: dict[str, Json] = {"id": request.get("id")}
        topic = WS_API_METHODS.get(str(method))
        if topic is None:
            reply |= {"status": 400, "error": {"code": -1100, "msg": f"Unknown method {method}"}}
        elif topic == "spot" and (self.refuse_stream_auth or not _signed_params(params)):
            reply |= {"status": 401, "error": {"code": -2015, "msg": "Invalid API-key."}}
        elif topic == "margin" and params.get("listenToken") not in self.listen_tokens:
            reply |= {"status": 400, "error": {"code": -1209, "msg": "Invalid listenToken."}}
        else:
            stream.authenticated = True
            stream.topics.add(topic)
            # one subscription per connection here: Binance numbers a session's from 0
            result: dict[str, Json] = {"subscriptionId": SUBSCRIPTION_ID}
            if topic == "margin":
                result["expirationTime"] = self.state.now_ms() + TOKEN_VALIDITY_MS
            reply |= {"status": 200, "result": result}
        return (json.dumps(reply),)

    async def expire_listen_keys(self) -> None:
        """Every listen key and token expires, as a key does an hour after its last keep-alive
        and a token at its `expirationTime`: a key's sockets hear `listenKeyExpired`, a token's
        subscription `eventStreamTerminated`, and then nothing more, though they stay open."""
        now = self.state.now_ms()
        for stream in list(self._streams):
            key = self._keys.get(stream.id)
            if key is not None and stream.topics:
                event = {"e": "listenKeyExpired", "E": now, "listenKey": key}
                await stream.socket.send_json(event)
            elif "margin" in stream.topics:
                event = {"e": "eventStreamTerminated", "E": now}
                await stream.socket.send_json({"subscriptionId": SUBSCRIPTION_ID, "event": event})
            else:
                continue
            stream.topics.clear()
        self.listen_keys.clear()
        self.listen_tokens.clear()

    def message(self, topic: str, coins: Sequence[str] | None = None) -> Json:
        """The first (for most topics the only) event of a `topic` push."""
        return self._events(topic, coins)[0]

    async def push(self, topic: str, coins: Sequence[str] | None = None) -> int:
        """Send `topic`'s events (module docstring) from the current state to its followers;
        how many sockets heard them. `coins`: the balances name only these coins. `account`
        and `portfolio`'s `ACCOUNT_UPDATE` carries every position (a closed one `pa` "0")."""
        sent = 0
        for event in self._events(topic, coins):
            sent = await self.send(topic, event)
        return sent

    def _events(self, topic: str, coins: Sequence[str] | None) -> list[Json]:
        ticker = self._ticker_event(topic)
        if ticker is not None:
            return [ticker]
        match topic:
            case "coinm":
                return [self.coinm_update(coins)]
            case "account":
                return [self._account_update(self._wallets("futures", coins))]
            case "portfolio":
                um_wallets = [dict(r, wb="0", cw="0") for r in self._wallets("portfolio", coins)]
                return [
                    self._account_position("portfolio", coins),
                    self._account_update(um_wallets, fs="UM"),
                ]
            case "spot" | "margin":  # the websocket API wraps every event
                event = self._account_position(topic, coins)
                return [{"subscriptionId": SUBSCRIPTION_ID, "event": event}]
        raise ValueError(f"binance has no private topic {topic!r} here")

    def _wallets(self, account: str, coins: Sequence[str] | None) -> list[dict[str, str]]:
        return [
            {"a": asset, "wb": num(h.balance), "cw": num(h.balance), "bc": "0"}
            for asset, h in self.state.account(account).items()
            if coins is None or asset in coins
        ]

    def _account_update(self, balances: list[dict[str, str]], fs: str | None = None) -> Json:
        now = self.state.now_ms()
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
            if not p.inverse  # COIN-M's are in its own stream
        ]
        event: dict[str, Json] = {"e": "ACCOUNT_UPDATE", "E": now, "T": now}
        if fs is not None:  # portfolio margin: which futures account (UM or CM)
            event["fs"] = fs
        return event | {"a": {"m": "ORDER", "B": balances, "P": positions}}

    def _account_position(self, account: str, coins: Sequence[str] | None) -> Json:
        """`outboundAccountPosition`: free and locked of the named coins, never debt."""
        now = self.state.now_ms()
        balances = [
            {"a": asset, "f": num(h.free), "l": num(h.locked)}
            for asset, h in self.state.account(account).items()
            if coins is None or asset in coins
        ]
        return {"e": "outboundAccountPosition", "E": now, "u": now, "B": balances}

    # -- the public market streams: `SUBSCRIBE` to `<symbol>@miniTicker` -----------------------

    def public_answer(self, stream: Stream, frame: str) -> Sequence[str]:
        """`/ws/<n>`: raw market streams, subscribed to by `SUBSCRIBE` frames."""
        return (json.dumps(self.market_answer(stream.topics, json.loads(frame))),)

    def market_answer(self, topics: set[str], message: Json) -> Json:
        """Binance's answer to one frame: a subscription's `result`, or its error."""
        params = [str(param) for param in message.get("params") or []]
        if message.get("method") != "SUBSCRIBE" or any(
            self._ticker_event(param) is None for param in params
        ):
            return {"error": {"code": 2, "msg": "Invalid request"}, "id": message.get("id")}
        topics.update(params)
        return {"result": None, "id": message.get("id")}

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
        return exchange_info(self.state, [self._spot_symbol(m) for m in self.state.markets])

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
        return exchange_info(self.state, [self._perp_symbol(m) for m in self.state.perps()]) | {
            "futuresType": "U_MARGINED",
            "assets": [
                {"asset": quote, "marginAvailable": True, "autoAssetExchange": "0"}
                for quote in sorted({m.quote for m in self.state.perps()})
            ],
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
            rows = ((a, futures_asset(a, h, now)[pick]) for a, h in held.items())
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
            "assets": [futures_asset(a, h, now) for a, h in held.items()],
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
                if not p.inverse
            ],
        }

    def multi_assets(self, query: Mapping[str, str]) -> Json:
        return {"multiAssetsMargin": self.state.multi_assets}

    def funding(self, query: Mapping[str, str]) -> Json:
        """The funding wallet; a withdrawal under way (from this wallet: the fake files every
        withdrawal with `walletType` 1) sits in its coin's `withdrawing`, out of `free`, until
        it completes."""
        held = self.state.account("funding")
        withdrawing: dict[str, Decimal] = {}
        for t in self.state.withdrawals:
            if t.status in WITHDRAWAL_UNDER_WAY:
                withdrawing[t.asset] = withdrawing.get(t.asset, ZERO) + t.amount
        return [
            {
                "asset": asset,
                "free": num(h.free),
                "locked": num(h.locked),
                "freeze": "0",
                "withdrawing": num(withdrawing.get(asset, ZERO)),
                "btcValuation": self._btc(h.balance * self.state.usd(asset)),
            }
            for asset, h in ((a, held.get(a, Holding())) for a in sorted({*held, *withdrawing}))
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
        return [self._risk(p) for p in self.state.positions if p.size and not p.inverse]

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
            "liquidationPrice": liquidation(p, "0"),
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

    def um_position_risk(self, query: Mapping[str, str]) -> Json:
        """Portfolio margin's USDⓈ-M positions: the same positions, in the papi's fewer fields
        (cross only: no margin type, margin asset or isolated wallet)."""
        return [
            {
                "entryPrice": num(p.entry_price),
                "leverage": str(p.leverage),
                "markPrice": num(self.state.position_mark(p)),
                "maxNotionalValue": "20000000",
                "positionAmt": num(p.size),
                "notional": num(p.size * self.state.position_mark(p)),
                "symbol": p.base + p.settle,
                "unRealizedProfit": num(self.state.position_pnl(p)),
                "liquidationPrice": "0",
                "positionSide": "BOTH",
                "updateTime": p.updated_ms,
            }
            for p in self.state.positions
            if p.size and not p.inverse
        ]

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
                "walletType": 1,  # 1 funding wallet, 0 spot wallet
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
                "walletType": 1,  # 1 funding wallet, 0 spot wallet
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


def _signed_params(params: Mapping[str, Json]) -> bool:
    """A websocket-API request signed as Binance wants: key, time and signature present."""
    return all(params.get(k) for k in ("apiKey", "timestamp", "signature"))


def _window(transfers: list[Transfer], query: Mapping[str, str]) -> list[Transfer]:
    start = int(query.get("startTime", 0))
    end = int(query.get("endTime", 2**63))
    coin = query.get("coin")
    return [t for t in transfers if start <= t.at_ms <= end and (coin is None or coin == t.asset)]


def _utc_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
