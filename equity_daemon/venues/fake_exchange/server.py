"""The fake exchange's HTTP side: one aiohttp server per exchange on 127.0.0.1, a random port.

Every request goes through one handler: it records the call, checks that the signing headers are
there (401 with the exchange's own auth error body when they are not), plays the next queued
fault of the route if there is one, and else answers from the dialect's route table. Websocket
routes can be added beside it (`Dialect.websockets`): Binance's listen-key stream, Bybit's `auth`
and OKX's `login` are each one more aiohttp route on the same application. `StreamingDialect` holds
what Bybit's and OKX's private sockets share (log in, subscribe to topics, pushes, drops, silence);
each of them only says how it answers a frame and how a push of a topic looks.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

from aiohttp import WSMsgType, web

from equity_daemon.venues.fake_exchange.state import (
    FakePosition,
    FakeState,
    Holding,
    Transfer,
)

Json = Any  # what json.dumps takes
Handler = Callable[[Mapping[str, str]], Json]
WebsocketHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Fault(enum.Enum):
    """What the next answers of a route do instead of answering.

    | fault          | answer                                                          |
    |----------------|-----------------------------------------------------------------|
    | `RATE_LIMIT`   | 429 with `Retry-After` and the exchange's rate-limit body       |
    | `BANNED`       | 418 with `Retry-After` (Binance's IP ban after ignoring 429s)   |
    | `SERVER_ERROR` | 503 (or the status asked for) with a load balancer's HTML page  |
    | `HANG`         | nothing, until the server stops                                 |
    | `MALFORMED`    | 200 with a JSON body cut short                                  |
    | `EMPTY`        | 200 with an empty body                                          |
    | `AUTH`         | 401 with the exchange's own "invalid key" body                  |
    """

    RATE_LIMIT = "rate_limit"
    BANNED = "banned"
    SERVER_ERROR = "server_error"
    HANG = "hang"
    MALFORMED = "malformed"
    EMPTY = "empty"
    AUTH = "auth"


@dataclass(frozen=True, slots=True)
class Route:
    """One REST endpoint: `private` ones need the signing headers."""

    method: str
    path: str
    handler: Handler
    private: bool = False


@dataclass(frozen=True, slots=True)
class Seen:
    """One request the server received (never its headers: they carry the key), and when
    (monotonic seconds: a test counts requests per time)."""

    method: str
    path: str
    query: Mapping[str, str]
    at: float = field(default_factory=time.monotonic)


class Held:
    """One held answer of a route (`FakeExchange.hold`): computed from the state when its
    request arrives, sent only when the test calls `release()` (a slow REST answer, older by
    then than what the exchange pushes meanwhile)."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    async def wait(self) -> None:
        self.arrived.set()
        await self._released.wait()


@dataclass(frozen=True, slots=True)
class _Queued:
    fault: Fault
    status: int | None
    retry_after: int | None


class Dialect(ABC):
    """**Base class**: one exchange's REST API over a `FakeState`.

    Subclasses give the route table, the auth check and the exchange's error bodies.
    """

    name = "exchange"
    # set by a test to see a websocket `auth` / `login` refused
    refuse_stream_auth = False

    def __init__(self, state: FakeState) -> None:
        self.state = state

    @abstractmethod
    def routes(self) -> Sequence[Route]: ...

    def websockets(self) -> Sequence[tuple[str, WebsocketHandler]]:
        """(path, handler) pairs of aiohttp websocket routes; none by default."""
        return ()

    async def push(self, topic: str, coins: Sequence[str] | None = None) -> int:
        """Send `topic` from the current state to its websocket subscribers; how many.
        `coins`: a balance push naming only these coins (the others unchanged). A dialect that
        serves no websocket refuses."""
        raise LookupError(f"the fake {self.name} serves no websocket")

    async def send(self, topic: str, message: Json) -> int:
        """Send `message` as it is (a test's malformed push) to the subscribers of `topic`."""
        raise LookupError(f"the fake {self.name} serves no websocket")

    async def drop_streams(self) -> None:
        """Close every websocket the server holds open (a dialect without any has none)."""
        return None

    @property
    def subscribers(self) -> dict[str, int]:
        """How many authenticated websockets follow each topic."""
        return {}

    @abstractmethod
    def signed(self, request: web.Request, form: Mapping[str, str]) -> bool:
        """Whether the request carries the exchange's signing headers (never checked further)."""

    @abstractmethod
    def auth_error(self) -> tuple[int, Json]: ...

    @abstractmethod
    def rate_limit_error(self) -> Json: ...

    def not_found(self) -> Json:
        return {"error": "not found"}


_connections = itertools.count(1)


@dataclass(eq=False)
class Stream:
    """One open websocket: whether it logged in, and the topics it follows. A `public` one
    (market data) needs no log-in."""

    socket: web.WebSocketResponse
    authenticated: bool = False
    public: bool = False
    topics: set[str] = field(default_factory=set)
    id: str = field(default_factory=lambda: f"fake-{next(_connections)}")


class StreamingDialect(Dialect):
    """**Base class**: a dialect with a private websocket (log-in-then-subscribe, or subscribed
    by its URL) and a public market-data one (Bybit, OKX, Binance).

    The sockets, their topics, pushes, drops and silence live here; a subclass says how it
    answers one text frame (`answer` on the private socket, `public_answer` on the public one:
    the frames to send back) and how a push looks (`message`, private or public topics alike).
    `silent` (set by a test) makes every socket a half-open one: it stays up but answers
    nothing, not even pings, and carries no push.
    """

    silent = False

    def __init__(self, state: FakeState) -> None:
        super().__init__(state)
        self._streams: list[Stream] = []

    @abstractmethod
    def answer(self, stream: Stream, frame: str) -> Sequence[str]:
        """The text frames to send back to one frame a client sent."""

    @abstractmethod
    def public_answer(self, stream: Stream, frame: str) -> Sequence[str]:
        """The text frames the public (market-data) socket sends back to one client frame."""

    @abstractmethod
    def message(self, topic: str, coins: Sequence[str] | None = None) -> Json:
        """A push of `topic` from the current state (`coins`: a balance naming only these)."""

    def opened(self, stream: Stream, request: web.Request) -> bool:
        """Whether to keep a socket just opened; a subclass may subscribe it by its URL (a
        listen key in it, as Binance's user-data streams) or refuse it."""
        return True

    async def serve_stream(self, request: web.Request) -> web.StreamResponse:
        """One private websocket, open until the client or `drop_streams` closes it."""
        return await self._serve(request, public=False)

    async def serve_public_stream(self, request: web.Request) -> web.StreamResponse:
        """One public (market-data) websocket, open until the client or `drop_streams` closes it."""
        return await self._serve(request, public=True)

    async def _serve(self, request: web.Request, *, public: bool) -> web.StreamResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        stream = Stream(socket, public=public)
        if not self.opened(stream, request):
            await socket.close(code=1008, message=b"refused")
            return socket
        answer = self.public_answer if public else self.answer
        self._streams.append(stream)
        try:
            async for frame in socket:
                if frame.type is WSMsgType.TEXT and not self.silent:
                    for reply in answer(stream, frame.data):
                        await socket.send_str(reply)
        finally:
            self._streams.remove(stream)
        return socket

    async def push(self, topic: str, coins: Sequence[str] | None = None) -> int:
        return await self.send(topic, self.message(topic, coins))

    async def send(self, topic: str, message: Json) -> int:
        if self.silent:
            return 0
        sent = 0
        for stream in list(self._streams):
            if topic in stream.topics:
                await stream.socket.send_json(message)
                sent += 1
        return sent

    async def drop_streams(self) -> None:
        """Close every websocket, as an exchange does to an idle or expired connection."""
        for stream in list(self._streams):
            await stream.socket.close()

    @property
    def subscribers(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for stream in self._streams:
            for topic in stream.topics:
                counts[topic] = counts.get(topic, 0) + 1
        return counts


class FakeExchange:
    """A fake exchange server and its test-control API (Python, not HTTP).

    Use it as `async with FakeExchange(BinanceDialect) as fake:`; point a ccxt exchange at
    `fake.base_url` (`exchange_urls.point_at`). Change what it serves with `set_holding`,
    `set_account`, `set_positions`, `set_price`, `add_deposit`, `add_withdrawal`, make the
    next answers of a route fail with `fail`, hold one back with `hold`, or edit them with
    `tamper`.
    """

    def __init__(
        self, dialect: Callable[[FakeState], Dialect], state: FakeState | None = None
    ) -> None:
        self.state = state or FakeState()
        self.dialect = dialect(self.state)
        self.requests: list[Seen] = []
        self._routes = {(r.method, r.path): r for r in self.dialect.routes()}
        self._faults: dict[str, deque[_Queued]] = {}
        self._held: dict[str, deque[Held]] = {}
        self._tampered: dict[str, Callable[[Json], Json]] = {}
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def name(self) -> str:
        return self.dialect.name

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def paths(self) -> frozenset[str]:
        """Every REST path served."""
        return frozenset(path for _, path in self._routes)

    async def start(self) -> None:
        app = web.Application()
        for path, handler in self.dialect.websockets():
            app.router.add_get(path, handler)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only through the server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._release.set()
        for held in self._held.values():
            for answer in held:
                answer.release()
        await self.dialect.drop_streams()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- test control --------------------------------------------------------------------------

    def set_holding(self, account: str, asset: str, holding: Holding | None = None) -> None:
        """Put (or, with None, remove) one asset in one account."""
        held = self.state.holdings.setdefault(account, {})
        if holding is None:
            held.pop(asset, None)
        else:
            held[asset] = holding

    def set_account(self, account: str, holdings: Mapping[str, Holding]) -> None:
        """Replace everything an account holds."""
        self.state.holdings[account] = dict(holdings)

    def set_positions(self, positions: Sequence[FakePosition]) -> None:
        self.state.positions = list(positions)

    def set_price(self, base: str, last: Any, mark: Any = None) -> None:
        """The last price of `base` against USDT, and the perpetual's mark (the last if None)."""
        self.state.prices[base] = Decimal(str(last))
        if mark is None:
            self.state.marks.pop(base, None)
        else:
            self.state.marks[base] = Decimal(str(mark))

    def settle_session(self, account: str = "unified") -> Decimal:
        """Bybit's 8 h session settlement of the USDC contracts (`FakeState.settle_session`)."""
        return self.state.settle_session(account)

    def add_deposit(self, transfer: Transfer) -> None:
        self.state.deposits.append(transfer)

    def add_withdrawal(self, transfer: Transfer) -> None:
        self.state.withdrawals.append(transfer)

    def fail(
        self,
        path: str,
        fault: Fault,
        times: int = 1,
        *,
        status: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Make the next `times` requests to `path` answer with `fault` instead.

        Args:
            status: the HTTP status of a `SERVER_ERROR` (503 by default).
            retry_after: seconds in the `Retry-After` header of `RATE_LIMIT`/`BANNED` (none sent
                when None).
        """
        if path not in self.paths:
            raise KeyError(f"{self.name} serves no {path}")
        queue = self._faults.setdefault(path, deque())
        queue.extend(_Queued(fault, status, retry_after) for _ in range(times))

    def hold(self, path: str) -> Held:
        """Hold the next answer of `path`: computed when its request arrives, sent at
        `release()` (`arrived` is set once the request is in)."""
        if path not in self.paths:
            raise KeyError(f"{self.name} serves no {path}")
        held = Held()
        self._held.setdefault(path, deque()).append(held)
        return held

    def tamper(self, path: str, edit: Callable[[Json], Json] | None) -> None:
        """Pass every answer of `path` through `edit` (None: stop), e.g. a payload whose coin
        balance disagrees with the exchange's own total, which no consistent state renders."""
        if path not in self.paths:
            raise KeyError(f"{self.name} serves no {path}")
        if edit is None:
            self._tampered.pop(path, None)
        else:
            self._tampered[path] = edit

    async def push(self, topic: str, coins: Sequence[str] | None = None) -> int:
        """Push `topic` (Bybit `wallet`, `position`; OKX `account`, `positions`; Binance
        `account`) from the current state to the websocket subscribers; how many sockets it
        reached. `coins`: a balance push naming only these."""
        return await self.dialect.push(topic, coins)

    async def send(self, topic: str, message: Any) -> int:
        """Send a raw `message` (e.g. a malformed push) to the subscribers of `topic`."""
        return await self.dialect.send(topic, message)

    async def drop_streams(self) -> None:
        """Close every open websocket, as an exchange does at a disconnect."""
        await self.dialect.drop_streams()

    def calls(self, path: str) -> list[Mapping[str, str]]:
        """The query of every request made to `path`, in order."""
        return [seen.query for seen in self.requests if seen.path == path]

    # -- serving -------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        form: Mapping[str, str] = {}
        if request.method == "POST" and request.can_read_body:
            form = {k: str(v) for k, v in (await request.post()).items()}
        query = {**request.query, **form}
        self.requests.append(Seen(request.method, request.path, query))
        route = self._routes.get((request.method, request.path))
        if route is None:
            return _json(404, self.dialect.not_found())
        if route.private and not self.dialect.signed(request, form):
            return _json(*self.dialect.auth_error())
        queued = self._faults.get(route.path)
        if queued:
            return await self._fault(queued.popleft())
        answer = route.handler(query)
        held = self._held.get(route.path)
        if held:
            await held.popleft().wait()
        edit = self._tampered.get(route.path)
        return _json(200, answer if edit is None else edit(answer))

    async def _fault(self, queued: _Queued) -> web.StreamResponse:
        headers = {} if queued.retry_after is None else {"Retry-After": str(queued.retry_after)}
        match queued.fault:
            case Fault.RATE_LIMIT:
                return _json(429, self.dialect.rate_limit_error(), headers)
            case Fault.BANNED:
                return _json(418, self.dialect.rate_limit_error(), headers)
            case Fault.SERVER_ERROR:
                status = queued.status or 503
                page = f"<html><body><h1>{status} Service Unavailable</h1></body></html>"
                return web.Response(status=status, text=page, content_type="text/html")
            case Fault.HANG:
                await self._release.wait()
                return web.Response(status=504)
            case Fault.MALFORMED:
                return web.Response(status=200, text='{"data": [{"ccy": "US', content_type=_JSON)
            case Fault.EMPTY:
                return web.Response(status=200, body=b"", content_type=_JSON)
            case Fault.AUTH:
                return _json(*self.dialect.auth_error())


_JSON = "application/json"


def _json(status: int, payload: Json, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(payload), content_type=_JSON, headers=headers
    )
