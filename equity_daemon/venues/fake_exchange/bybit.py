"""Bybit v5 as ccxt 4.5 calls it: the unified trading account and the funding account, linear
positions by settle coin and inverse ones (`category=inverse`) with cursor pagination, deposit
and withdrawal records, tickers.

Accounts: `unified` (UTA, `accountType=UNIFIED`) and `funding` (`accountType=FUND`). Every answer
has Bybit's envelope (`retCode`, `retMsg`, `result`, `retExtInfo`, `time`); numbers are strings.
Like Bybit, the wallet leaves out coins whose assets and liabilities are both zero.

The private websocket (`/v5/private`) takes `auth`, `subscribe` and `ping`, and pushes the
`wallet` and `position` topics when a test calls `push` (Bybit sends no snapshot on subscribe).
The public spot websocket (`/v5/public/spot`) takes `subscribe` to `tickers.<SYMBOL>` (answered
with the ticker's snapshot at once, as Bybit does) and `ping`; `push("tickers.ETHUSDT")` sends it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

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
    Market,
    Transfer,
    liquidation,
    num,
)


class BybitDialect(StreamingDialect):
    name = "bybit"

    def routes(self) -> Sequence[Route]:
        return (
            Route("GET", "/v5/market/time", self.time),
            Route("GET", "/v5/market/instruments-info", self.instruments),
            Route("GET", "/v5/market/tickers", self.tickers),
            Route("GET", "/v5/asset/coin/query-info", self.coins, private=True),
            Route("GET", "/v5/account/wallet-balance", self.wallet, private=True),
            Route(
                "GET",
                "/v5/asset/transfer/query-account-coins-balance",
                self.funding,
                private=True,
            ),
            Route("GET", "/v5/position/list", self.positions, private=True),
            Route("GET", "/v5/asset/deposit/query-record", self.deposits, private=True),
            Route("GET", "/v5/asset/withdraw/query-record", self.withdrawals, private=True),
        )

    def websockets(self) -> Sequence[tuple[str, WebsocketHandler]]:
        return (("/v5/private", self.serve_stream), ("/v5/public/spot", self.serve_public_stream))

    def signed(self, request: web.Request, form: Mapping[str, str]) -> bool:
        needed = ("X-BAPI-API-KEY", "X-BAPI-SIGN", "X-BAPI-TIMESTAMP")
        return all(request.headers.get(name) for name in needed)

    def auth_error(self) -> tuple[int, Json]:
        return 401, self._error(10003, "API key is invalid.")

    def rate_limit_error(self) -> Json:
        return self._error(10006, "Too many visits!")

    def not_found(self) -> Json:
        return self._error(10001, "params error: path not found")

    def _error(self, code: int, message: str) -> Json:
        return {
            "retCode": code,
            "retMsg": message,
            "result": {},
            "retExtInfo": {},
            "time": self.state.now_ms(),
        }

    def _ok(self, result: Json) -> Json:
        return {
            "retCode": 0,
            "retMsg": "OK",
            "result": result,
            "retExtInfo": {},
            "time": self.state.now_ms(),
        }

    # -- the private websocket: `auth`, then `wallet` and `position` pushes --------------------

    def answer(self, stream: Stream, frame: str) -> Sequence[str]:
        """Bybit's v5 private stream: `auth` (key, expiry and signature present), `subscribe`,
        `ping`; pushes are sent by `push`. Like Bybit, it sends no snapshot on subscribe."""
        message = json.loads(frame)
        op = message.get("op")
        reply: dict[str, Any] = {"op": op, "conn_id": stream.id}
        if "req_id" in message:
            reply["req_id"] = message["req_id"]
        if op == "auth":
            args = message.get("args") or []
            stream.authenticated = len(args) == 3 and all(args) and not self.refuse_stream_auth
            reply |= {"success": stream.authenticated, "ret_msg": ""}
            if not stream.authenticated:  # ccxt knows a failed login by the echoed `request.op`
                reply |= {"ret_msg": "Invalid apikey", "request": {"op": "auth"}}
        elif op == "subscribe":
            allowed = stream.authenticated
            if allowed:
                stream.topics.update(message.get("args") or [])
            reply |= {"success": allowed, "ret_msg": "" if allowed else "Request not authorized"}
        elif op == "ping":
            reply |= {"op": "pong", "args": [str(self.state.now_ms())]}
        else:
            reply |= {"success": False, "ret_msg": f"unknown op {op}"}
        return [json.dumps(reply)]

    def message(self, topic: str, coins: Sequence[str] | None = None) -> Json:
        """A `wallet` or `position` push from the current state (`coins`: a wallet push naming
        only these coins), or a public `tickers.<SYMBOL>` push."""
        if topic.startswith("tickers."):
            return self.ticker_push(topic)
        if topic == "wallet":
            wallet = self._unified()
            if coins is not None:
                wallet["coin"] = [c for c in wallet["coin"] if c["coin"] in coins]
            data: list[Json] = [wallet]
        elif topic == "position":
            data = [
                self._position(p) | {"category": _category(p), "entryPrice": num(p.entry_price)}
                for p in self.state.positions
            ]
        else:
            raise ValueError(f"bybit has no private topic {topic!r} here")
        now = self.state.now_ms()
        return {"id": f"{topic}-{now}", "topic": topic, "creationTime": now, "data": data}

    # -- the public spot websocket: `subscribe` to `tickers.<SYMBOL>`, no `auth` ---------------

    def public_answer(self, stream: Stream, frame: str) -> Sequence[str]:
        """The frames Bybit's public spot stream sends back to one frame: a `subscribe` reply
        (then each ticker's snapshot, as Bybit sends one at once) or a `pong`."""
        message = json.loads(frame)
        op = message.get("op")
        reply: dict[str, Any] = {"op": op, "conn_id": stream.id}
        if "req_id" in message:
            reply["req_id"] = message["req_id"]
        if op == "ping":
            return [json.dumps(reply | {"success": True, "ret_msg": "pong"})]
        if op != "subscribe":
            return [json.dumps(reply | {"success": False, "ret_msg": f"unknown op {op}"})]
        topics = [str(topic) for topic in message.get("args") or []]
        if not all(self._spot_ticker(topic) is not None for topic in topics):
            return [json.dumps(reply | {"success": False, "ret_msg": "Invalid topic"})]
        stream.topics.update(topics)
        answer = reply | {"success": True, "ret_msg": "subscribe"}
        return [json.dumps(frame) for frame in (answer, *map(self.ticker_push, topics))]

    def _spot_ticker(self, topic: str) -> Json | None:
        """The spot ticker row a `tickers.<SYMBOL>` topic names, if the market is listed."""
        prefix, _, symbol = topic.partition(".")
        if prefix != "tickers":
            return None
        rows = self.tickers({"category": "spot", "symbol": symbol})["result"]["list"]
        return rows[0] if rows else None

    def ticker_push(self, topic: str) -> Json:
        """A spot ticker push as Bybit sends it: the whole row (`type` snapshot), `ts`, `cs`."""
        row = self._spot_ticker(topic)
        if row is None:
            raise ValueError(f"bybit lists no spot market for {topic!r}")
        keep = ("symbol", "lastPrice", "highPrice24h", "lowPrice24h", "prevPrice24h", "volume24h")
        data = {key: row[key] for key in (*keep, "turnover24h", "price24hPcnt")}
        data["usdIndexPrice"] = row["lastPrice"]
        now = self.state.now_ms()
        return {"topic": topic, "ts": now, "type": "snapshot", "cs": now, "data": data}

    # -- public --------------------------------------------------------------------------------

    def time(self, query: Mapping[str, str]) -> Json:
        now = self.state.now_ms()
        return self._ok({"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)})

    def instruments(self, query: Mapping[str, str]) -> Json:
        category = query.get("category", "")
        if query.get("status") == "PreLaunch" or category not in {"spot", "linear", "inverse"}:
            return self._ok({"category": category, "list": [], "nextPageCursor": ""})
        if category == "spot":
            rows = [_spot_instrument(m) for m in self.state.markets]
        elif category == "inverse":
            rows = [_inverse_instrument(base) for base in self.state.inverse]
        else:
            rows = [_perp_instrument(m) for m in self.state.perps()]
        return self._ok({"category": category, "list": rows, "nextPageCursor": ""})

    def tickers(self, query: Mapping[str, str]) -> Json:
        category = query.get("category", "spot")
        markets = {
            "spot": self.state.markets,
            "linear": self.state.perps(),
            "inverse": [Market(base, "USD") for base in self.state.inverse],
        }.get(category, [])
        symbol = query.get("symbol")
        rows = []
        for m in markets:
            if symbol not in {None, _symbol(m, category)}:
                continue
            last = self.state.prices.get(m.base, ZERO) / self.state.usd(m.quote)
            row = {
                "symbol": _symbol(m, category),
                "lastPrice": num(last),
                "bid1Price": num(last),
                "bid1Size": "1",
                "ask1Price": num(last),
                "ask1Size": "1",
                "prevPrice24h": num(last),
                "price24hPcnt": "0",
                "highPrice24h": num(last),
                "lowPrice24h": num(last),
                "turnover24h": num(last * 1000),
                "volume24h": "1000",
            }
            if category != "spot":
                row |= {
                    "indexPrice": num(self.state.prices.get(m.base, ZERO)),
                    "markPrice": num(self.state.mark(m.base)),
                    "prevPrice1h": num(last),
                    "openInterest": "1000",
                    "openInterestValue": num(last * 1000),
                    "fundingRate": "0.0001",
                    "nextFundingTime": "0",
                }
            rows.append(row)
        return self._ok({"category": category, "list": rows})

    # -- private -------------------------------------------------------------------------------

    def coins(self, query: Mapping[str, str]) -> Json:
        assets = sorted({a for m in self.state.markets for a in (m.base, m.quote)})
        return self._ok(
            {
                "rows": [
                    {
                        "name": asset,
                        "coin": asset,
                        "remainAmount": "1000000",
                        "chains": [
                            {
                                "chainType": "ERC20",
                                "confirmation": "12",
                                "withdrawFee": "1",
                                "depositMin": "0",
                                "withdrawMin": "1",
                                "chain": "ETH",
                                "chainDeposit": "1",
                                "chainWithdraw": "1",
                                "minAccuracy": "8",
                                "withdrawPercentageFee": "0",
                            }
                        ],
                    }
                    for asset in assets
                ]
            }
        )

    def wallet(self, query: Mapping[str, str]) -> Json:
        if query.get("accountType") != "UNIFIED":
            return self._error(10001, "accountType only support UNIFIED.")
        return self._ok({"list": [self._unified()]})

    def _unified(self) -> dict[str, Json]:
        """The UNIFIED account as both the REST wallet and the `wallet` topic render it."""
        coins = []
        totals = dict.fromkeys(("equity", "wallet", "upl", "im", "mm", "borrowed"), ZERO)
        for asset, h in self.state.account("unified").items():
            usd = self.state.usd(asset)
            totals["equity"] += h.equity * usd
            totals["wallet"] += h.balance * usd
            totals["upl"] += h.unrealized_pnl * usd
            totals["im"] += h.initial_margin * usd
            totals["mm"] += h.maint_margin * usd
            totals["borrowed"] += h.debt * usd
            coins.append(
                {
                    "coin": asset,
                    "equity": num(h.equity),
                    "usdValue": num(h.equity * usd),
                    "walletBalance": num(h.balance),
                    "free": "",
                    "locked": num(h.locked),
                    "spotHedgingQty": "0",
                    "borrowAmount": num(h.borrowed),
                    "spotBorrow": num(h.borrowed),
                    "accruedInterest": num(h.interest),
                    "availableToWithdraw": "",  # deprecated for UNIFIED since 2025
                    "availableToBorrow": "",
                    "totalOrderIM": "0",
                    "totalPositionIM": num(h.initial_margin),
                    "totalPositionMM": num(h.maint_margin),
                    "unrealisedPnl": num(h.unrealized_pnl),
                    "cumRealisedPnl": "0",
                    "bonus": "0",
                    "collateralSwitch": True,
                    "marginCollateral": True,
                }
            )
        margin = totals["equity"]
        return {
            "accountType": "UNIFIED",
            "accountIMRate": num(totals["im"] / margin) if margin else "0",
            "accountMMRate": num(totals["mm"] / margin) if margin else "0",
            "accountLTV": num(totals["borrowed"] / totals["wallet"]) if totals["wallet"] else "0",
            "totalEquity": num(totals["equity"]),
            "totalWalletBalance": num(totals["wallet"]),
            "totalMarginBalance": num(margin),
            "totalAvailableBalance": num(margin - totals["im"]),
            "totalPerpUPL": num(totals["upl"]),
            "totalInitialMargin": num(totals["im"]),
            "totalMaintenanceMargin": num(totals["mm"]),
            "coin": coins,
        }

    def funding(self, query: Mapping[str, str]) -> Json:
        if query.get("accountType") != "FUND":
            return self._error(10001, "accountType error")
        rows = [
            {
                "coin": asset,
                "walletBalance": num(h.balance),
                "transferBalance": num(h.free),
                "bonus": "0",
            }
            for asset, h in self.state.account("funding").items()
        ]
        return self._ok({"memberId": "1000001", "accountType": "FUND", "balance": rows})

    def positions(self, query: Mapping[str, str]) -> Json:
        category = query.get("category")
        settle = query.get("settleCoin")
        symbol = query.get("symbol")
        if category not in {"linear", "inverse"}:
            return self._error(10001, "params error: category")
        # linear needs a settle coin, symbol or base coin; inverse lists all without one
        if category == "linear" and not (settle or symbol or query.get("baseCoin")):
            return self._error(10001, "settleCoin or symbol is required")
        limit = min(int(query.get("limit", 20)), 200, self.state.page_size)
        matching = [
            p
            for p in self.state.positions
            if p.size
            and _category(p) == category
            and (settle is None or p.settle == settle)
            and (symbol is None or _position_symbol(p) == symbol)
        ]
        start = int(query.get("cursor", "0").removeprefix("page:") or 0)
        page = matching[start : start + limit]
        after = start + limit
        cursor = f"page:{after}" if after < len(matching) else ""
        rows = [self._position(p) for p in page]
        return self._ok({"category": category, "list": rows, "nextPageCursor": cursor})

    def _position(self, p: FakePosition) -> Json:
        """A `/v5/position/list` row: `size` in base units (inverse: USD contracts); values,
        margins and uPnL in the settle coin (inverse: the base coin)."""
        mark = self.state.position_mark(p)
        value = abs(p.size) / mark if p.inverse else abs(p.size) * mark
        return {
            "positionIdx": 0,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": _position_symbol(p),
            "side": "Buy" if p.size > 0 else "Sell",
            "size": num(abs(p.size)),
            "avgPrice": num(p.entry_price),
            # USDC contracts settle every session: this one moves, `avgPrice` stays
            "sessionAvgPrice": num(p.basis) if _session_settled(p) else "",
            "positionValue": num(self.state.position_value(p)),
            "tradeMode": 0,
            "autoAddMargin": 0,
            "positionStatus": "Normal",
            "leverage": str(p.leverage),
            "markPrice": num(mark),
            "liqPrice": liquidation(p, ""),
            "bustPrice": "",
            "positionIM": num(value / p.leverage),
            "positionMM": num(value / 200),
            "positionBalance": "0",
            "takeProfit": "0",
            "stopLoss": "0",
            "trailingStop": "0",
            "unrealisedPnl": num(self.state.position_pnl(p)),
            "curRealisedPnl": "0",
            "cumRealisedPnl": "0",
            "adlRankIndicator": 2,
            "createdTime": str(p.updated_ms),
            "updatedTime": str(p.updated_ms),
            "seq": 1,
            "isReduceOnly": False,
        }

    def deposits(self, query: Mapping[str, str]) -> Json:
        rows = [
            {
                "id": t.id,
                "coin": t.asset,
                "chain": t.network,
                "amount": num(t.amount),
                "txID": t.txid,
                "status": int(t.status),
                "toAddress": t.address,
                "tag": "",
                "depositFee": "",
                "successAt": str(t.at_ms),
                "confirmations": "12",
                "txIndex": "0",
                "blockHash": "",
                "batchReleaseLimit": "-1",
                "depositType": "0",
            }
            for t in _window(self.state.deposits, query)
        ]
        return self._ok({"rows": rows, "nextPageCursor": ""})

    def withdrawals(self, query: Mapping[str, str]) -> Json:
        rows = [
            {
                "withdrawId": t.id,
                "txID": t.txid,
                "withdrawType": 0,
                "coin": t.asset,
                "chain": t.network,
                "amount": num(t.amount),
                "withdrawFee": num(t.fee),
                "status": t.status,
                "toAddress": t.address,
                "tag": "",
                "createTime": str(t.at_ms),
                "updateTime": str(t.at_ms),
            }
            for t in _window(self.state.withdrawals, query)
        ]
        return self._ok({"rows": rows, "nextPageCursor": ""})


def _symbol(market: Market, category: str) -> str:
    if category == "linear" and market.quote == "USDC":
        return f"{market.base}PERP"  # Bybit's USDC perpetuals are named BTCPERP, ETHPERP
    return market.base + market.quote


def _position_symbol(p: FakePosition) -> str:
    return f"{p.base}USD" if p.inverse else _symbol(Market(p.base, p.settle), "linear")


def _session_settled(p: FakePosition) -> bool:
    return p.settle == "USDC" and not p.inverse


def _category(p: FakePosition) -> str:
    return "inverse" if p.inverse else "linear"


def _inverse_instrument(base: str) -> Json:
    """An inverse perpetual as Bybit lists it: quoted in USD, settled in the base coin, one
    contract is 1 USD."""
    return {
        "symbol": f"{base}USD",
        "contractType": "InversePerpetual",
        "status": "Trading",
        "baseCoin": base,
        "quoteCoin": "USD",
        "settleCoin": base,
        "launchTime": "1585526400000",
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": "2",
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": "0.50", "maxPrice": "1999999.00", "tickSize": "0.50"},
        "lotSizeFilter": {
            "maxOrderQty": "1000000",
            "minOrderQty": "1",
            "qtyStep": "1",
            "postOnlyMaxOrderQty": "1000000",
            "maxMktOrderQty": "500000",
            "minNotionalValue": "",
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
        "copyTrading": "none",
        "upperFundingRate": "0.00375",
        "lowerFundingRate": "-0.00375",
        "isPreListing": False,
        "preListingInfo": None,
    }


def _spot_instrument(m: Market) -> Json:
    return {
        "symbol": m.base + m.quote,
        "baseCoin": m.base,
        "quoteCoin": m.quote,
        "innovation": "0",
        "status": "Trading",
        "marginTrading": "utaOnly",
        "stTag": "0",
        "lotSizeFilter": {
            "basePrecision": "0.0001",
            "quotePrecision": "0.01",
            "minOrderQty": "0.0001",
            "maxOrderQty": "10000",
            "minOrderAmt": "1",
            "maxOrderAmt": "2000000",
        },
        "priceFilter": {"tickSize": "0.01"},
    }


def _perp_instrument(m: Market) -> Json:
    return {
        "symbol": _symbol(m, "linear"),
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": m.base,
        "quoteCoin": m.quote,
        "settleCoin": m.quote,
        "launchTime": "1585526400000",
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": "2",
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
        "lotSizeFilter": {
            "maxOrderQty": "1190.000",
            "minOrderQty": "0.001",
            "qtyStep": "0.001",
            "postOnlyMaxOrderQty": "1190.000",
            "maxMktOrderQty": "500.000",
            "minNotionalValue": "5",
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
        "copyTrading": "both",
        "upperFundingRate": "0.00375",
        "lowerFundingRate": "-0.00375",
        "isPreListing": False,
        "preListingInfo": None,
    }


def _window(transfers: list[Transfer], query: Mapping[str, str]) -> list[Transfer]:
    start = int(query.get("startTime", 0))
    end = int(query.get("endTime", 2**63))
    coin = query.get("coin")
    return [t for t in transfers if start <= t.at_ms <= end and coin in {None, t.asset}]
