"""The limits every HTTP connection is held to, and the listening socket that applies them.

aiohttp parses requests with a size limit per line and per header, and closes a connection that
has not sent a whole request within its keep-alive timeout, counted from when it connected (so a
client that sends half a request line and stalls is dropped, as is an idle keep-alive one). Two
things it does differently from what we want, hence a connection class of our own:

* a request line or header past its limit is answered `400`; ours says `413`;
* a request it cannot parse is logged at error level with a traceback, which a port scanner could
  fill the log with; ours is a debug line.

`LimitedSite` is an aiohttp site (like `web.TCPSite`) whose connections are of that class.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_request import BaseRequest

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Limits:
    """What one HTTP connection may take.

    `request_timeout`: a request must have arrived whole this long after the connection opened
    (and an idle keep-alive connection is closed after as long); a request body must arrive
    within it too.
    """

    request_timeout: float = 5.0
    max_line_bytes: int = 8190
    max_field_bytes: int = 8190
    max_headers: int = 64
    max_body_bytes: int = 16 * 1024


class LimitedConnection(web.RequestHandler):
    """aiohttp's connection protocol, answering `413` to a request line or header too large."""

    def __init__(self, server: web.Server, limits: Limits) -> None:
        super().__init__(
            server,
            loop=asyncio.get_running_loop(),
            keepalive_timeout=limits.request_timeout,
            # a body nobody reads is drained (and dropped) this long at most
            lingering_time=limits.request_timeout,
            max_line_size=limits.max_line_bytes,
            max_field_size=limits.max_field_bytes,
            max_headers=limits.max_headers,
            # requests are not logged, as before (failures are); aiohttp documents None as
            # "no access log" but types the argument as a Logger
            access_log=None,  # type: ignore[arg-type]
        )

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Called by aiohttp for a request it could not parse (`status` 400), and for a handler
        that failed past our middleware (500, 504: those keep aiohttp's own answer)."""
        if status != 400:
            return super().handle_error(request, status, exc, message)
        if _too_large(exc):
            status, text = 413, "request header too large\n"
        else:
            text = "bad request\n"
        log.debug("http_request_refused", status=status, reason=str(exc))
        response = web.Response(status=status, text=text)
        response.force_close()
        return response


def _too_large(exc: BaseException | None) -> bool:
    # aiohttp names the header count in the message only; a test pins it
    too_many_headers = isinstance(exc, BadHttpMessage) and "too many headers" in str(exc).lower()
    return isinstance(exc, LineTooLong) or too_many_headers


class LimitedSite(web.BaseSite):
    """A TCP listener whose connections are `LimitedConnection`s; `runner.cleanup()` stops it."""

    __slots__ = ("_host", "_limits", "_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: Limits) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._limits = limits

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        """The bound port once started (the asked-for one before)."""
        if self._server is None:
            return self._port
        sockets = self._server.sockets  # type: ignore[attr-defined]
        port: int = sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Listen.

        Raises:
            OSError: the address cannot be bound (`strerror` says why).
        """
        await super().start()
        server = self._runner.server
        if server is None:
            raise RuntimeError("call runner.setup() before starting a site")
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: LimitedConnection(server, self._limits), self._host, self._port
            )
        except OSError as exc:
            # asyncio's message repeats the address; the plain reason is enough
            raise OSError(exc.errno, os.strerror(exc.errno) if exc.errno else str(exc)) from None
