"""OKX v5 as ccxt 4.5 calls it: the unified trading account and the funding account, swap
positions, deposit and withdrawal history, tickers and mark prices.

Accounts: `trading` (`/api/v5/account/balance`) and `funding` (`/api/v5/asset/balances`). Every
answer has OKX's envelope (`code` "0", `msg`, `data`); numbers are strings. A swap's `pos` is in
contracts of `ctVal` base units (0.01 BTC, 0.1 ETH), as on OKX.

The private websocket (`/ws/v5/private`) takes `login` (`apiKey`, `passphrase`, `timestamp` and
`sign` present; a refused one gets OKX's `error` event), `subscribe` to the `account` and
`positions` channels (after login only), and the text frame `ping` (answered `pong`). `push`
sends an `account` push (the trading account as REST renders it, `details` only of the coins
named) or a `positions` push (every position, a closed one with `pos` "0"). Unlike OKX, it sends
no snapshot on subscribe and no periodic push: tests push when they mean to.

The account level (`/api/v5/account/config` `acctLv`) is `OkxDialect.account_level`, "3"
(multi-currency margin) unless a test sets it. In Futures mode ("2") the balance's `liab`,
`interest` and `crossLiab` are `""`, as OKX sends fields that do not apply, and borrowing is
in `margins`: isolated `MARGIN` positions (`pos` of `posCcy`, margin included; `liab`
negative, as OKX's example shows; `interest` in `liabCcy`), whose equity `totalEq` includes.
Besides the linear swaps of the state, it lists the inverse swap `BTC-USD-SWAP` (`ctVal` 100
USD, settled in BTC) and the dated linear future `ETH-USDT-261225`; `contracts` holds
positions in them (`pos` signed contracts), rendered as OKX renders them.

The public websocket (`/ws/v5/public`) answers the text `ping` with `pong` and takes `subscribe`
to the `tickers` channel of listed spot instruments (no login); `push("tickers:ETH-USDT")` sends
that ticker's row as OKX pushes it (`arg`, `data`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

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
    FakeState,
    Market,
    Transfer,
    liquidation,
    num,
)

CONTRACT_VALUES = {"BTC": Decimal("0.01"), "ETH": Decimal("0.1")}


def contract_value(base: str) -> Decimal:
    """Base units per contract of `base`'s swap."""
    return CONTRACT_VALUES.get(base, Decimal(1))


# what a `login` op's one argument must carry (never checked further, like the REST headers)
LOGIN_FIELDS = ("apiKey", "passphrase", "timestamp", "sign")
CHANNELS = frozenset({"account", "positions"})
UID = "44705892343619584"  # the account's user id, echoed in every push's `arg`
INVERSE_SWAP = "BTC-USD-SWAP"
FUTURE = "ETH-USDT-261225"
FUTURE_EXPIRY_MS = "1798185600000"  # 2026-12-25 08:00 UTC


@dataclass(frozen=True, slots=True)
class Contract:
    """A position in `INVERSE_SWAP` or `FUTURE`: `pos` signed contracts, entry and mark."""

    inst_id: str
    pos: Decimal
    avg_px: Decimal
    mark_px: Decimal

    @property
    def inverse(self) -> bool:
        return self.inst_id == INVERSE_SWAP

    @property
    def ct_val(self) -> Decimal:
        return Decimal(100) if self.inverse else contract_value("ETH")

    @property
    def upl(self) -> Decimal:
        """In the settle coin: BTC for the inverse swap (OKX's formula), USDT for the future."""
        if self.inverse:
            return (1 / self.avg_px - 1 / self.mark_px) * self.pos * self.ct_val
        return (self.mark_px - self.avg_px) * self.pos * self.ct_val


@dataclass(frozen=True, slots=True)
class MarginPosition:
    """A `MARGIN` position (isolated unless `mgn_mode` says): `pos` of `pos_ccy` held, margin
    included, and `liab` plus `interest` of `liab_ccy` owed."""

    inst_id: str
    pos_ccy: str
    pos: Decimal
    liab_ccy: str
    liab: Decimal
    interest: Decimal = ZERO
    avg_px: Decimal = ZERO
    mgn_mode: str = "isolated"
    upl: Decimal = ZERO  # in `pos_ccy`, inside the `upl` of that coin's balance row (OKX)


class OkxDialect(StreamingDialect):
    name = "okx"

    def __init__(self, state: FakeState) -> None:
        super().__init__(state)
        self.logins = 0  # every `login` op received, accepted or not
        self.account_level = "3"  # `acctLv`: 1 spot, 2 futures, 3 multi-currency, 4 portfolio
        self.margins: list[MarginPosition] = []
        self.contracts: list[Contract] = []

    def routes(self) -> Sequence[Route]:
        return (
            Route("GET", "/api/v5/public/time", self.time),
            Route("GET", "/api/v5/public/instruments", self.instruments),
            Route("GET", "/api/v5/market/tickers", self.tickers),
            Route("GET", "/api/v5/market/ticker", self.ticker),
            Route("GET", "/api/v5/public/mark-price", self.mark_prices),
            Route("GET", "/api/v5/asset/currencies", self.currencies, private=True),
            Route("GET", "/api/v5/account/config", self.config, private=True),
            Route("GET", "/api/v5/account/balance", self.trading, private=True),
            Route("GET", "/api/v5/asset/balances", self.funding, private=True),
            Route("GET", "/api/v5/account/positions", self.positions, private=True),
            Route("GET", "/api/v5/asset/deposit-history", self.deposits, private=True),
            Route("GET", "/api/v5/asset/withdrawal-history", self.withdrawals, private=True),
        )

    def websockets(self) -> Sequence[tuple[str, WebsocketHandler]]:
        return (
            ("/ws/v5/private", self.serve_stream),
            ("/ws/v5/public", self.serve_public_stream),
        )

    def signed(self, request: web.Request, form: Mapping[str, str]) -> bool:
        needed = ("OK-ACCESS-KEY", "OK-ACCESS-SIGN", "OK-ACCESS-TIMESTAMP", "OK-ACCESS-PASSPHRASE")
        return all(request.headers.get(name) for name in needed)

    def auth_error(self) -> tuple[int, Json]:
        return 401, {"msg": "Invalid OK-ACCESS-KEY", "code": "50111"}

    def rate_limit_error(self) -> Json:
        return {"msg": "Too Many Requests", "code": "50011"}

    def not_found(self) -> Json:
        return {"msg": "Not Found", "code": "404"}

    def _ok(self, data: Json) -> Json:
        return {"code": "0", "msg": "", "data": data}

    # -- the private websocket: `login`, then `account` and `positions` pushes ------------------

    def answer(self, stream: Stream, frame: str) -> Sequence[str]:
        if frame == "ping":  # OKX's keep-alive is a text frame, not a websocket ping
            return ["pong"]
        try:
            message = json.loads(frame)
            op = message.get("op")
        except (ValueError, AttributeError):
            return [self._event_error(stream, "60012", f"Illegal request: {frame}")]
        if op == "login":
            self.logins += 1
            args = message.get("args") or [{}]
            present = isinstance(args[0], dict) and all(args[0].get(k) for k in LOGIN_FIELDS)
            if not present:
                return [self._event_error(stream, "60009", "Login failed.")]
            if self.refuse_stream_auth:
                return [self._event_error(stream, "60005", "Invalid apiKey")]
            stream.authenticated = True
            return [json.dumps({"event": "login", "code": "0", "msg": "", "connId": stream.id})]
        if op == "subscribe":
            if not stream.authenticated:
                return [self._event_error(stream, "60011", "Please log in.")]
            replies = []
            for arg in message.get("args") or []:
                channel = arg.get("channel") if isinstance(arg, dict) else None
                if channel not in CHANNELS:
                    replies.append(
                        self._event_error(stream, "60018", f"Wrong URL or channel:{channel}")
                    )
                    continue
                stream.topics.add(channel)
                replies.append(json.dumps({"event": "subscribe", "arg": arg, "connId": stream.id}))
            return replies
        return [self._event_error(stream, "60019", f"Invalid op: {op}")]

    def _event_error(self, stream: Stream, code: str, message: str) -> str:
        return json.dumps({"event": "error", "code": code, "msg": message, "connId": stream.id})

    def message(self, topic: str, coins: Sequence[str] | None = None) -> Json:
        """An `account` push (`details` only of `coins`, if named) or a `positions` push (every
        position of the state, a closed one with `pos` "0", `pTime` the push time), or a public
        `tickers:<instId>` push."""
        if topic.startswith("tickers:"):
            ticker = self._ticker_push(topic)
            if ticker is None:
                raise ValueError(f"okx has no public topic {topic!r} here")
            return ticker
        if topic == "account":
            account = self._trading()
            if coins is not None:
                account["details"] = [d for d in account["details"] if d["ccy"] in coins]
            arg: dict[str, str] = {"channel": "account", "uid": UID}
            data = [account]
        elif topic == "positions":
            now = str(self.state.now_ms())
            arg = {"channel": "positions", "instType": "ANY", "uid": UID}
            data = [self._position(p) | {"pTime": now} for p in self.state.positions]
        else:
            raise ValueError(f"okx has no private channel {topic!r} here")
        return {"arg": arg, "eventType": "event", "curPage": 1, "lastPage": True, "data": data}

    # -- the public websocket: `tickers` of spot instruments, no login --------------------------

    def public_answer(self, stream: Stream, frame: str) -> Sequence[str]:
        """OKX's answer to one frame: `pong`, each subscription's echo, or an error."""
        if frame == "ping":
            return ["pong"]
        message = json.loads(frame)
        args = message.get("args") or []
        wanted = [f"{arg.get('channel')}:{arg.get('instId')}" for arg in args]
        if message.get("op") != "subscribe" or any(self._ticker_push(t) is None for t in wanted):
            return [self._event_error(stream, "60018", "channel doesn't exist")]
        stream.topics.update(wanted)
        return [json.dumps({"event": "subscribe", "arg": arg, "connId": stream.id}) for arg in args]

    def _ticker_push(self, topic: str) -> Json | None:
        """A `tickers:<instId>` push from the current state, if the spot instrument is listed."""
        channel, _, inst = topic.partition(":")
        rows = [row for row in self.tickers({"instType": "SPOT"})["data"] if row["instId"] == inst]
        if channel != "tickers" or not rows:
            return None
        return {"arg": {"channel": "tickers", "instId": inst}, "data": rows}

    # -- public --------------------------------------------------------------------------------

    def time(self, query: Mapping[str, str]) -> Json:
        return self._ok([{"ts": str(self.state.now_ms())}])

    def instruments(self, query: Mapping[str, str]) -> Json:
        kind = query.get("instType")
        if kind == "SPOT":
            return self._ok([_spot(m) for m in self.state.markets])
        if kind == "SWAP":
            return self._ok([*(_swap(m) for m in self.state.perps()), _inverse_swap()])
        if kind == "FUTURES":
            return self._ok([_future()])
        return self._ok([])

    def tickers(self, query: Mapping[str, str]) -> Json:
        kind = query.get("instType", "SPOT")
        markets = self.state.perps() if kind == "SWAP" else self.state.markets
        now = str(self.state.now_ms())
        rows = []
        for m in markets:
            last = num(self.state.prices.get(m.base, ZERO) / self.state.usd(m.quote))
            rows.append(
                {
                    "instType": kind,
                    "instId": _inst_id(m, swap=kind == "SWAP"),
                    "last": last,
                    "lastSz": "1",
                    "askPx": last,
                    "askSz": "1",
                    "bidPx": last,
                    "bidSz": "1",
                    "open24h": last,
                    "high24h": last,
                    "low24h": last,
                    "volCcy24h": "1000",
                    "vol24h": "1000",
                    "sodUtc0": last,
                    "sodUtc8": last,
                    "ts": now,
                }
            )
        return self._ok(rows)

    def ticker(self, query: Mapping[str, str]) -> Json:
        inst = query.get("instId", "")
        kind = "SWAP" if inst.endswith("-SWAP") else "SPOT"
        rows = self.tickers({"instType": kind})["data"]
        return self._ok([row for row in rows if row["instId"] == inst])

    def mark_prices(self, query: Mapping[str, str]) -> Json:
        """The linear swaps' marks and those of the inverse swap and the future positions
        (`contracts`), filtered by `instType` and `instId` as OKX does."""
        now = str(self.state.now_ms())
        found = [
            ("SWAP", _inst_id(m, swap=True), self.state.mark(m.base)) for m in self.state.perps()
        ]
        found += [
            ("SWAP" if c.inverse else "FUTURES", c.inst_id, c.mark_px) for c in self.contracts
        ]
        return self._ok(
            [
                {"instType": kind, "instId": inst, "markPx": num(mark), "ts": now}
                for kind, inst, mark in found
                if query.get("instType", kind) == kind and query.get("instId", inst) == inst
            ]
        )

    # -- private -------------------------------------------------------------------------------

    def currencies(self, query: Mapping[str, str]) -> Json:
        assets = sorted({a for m in self.state.markets for a in (m.base, m.quote)})
        return self._ok(
            [
                {
                    "ccy": asset,
                    "name": asset,
                    "logoLink": "",
                    "chain": f"{asset}-ERC20",
                    "canDep": True,
                    "canWd": True,
                    "canInternal": True,
                    "minDep": "0.00000001",
                    "minWd": "0.001",
                    "maxWd": "1000000",
                    "wdTickSz": "8",
                    "wdQuota": "10000000",
                    "usedWdQuota": "0",
                    "fee": "0.001",
                    "minFee": "0.001",
                    "maxFee": "0.002",
                    "mainNet": False,
                    "needTag": False,
                    "minDepArrivalConfirm": "64",
                    "minWdUnlockConfirm": "96",
                    "depQuotaFixed": "",
                    "usedDepQuotaFixed": "",
                }
                for asset in assets
            ]
        )

    def config(self, query: Mapping[str, str]) -> Json:
        return self._ok(
            [
                {
                    "uid": UID,
                    "mainUid": UID,
                    "acctLv": self.account_level,
                    "acctStpMode": "cancel_maker",
                    "posMode": "net_mode",
                    "autoLoan": False,
                    "greeksType": "PA",
                    "level": "Lv1",
                    "levelTmp": "",
                    "ctIsoMode": "automatic",
                    "mgnIsoMode": "automatic",
                    "roleType": "0",
                    "traderInsts": [],
                    "spotRoleType": "0",
                    "spotTraderInsts": [],
                    "opAuth": "0",
                    "kycLv": "3",
                    "label": "read-only",
                    "ip": "",
                    "perm": "read_only",
                    "liquidationGear": "-1",
                    "enableSpotBorrow": False,
                    "spotBorrowAutoRepay": False,
                    "type": "0",
                }
            ]
        )

    def trading(self, query: Mapping[str, str]) -> Json:
        return self._ok([self._trading()])

    def _trading(self) -> dict[str, Json]:
        """The trading account as both `/api/v5/account/balance` and the `account` channel
        render it."""
        now = str(self.state.now_ms())
        details = []
        totals = dict.fromkeys(("eq", "imr", "mmr", "upl", "notional"), ZERO)
        for asset, h in self.state.account("trading").items():
            usd = self.state.usd(asset)
            cash = h.balance - h.debt
            frozen = h.locked + h.initial_margin
            totals["eq"] += h.equity * usd
            totals["imr"] += h.initial_margin * usd
            totals["mmr"] += h.maint_margin * usd
            totals["upl"] += h.unrealized_pnl * usd
            details.append(
                {
                    "ccy": asset,
                    "eq": num(h.equity),
                    "eqUsd": num(h.equity * usd),
                    "disEq": num(h.equity * usd),
                    "cashBal": num(cash),
                    "availBal": num(cash - frozen),
                    "availEq": num(h.equity - frozen),
                    "frozenBal": num(frozen),
                    "ordFrozen": num(h.locked),
                    "liab": num(h.debt),
                    "crossLiab": num(h.debt),
                    "isoLiab": "0",
                    "interest": num(h.interest),
                    "upl": num(h.unrealized_pnl),
                    "uplLiab": "0",
                    "isoEq": "0",
                    "isoUpl": "0",
                    "imr": num(h.initial_margin),
                    "mmr": num(h.maint_margin),
                    "mgnRatio": "",
                    "maxLoan": "0",
                    "notionalLever": "0",
                    "stgyEq": "0",
                    "twap": "0",
                    "fixedBal": "0",
                    "borrowFroz": "0",
                    "spotInUseAmt": "",
                    "uTime": now,
                }
            )
        for p in self.state.positions:
            totals["notional"] += abs(p.size) * self.state.position_mark(p)
        for m in self.margins:  # an isolated position's equity: holding minus its loan
            owed = (m.liab + m.interest) * self.state.usd(m.liab_ccy)
            totals["eq"] += m.pos * self.state.usd(m.pos_ccy) - owed
        if self.account_level == "2":  # fields that do not apply to the mode are ""
            for row in details:
                row |= {"liab": "", "crossLiab": "", "interest": ""}
                margin_upl = sum((m.upl for m in self.margins if m.pos_ccy == row["ccy"]), ZERO)
                row["upl"] = num(Decimal(str(row["upl"])) + margin_upl)
        account = {
            "totalEq": num(totals["eq"]),
            "adjEq": num(totals["eq"]),
            "isoEq": "0",
            "imr": num(totals["imr"]),
            "mmr": num(totals["mmr"]),
            "mgnRatio": num(totals["eq"] / totals["mmr"]) if totals["mmr"] else "",
            "notionalUsd": num(totals["notional"]),
            "ordFroz": "0",
            "borrowFroz": "0",
            "upl": num(totals["upl"]),
            "uTime": now,
            "details": details,
        }
        return account

    def funding(self, query: Mapping[str, str]) -> Json:
        return self._ok(
            [
                {
                    "ccy": asset,
                    "bal": num(h.balance),
                    "availBal": num(h.free),
                    "frozenBal": num(h.locked),
                }
                for asset, h in self.state.account("funding").items()
            ]
        )

    def positions(self, query: Mapping[str, str]) -> Json:
        kind = query.get("instType")
        found = [self._position(p) for p in self.state.positions if p.size]
        found += [self._contract(c) for c in self.contracts if c.pos]
        found += [self._margin(m) for m in self.margins if m.pos]
        return self._ok([row for row in found if kind in {None, row["instType"]}])

    def _contract(self, c: Contract) -> Json:
        """A position in the inverse swap or the dated future, as OKX renders it."""
        now = str(self.state.now_ms())
        notional = abs(c.pos) * c.ct_val * (1 if c.inverse else c.mark_px)
        return {
            **self._position(FakePosition("ETH", ZERO, c.avg_px)),
            "instType": "SWAP" if c.inverse else "FUTURES",
            "instId": c.inst_id,
            "pos": num(c.pos),
            "avgPx": num(c.avg_px),
            "markPx": num(c.mark_px),
            "last": num(c.mark_px),
            "upl": num(c.upl),
            "notionalUsd": num(notional),
            "ccy": "BTC" if c.inverse else "USDT",
            "posId": c.inst_id,
            "imr": num(notional / 10),
            "mmr": num(notional / 200),
            "uTime": now,
        }

    def _margin(self, m: MarginPosition) -> Json:
        """An isolated `MARGIN` row (OKX's example: `liab` negative, `posCcy` the held coin)."""
        return {
            **self._position(FakePosition("ETH", ZERO, m.avg_px)),
            "instType": "MARGIN",
            "instId": m.inst_id,
            "mgnMode": m.mgn_mode,
            "pos": num(m.pos),
            "posCcy": m.pos_ccy,
            "availPos": num(m.pos),
            "liab": num(-m.liab),
            "liabCcy": m.liab_ccy,
            "interest": num(m.interest),
            "ccy": m.pos_ccy,
            "upl": num(m.upl),
            "posId": m.inst_id,
        }

    def _position(self, p: FakePosition) -> Json:
        mark = self.state.position_mark(p)
        notional = abs(p.size) * mark
        now = str(self.state.now_ms())
        return {
            "instType": "SWAP",
            "instId": _inst_id(Market(p.base, p.settle), swap=True),
            "mgnMode": p.margin_mode,
            "posSide": "net",
            "pos": num(p.size / contract_value(p.base)),
            "posCcy": "",
            "availPos": "",
            "avgPx": num(p.entry_price),
            "markPx": num(mark),
            "last": num(mark),
            "idxPx": num(self.state.prices.get(p.base, ZERO)),
            "upl": num(self.state.position_pnl(p)),
            "uplRatio": "0",
            "notionalUsd": num(notional),
            "lever": str(p.leverage),
            "liqPx": liquidation(p, ""),
            "imr": num(notional / p.leverage),
            "mmr": num(notional / 200),
            "margin": "",
            "mgnRatio": "",
            "ccy": p.settle,
            "liab": "",
            "liabCcy": "",
            "interest": "",
            "adl": "1",
            "posId": f"{p.base}{p.settle}{p.margin_mode}",
            "cTime": str(p.updated_ms),
            "uTime": now,
            "realizedPnl": "0",
            "fundingFee": "0",
            "fee": "0",
            "pnl": "0",
            "bePx": num(p.entry_price),
        }

    def deposits(self, query: Mapping[str, str]) -> Json:
        return self._ok(
            [
                {
                    "ccy": t.asset,
                    "chain": f"{t.asset}-{t.network}",
                    "amt": num(t.amount),
                    "from": "",
                    "areaCodeFrom": "",
                    "to": t.address,
                    "txId": t.txid,
                    "ts": str(t.at_ms),
                    "state": t.status,
                    "depId": t.id,
                    "fromWdId": "",
                    "actualDepBlkConfirm": "12",
                }
                for t in _window(self.state.deposits, query)
            ]
        )

    def withdrawals(self, query: Mapping[str, str]) -> Json:
        return self._ok(
            [
                {
                    "ccy": t.asset,
                    "chain": f"{t.asset}-{t.network}",
                    "amt": num(t.amount),
                    "fee": num(t.fee),
                    "feeCcy": t.asset,
                    "from": "",
                    "areaCodeFrom": "",
                    "to": t.address,
                    "areaCodeTo": "",
                    "txId": t.txid,
                    "ts": str(t.at_ms),
                    "state": t.status,
                    "wdId": t.id,
                    "clientId": "",
                    "nonTradableAsset": False,
                }
                for t in _window(self.state.withdrawals, query)
            ]
        )


def _inst_id(m: Market, swap: bool) -> str:
    return f"{m.base}-{m.quote}-SWAP" if swap else f"{m.base}-{m.quote}"


def _spot(m: Market) -> Json:
    return {
        "instType": "SPOT",
        "instId": _inst_id(m, swap=False),
        "uly": "",
        "instFamily": "",
        "baseCcy": m.base,
        "quoteCcy": m.quote,
        "settleCcy": "",
        "ctVal": "",
        "ctMult": "",
        "ctValCcy": "",
        "ctType": "",
        "optType": "",
        "stk": "",
        "listTime": "1548133413000",
        "expTime": "",
        "lever": "10",
        "tickSz": "0.01",
        "lotSz": "0.00000001",
        "minSz": "0.00001",
        "alias": "",
        "state": "live",
        "maxLmtSz": "9999999999",
        "maxMktSz": "1000000",
        "ruleType": "normal",
    }


def _swap(m: Market) -> Json:
    family = f"{m.base}-{m.quote}"
    return {
        "instType": "SWAP",
        "instId": _inst_id(m, swap=True),
        "uly": family,
        "instFamily": family,
        "baseCcy": "",
        "quoteCcy": "",
        "settleCcy": m.quote,
        "ctVal": num(contract_value(m.base)),
        "ctMult": "1",
        "ctValCcy": m.base,
        "ctType": "linear",
        "optType": "",
        "stk": "",
        "listTime": "1611916828000",
        "expTime": "",
        "lever": "100",
        "tickSz": "0.1",
        "lotSz": "0.01",
        "minSz": "0.01",
        "alias": "",
        "state": "live",
        "maxLmtSz": "100000000",
        "maxMktSz": "10000",
        "ruleType": "normal",
    }


def _inverse_swap() -> Json:
    return _swap(Market("BTC", "USD")) | {
        "settleCcy": "BTC",
        "ctVal": "100",
        "ctValCcy": "USD",
        "ctType": "inverse",
    }


def _future() -> Json:
    return _swap(Market("ETH")) | {
        "instType": "FUTURES",
        "instId": FUTURE,
        "expTime": FUTURE_EXPIRY_MS,
        "alias": "next_quarter",
    }


def _window(transfers: list[Transfer], query: Mapping[str, str]) -> list[Transfer]:
    coin = query.get("ccy")
    after = int(query.get("before", -1))  # OKX: "before" = records newer than this ts
    return [t for t in transfers if t.at_ms > after and coin in {None, t.asset}]
