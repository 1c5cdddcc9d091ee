"""The daemon's one HTTP server, running in its own event loop (no framework, GET only).

| path                | what                                                         | auth   |
|---------------------|--------------------------------------------------------------|--------|
| `/`                 | a landing page with links                                    | no     |
| `/metrics`          | Prometheus exposition                                        | no     |
| `/healthz`          | 200 while the calculator loop keeps ticking                  | no     |
| `/readyz`           | 200 when every book has a complete, fresh snapshot           | no     |
| `/snapshot`         | `{"books": [snapshot, ...]}`, money as decimal strings       | bearer |
| `/events?since=ISO` | `{"events": [event, ...]}` from history                      | bearer |

Requests are read with a size limit and a deadline, and answered with `Connection: close`; the
endpoints are cheap reads of state the loops already hold.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import anyio
import structlog
from anyio.abc import SocketStream, TaskStatus

from equity_daemon.errors import StartupError

log = structlog.get_logger()

MAX_REQUEST_BYTES = 16 * 1024
READ_TIMEOUT = 5.0
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, document: Any) -> Response:
        return cls(status, json.dumps(document, indent=1).encode() + b"\n", JSON)


class Backend(Protocol):
    """**Protocol**: what the HTTP API reads; the supervisor's `Daemon` provides it."""

    def metrics(self) -> tuple[bytes, str]: ...

    def healthy(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, list[str]]: ...

    def snapshots(self) -> list[dict[str, Any]]: ...

    async def events(self, since: datetime | None) -> list[dict[str, Any]]: ...


STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

LANDING = b"""<!doctype html><title>equity-daemon</title><h1>equity-daemon</h1><ul>
<li><a href="/metrics">/metrics</a><li><a href="/healthz">/healthz</a>
<li><a href="/readyz">/readyz</a><li><a href="/snapshot">/snapshot</a>
<li><a href="/events">/events</a></ul>
"""


class Api:
    """Routes requests to the backend. `token` guards `/snapshot` and `/events` when set."""

    def __init__(self, backend: Backend, token: str | None) -> None:
        self._backend = backend
        self._token = token
        self._routes: dict[str, Callable[[dict[str, list[str]]], Awaitable[Response]]] = {
            "/": self._landing,
            "/metrics": self._metrics,
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/snapshot": self._snapshot,
            "/events": self._events,
        }

    async def handle(self, method: str, target: str, headers: dict[str, str]) -> Response:
        url = urlsplit(target)
        route = self._routes.get(url.path)
        if route is None:
            return Response(404, b"not found\n")
        if method not in ("GET", "HEAD"):
            return Response(405, b"GET only\n", headers={"Allow": "GET, HEAD"})
        if url.path in ("/snapshot", "/events") and not self._authorized(headers):
            return Response(401, b"bearer token required\n", headers={"WWW-Authenticate": "Bearer"})
        return await route(parse_qs(url.query))

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self._token is None:
            return True
        # `Bearer <token>`: the scheme in any case (RFC 9110 section 11.1), then one or more
        # spaces; the token itself is compared exactly and in constant time
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token_matches = hmac.compare_digest(token.lstrip(" ").encode(), self._token.encode())
        return scheme.lower() == "bearer" and token_matches

    async def _landing(self, query: dict[str, list[str]]) -> Response:
        return Response(200, LANDING, "text/html; charset=utf-8")

    async def _metrics(self, query: dict[str, list[str]]) -> Response:
        body, content_type = self._backend.metrics()
        return Response(200, body, content_type)

    async def _healthz(self, query: dict[str, list[str]]) -> Response:
        healthy, detail = self._backend.healthy()
        return Response(200 if healthy else 503, f"{detail}\n".encode())

    async def _readyz(self, query: dict[str, list[str]]) -> Response:
        ready, reasons = self._backend.ready()
        return Response.json(200 if ready else 503, {"ready": ready, "reasons": reasons})

    async def _snapshot(self, query: dict[str, list[str]]) -> Response:
        return Response.json(200, {"books": self._backend.snapshots()})

    async def _events(self, query: dict[str, list[str]]) -> Response:
        since = None
        if "since" in query:
            since = _aware_time(query["since"][0])
            if since is None:
                return Response(400, b"since must be an ISO 8601 time with a UTC offset\n")
        return Response.json(200, {"events": await self._backend.events(since)})


def _aware_time(text: str) -> datetime | None:
    """An offset-aware time, or None. `curl '...?since=...T12:00+00:00'` sends the `+` unencoded,
    and query decoding turns it into a space: such a text is read again with the `+` put back."""
    for candidate in (text, text.replace(" ", "+")):
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if parsed.tzinfo is not None:
            return parsed
    return None


async def serve(
    api: Api,
    host: str,
    port: int,
    *,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen and answer until cancelled; reports the bound port once listening."""
    try:
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None

    async def handle(stream: SocketStream) -> None:
        # a client that goes away mid-request gets no answer; nothing else to do
        gone = (anyio.BrokenResourceError, anyio.EndOfStream, anyio.ClosedResourceError)
        async with stream:
            with contextlib.suppress(*gone):
                await _answer(api, stream)

    async with listener:  # closed whatever happens from here on
        bound = listener.extra(anyio.abc.SocketAttribute.local_port)
        log.info("http_listening", host=host, port=bound)
        task_status.started(bound)
        await listener.serve(handle)


async def _answer(api: Api, stream: SocketStream) -> None:
    request = b""
    with anyio.move_on_after(READ_TIMEOUT) as scope:
        while b"\r\n\r\n" not in request and len(request) <= MAX_REQUEST_BYTES:
            request += await stream.receive()
    if scope.cancelled_caught:
        response = Response(408, b"request timeout\n")
    elif len(request) > MAX_REQUEST_BYTES:
        response = Response(413, b"request too large\n")
    else:
        try:
            response = await _dispatch(api, request)
        except Exception:  # one request's failure must not take the server (or daemon) down
            log.exception("http_request_failed")
            response = Response(500, b"internal error\n")
    await stream.send(_encode(response))


async def _dispatch(api: Api, request: bytes) -> Response:
    head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    request_line, *header_lines = head.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return Response(400, b"bad request\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    method, target = parts[0], parts[1]
    response = await api.handle(method, target, headers)
    if method == "HEAD":  # no body, but the length a GET would send (RFC 9110 section 8.6)
        length = {"Content-Length": str(len(response.body))}
        return Response(response.status, b"", response.content_type, response.headers | length)
    return response


def _encode(response: Response) -> bytes:
    head = [
        f"HTTP/1.1 {response.status} {STATUS_TEXT.get(response.status, '')}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {response.headers.get('Content-Length', len(response.body))}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in response.headers.items() if k != "Content-Length"),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + response.body
