"""ccxt exchange instances as the exchange venue uses them, and the calls it makes on them.

`create_exchange` builds one ccxt async instance per (exchange, account): separate instances keep
ccxt's caches and websocket clients apart (venue-pitfalls 16). Its options keep `load_markets`
to spot and linear perpetuals, and Bybit's inverse ones (two to three requests instead of a
dozen), tell Bybit the account
is unified (skipping two requests before every balance), keep ccxt's own wire logging, which
prints URLs with signatures and headers with the key at DEBUG, at WARNING, and use the daemon's
timeout.

`BALANCES` names every account type the daemon reads, with the `fetch_balance` params ccxt needs
and the fields the exchange's raw answer always has; `fetch_balance` and `fetch_positions` run
the call, translate ccxt's errors and check the answer, because ccxt reads an empty HTTP 200 as
an empty account.

| exchange | account     | endpoint                                          |
|----------|-------------|---------------------------------------------------|
| binance  | `spot`      | GET /api/v3/account                               |
| binance  | `margin`    | GET /sapi/v1/margin/account (cross)               |
| binance  | `isolated`  | GET /sapi/v1/margin/isolated/account              |
| binance  | `futures`   | GET /fapi/v3/account (USDⓈ-M)                     |
| binance  | `funding`   | POST /sapi/v1/asset/get-funding-asset             |
| binance  | `portfolio` | GET /papi/v1/balance (portfolio margin)           |
| binance  | `coinm`     | GET /dapi/v1/account (COIN-M)                     |
| bybit    | `unified`   | GET /v5/account/wallet-balance?accountType=UNIFIED |
| bybit    | `funding`   | GET /v5/asset/transfer/query-account-coins-balance?accountType=FUND |
| okx      | `trading`   | GET /api/v5/account/balance                       |
| okx      | `funding`   | GET /api/v5/asset/balances                        |
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import anyio
import ccxt.async_support as ccxt
import ccxt.pro as ccxtpro
import structlog

from equity_daemon.errors import VenueDataError
from equity_daemon.venues.exchange_budget import RequestBudget
from equity_daemon.venues.exchange_errors import Path, check_answer, exchange_errors, name_request
from equity_daemon.venues.exchange_listings import Listings
from equity_daemon.venues.exchange_urls import point_at
from equity_daemon.venues.exchanges import BadField, number

log = structlog.get_logger()

SUPPORTED = ("binance", "bybit", "okx")
DEFAULT_TIMEOUT = 10.0

# ccxt logs every request's URL (signature included) and headers (API key included) at DEBUG
WIRE_LOG = "equity_daemon.ccxt"

OPTIONS: Mapping[str, Mapping[str, Any]] = {
    "binance": {
        "fetchCurrencies": False,
        "fetchMargins": False,
        "fetchMarkets": {"types": ["spot", "linear"]},
    },
    "bybit": {
        "fetchMarkets": {"types": ["spot", "linear", "inverse"]},  # inverse: unified positions
        "enableUnifiedAccount": True,
        "enableUnifiedMargin": False,
    },
    "okx": {  # dated futures too: a position in one is a hedge (`exchanges.okx.position`)
        "fetchMarkets": {"types": ["spot", "swap", "future"]},
    },
}


SPOT_ONLY: Mapping[str, Any] = {"fetchMarkets": {"types": ["spot"]}}


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API key; OKX also needs its `password` (the passphrase). Never shown in a repr."""

    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class BalanceCall:
    """One account type: ccxt's `fetch_balance` params and the paths its raw answer must have."""

    params: Mapping[str, Any]
    required: tuple[Path, ...]


BALANCES: Mapping[str, Mapping[str, BalanceCall]] = {
    "binance": {
        "spot": BalanceCall({"type": "spot"}, (("balances",), ("updateTime",))),
        "margin": BalanceCall(
            {"type": "margin", "marginMode": "cross"}, (("userAssets",), ("totalNetAssetOfBtc",))
        ),
        "isolated": BalanceCall({"type": "margin", "marginMode": "isolated"}, (("assets",),)),
        "futures": BalanceCall(
            {"type": "swap", "subType": "linear"}, (("assets",), ("totalMarginBalance",))
        ),
        "funding": BalanceCall({"type": "funding"}, ((),)),
        "portfolio": BalanceCall({"portfolioMargin": True}, ((),)),
        "coinm": BalanceCall({"type": "swap", "subType": "inverse"}, (("assets",),)),
    },
    "bybit": {
        "unified": BalanceCall(
            {"type": "unified"},
            (("result", "list", 0, "coin"), ("result", "list", 0, "totalEquity")),
        ),
        "funding": BalanceCall({"type": "funding"}, (("result", "balance"),)),
    },
    "okx": {
        "trading": BalanceCall(
            {"type": "trading"}, (("data", 0, "details"), ("data", 0, "totalEq"))
        ),
        "funding": BalanceCall({"type": "funding"}, (("data",),)),
    },
}

# the raw positions answer: Binance a list, Bybit `result.list`, OKX `data`
POSITIONS_REQUIRED: Mapping[str, tuple[Path, ...]] = {
    "binance": ((),),
    "bybit": (("result", "list"),),
    "okx": (("data",),),
}


def create_exchange(
    exchange_id: str,
    credentials: Credentials | None,
    *,
    base_url: str | None = None,
    sandbox: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    rate_limit: bool = True,
    streaming: bool = False,
    budget: RequestBudget | None = None,
    spot_only: bool = False,
    market_types: Sequence[str] | None = None,
) -> Any:
    """A ccxt async exchange for one account (keyless for market data with `credentials`
    None); the caller must `await exchange.close()`.

    Args:
        streaming: a ccxt.pro instance (REST and websockets), else a REST-only one.
        base_url: send every request there instead (`exchange_urls.point_at`).
        sandbox: use the exchange's test network.
        timeout: seconds for one HTTP request.
        rate_limit: ccxt's client-side throttle (tests against a fake server turn it off).
        budget: the exchange host's shared throttle, which this instance then waits on and
            counts its request weight in (`exchange_budget`).
        spot_only: load spot markets only (market data: fewer requests, and a symbol id such
            as Binance's `ETHUSDT` then names one market, not the spot one and the perpetual).
        market_types: load these ccxt market types instead of `OPTIONS`' (Binance COIN-M:
            `inverse`, which no other account type needs).

    Raises:
        ValueError: for an exchange not in `SUPPORTED`, or an unusable `base_url`.
    """
    if exchange_id not in SUPPORTED:
        raise ValueError(f"unsupported exchange {exchange_id!r}; use one of {SUPPORTED}")
    wire_log = logging.getLogger(WIRE_LOG)
    wire_log.setLevel(logging.WARNING)
    config: dict[str, Any] = {
        "timeout": round(timeout * 1000),
        "enableRateLimit": rate_limit,
        "enableLastJsonResponse": True,  # the positions check reads the raw answer
        "options": _copy(OPTIONS[exchange_id]) | _markets(spot_only, market_types),
        "logger": wire_log,
    }
    if credentials is not None:
        config |= {"apiKey": credentials.api_key, "secret": credentials.secret}
        if credentials.password is not None:
            config["password"] = credentials.password
    exchange = getattr(ccxtpro if streaming else ccxt, exchange_id)(config)
    point_at(exchange, base_url, sandbox=sandbox)
    if budget is not None:
        budget.attach(exchange)
    _name_failed_requests(exchange, base_url)
    if streaming:
        # a silent socket is found within 2 pings (ccxt's `maxPingPongMisses`), not 6 minutes
        exchange.streaming["keepAlive"] = STREAM_PING_MS
        # the venue takes its own REST snapshot; ccxt's would be two more requests per socket
        exchange.options.setdefault("watchPositions", {})["fetchPositionsSnapshot"] = False
        _track_timers(exchange)
    return exchange


def _markets(spot_only: bool, types: Sequence[str] | None) -> dict[str, Any]:
    if types is not None:
        return {"fetchMarkets": {"types": list(types)}}
    return _copy(SPOT_ONLY) if spot_only else {}


def _name_failed_requests(exchange: Any, base_url: str | None) -> None:
    """Note on every ccxt exception a REST request raises which request it was: method, path
    (without the query, which holds the signature, and without `base_url`'s own path, which
    may be a proxy's) and the HTTP status, when an answer came (`exchange_errors.name_request`).
    The status is taken from ccxt's `on_rest_response` hook, by the request's URL (the
    signed URL of a private request is unique)."""
    statuses: dict[str, int] = {}
    prefix = "" if base_url is None else urlsplit(base_url).path.rstrip("/")
    heard = exchange.on_rest_response

    def on_rest_response(code: int, reason: Any, url: str, *rest: Any) -> Any:
        statuses[url] = code
        return heard(code, reason, url, *rest)

    send = exchange.fetch

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        try:
            return await send(url, method, headers, body)
        except ccxt.BaseError as exc:
            path = urlsplit(url).path
            if prefix and path.startswith(prefix):
                path = path[len(prefix) :]
            name_request(exc, method, path, statuses.get(url))
            raise
        finally:
            statuses.pop(url, None)

    exchange.on_rest_response = on_rest_response
    exchange.fetch = fetch


def _track_timers(exchange: Any) -> None:
    """Keep the handles of the timers ccxt.pro sets (Binance's listen-key keep-alive every
    20 minutes, its listen-token renewal) so that `close` can cancel them: a keep-alive firing
    on a closed instance fails, and ccxt's failure path then opens a session nobody closes."""
    timers: list[asyncio.TimerHandle] = []
    original = exchange.delay

    def delay(timeout: float, method: Any, *args: Any) -> asyncio.TimerHandle:
        loop: asyncio.AbstractEventLoop = exchange.asyncio_loop
        timers[:] = [t for t in timers if not t.cancelled() and t.when() > loop.time()]
        handle: asyncio.TimerHandle = original(timeout, method, *args)
        timers.append(handle)
        return handle

    exchange.delay = delay
    exchange.equity_daemon_timers = timers


async def close(exchange: Any) -> None:
    """Close a ccxt instance: its timers first (`_track_timers`), then its sockets and session."""
    for timer in getattr(exchange, "equity_daemon_timers", ()):
        timer.cancel()
    await exchange.close()


CLOSE_GRACE = 5.0  # seconds all of an owner's ccxt instances may take to close


async def close_all(clients: Sequence[Any], **context: str) -> None:
    """Close every instance (`close`), even while being cancelled (ccxt warns of unclosed
    ones), within `CLOSE_GRACE`; a failure is logged with `context` and the next still closes."""
    with anyio.move_on_after(CLOSE_GRACE, shield=True):
        for client in clients:
            try:
                await close(client)
            except Exception as exc:  # closing is best effort
                log.warning("exchange_close_failed", error=type(exc).__name__, **context)


STREAM_PING_MS = 20_000
PushListener = Callable[[str, dict[str, Any]], None]
# the ccxt.pro handlers whose raw messages `listen` hands over, and what they carry
_PUSH_HANDLERS: Mapping[str, str] = {
    "handle_balance": "balance",
    "handle_positions": "positions",
    "handle_message": "message",  # every frame, also the events ccxt has no handler for
}


def listen(exchange: Any, listener: PushListener) -> None:
    """Call `listener(kind, raw message)` for every balance (`kind` "balance") and position
    ("positions") push, before ccxt parses it, and for every frame the socket receives
    ("message": e.g. Binance's `listenKeyExpired`, which ccxt ignores).

    ccxt resolves a `watch_*` call with its parsed cache only: a push arriving before the
    caller awaits again is merged into that cache but never handed over, and the raw message
    (with the exchange's event time, e.g. Bybit's `creationTime`) is gone. The venue patches its
    own state from every raw message instead and uses `watch_*` to subscribe and to see errors.
    """
    for name, kind in _PUSH_HANDLERS.items():
        original = getattr(type(exchange), name)

        def handler(
            client: Any, message: dict[str, Any], kind: str = kind, original: Any = original
        ) -> Any:
            listener(kind, message)
            return original(exchange, client, message)

        setattr(exchange, name, handler)  # ccxt looks its handlers up on the instance


def closed_by_exchange(exc: BaseException) -> bool:
    """Whether a `watch_*` failed because the exchange closed a working socket: ccxt.pro's
    client rejects its futures with a plain `NetworkError` then ("Connection closed by remote
    server"); its subclasses (timeouts, refusals, rate limits) mean something else."""
    return type(exc) is ccxt.NetworkError


async def fetch_balance(exchange: Any, venue: str, account: str) -> dict[str, Any]:
    """ccxt's balance of one account type, checked (`BALANCES` names the accounts).

    Raises:
        VenueUnavailable, VenueAuthError, VenueDataError: as `exchange_errors` translates them;
            `VenueDataError` too when the raw answer lacks a field the exchange always sends.
    """
    call = BALANCES[exchange.id][account]
    with exchange_errors(venue, exchange):
        balance: dict[str, Any] = await exchange.fetch_balance(dict(call.params))
    check_answer(venue, f"{account} balance", balance.get("info"), call.required)
    return balance


async def fetch_positions(
    exchange: Any, venue: str, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """ccxt's open positions (Binance USDⓈ-M, Bybit linear or inverse, OKX every instrument
    type), checked.

    On Bybit pass `{"settleCoin": "USDC"}` for the USDC perpetuals (USDT is ccxt's default)
    and `{"subType": "inverse"}` for the inverse ones; pages are followed (`paginate`). On OKX
    no `instType` unless `params` names one: OKX then returns every open position (margin,
    swaps, futures, options) for the mapping to place.
    """
    request = dict(params or {})
    if exchange.id == "bybit":
        request.setdefault("paginate", True)
    exchange.last_json_response = None
    with exchange_errors(venue, exchange):
        positions: list[dict[str, Any]] = await exchange.fetch_positions(None, request)
    check_answer(venue, "positions", exchange.last_json_response, POSITIONS_REQUIRED[exchange.id])
    return positions


async def last_price(
    exchange: Any, source: str, field: str, base: str, quote: str, listings: Listings | None = None
) -> Decimal:
    """The exchange's last spot price of `base` in `quote`: the raw ticker's `field`
    (`venues/exchanges/<x>.TICKER_LAST`), parsed from the exchange's string. A market the
    instance does not know is looked for again in the host's `listings` (listed since start).

    Raises:
        LookupError: the exchange lists no such spot market.
        VenueUnavailable, VenueAuthError, VenueDataError: as `exchange_errors` translates them;
            `VenueDataError` too when the ticker lacks the field or it is no number.
    """
    symbol = f"{base}/{quote}"
    with exchange_errors(source, exchange):
        await exchange.load_markets()
        if symbol not in exchange.markets and listings is not None:
            await listings.refresh(exchange)
        if symbol not in exchange.markets:
            raise LookupError(f"{exchange.id} lists no {symbol} market")
        ticker = await exchange.fetch_ticker(symbol)
    try:
        return number(ticker.get("info"), field)
    except BadField as exc:
        raise VenueDataError(source, f"{symbol} ticker: {exc}") from None


def _copy(options: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy: ccxt writes into its options (caches, brackets)."""
    return {k: _copy(v) if isinstance(v, Mapping) else _copy_value(v) for k, v in options.items()}


def _copy_value(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
