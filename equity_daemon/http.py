"""The daemon's one HTTP server: aiohttp's web server, on the daemon's own event loop.

aiohttp because it is already in the dependency tree through ccxt (the next venue kind), runs on
the asyncio loop the daemon uses, and is well kept.

| path                | what                                                         | auth   |
|---------------------|--------------------------------------------------------------|--------|
| `/`                 | a landing page with links                                    | no     |
| `/metrics`          | Prometheus exposition                                        | no     |
| `/healthz`          | 200 while the calculator loop keeps ticking                  | no     |
| `/readyz`           | 200 when every book has a complete, fresh snapshot           | no     |
| `/snapshot`         | `{"books": [snapshot, ...]}`, money as decimal strings       | bearer |
| `/events?since=ISO` | `{"events": [event, ...]}` from history                      | bearer |

GET (and HEAD) only. Every connection is held to `http_limits.Limits`: sizes (`413` past them)
and a deadline for the request to arrive. The endpoints are cheap reads of state the loops
already hold.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

import anyio
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from anyio.abc import TaskStatus

from equity_daemon.access import Access
from equity_daemon.errors import StartupError
from equity_daemon.http_limits import LimitedSite, Limits

log = structlog.get_logger()

JSON = "application/json"
SHUTDOWN_TIMEOUT = 2.0  # open requests get this long to finish when the daemon stops


class Backend(Protocol):
    """**Protocol**: what the HTTP API reads; the supervisor's `Daemon` provides it."""

    def metrics(self) -> tuple[bytes, str]: ...

    def healthy(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, list[str]]: ...

    def snapshots(self) -> list[dict[str, Any]]: ...

    async def events(self, since: datetime | None) -> list[dict[str, Any]]: ...


LANDING = """<!doctype html><title>equity-daemon</title><h1>equity-daemon</h1><ul>
<li><a href="/metrics">/metrics</a><li><a href="/healthz">/healthz</a>
<li><a href="/readyz">/readyz</a><li><a href="/snapshot">/snapshot</a>
<li><a href="/events">/events</a></ul>
"""


class Api:
    """The routes, reading from `backend`. `token` guards `/snapshot` and `/events` when set."""

    def __init__(self, backend: Backend, token: str | None) -> None:
        self._backend = backend
        self._access = Access(token)

    def application(self, limits: Limits) -> web.Application:
        """A new aiohttp application serving the routes (one per server)."""
        app = web.Application(
            middlewares=[_answer_500_on_failure, _refuse_bodies_over(limits.max_body_bytes)],
            client_max_size=limits.max_body_bytes,
        )
        app.router.add_get("/", self._landing)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/snapshot", self._guarded(self._snapshot))
        app.router.add_get("/events", self._guarded(self._events))
        return app

    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not self._access.allows(request.headers.get("Authorization"), None):
                raise web.HTTPUnauthorized(
                    text="bearer token required\n", headers={"WWW-Authenticate": "Bearer"}
                )
            return await handler(request)

        return guarded

    async def _landing(self, request: web.Request) -> web.Response:
        return web.Response(text=LANDING, content_type="text/html")

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = self._backend.metrics()
        # the exposition type carries a version and charset: passed as a header, not parsed
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, detail = self._backend.healthy()
        return web.Response(status=200 if healthy else 503, text=f"{detail}\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, reasons = self._backend.ready()
        return _json(200 if ready else 503, {"ready": ready, "reasons": reasons})

    async def _snapshot(self, request: web.Request) -> web.Response:
        return _json(200, {"books": self._backend.snapshots()})

    async def _events(self, request: web.Request) -> web.Response:
        since = None
        if "since" in request.query:
            since = _aware_time(request.query["since"])
            if since is None:
                raise web.HTTPBadRequest(text="since must be an ISO 8601 time with a UTC offset\n")
        return _json(200, {"events": await self._backend.events(since)})


def _json(status: int, document: Any) -> web.Response:
    body = json.dumps(document, indent=1).encode() + b"\n"
    return web.Response(status=status, body=body, content_type=JSON)


@web.middleware
async def _answer_500_on_failure(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One request's failure must not take the server (or the daemon) down."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("http_request_failed", path=request.path)
        return web.Response(status=500, text="internal error\n")


def _refuse_bodies_over(limit: int) -> Middleware:
    """`413` for a declared body past `limit`, whether or not the route would read it (one that
    does is held to the same limit by aiohttp as it reads)."""

    @web.middleware
    async def refuse(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > limit:
            refused = web.HTTPRequestEntityTooLarge(limit, request.content_length)
            refused.force_close()  # no more requests on a connection still sending this one
            raise refused
        return await handler(request)

    return refuse


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
    limits: Limits = Limits(),  # noqa: B008 (frozen, so one shared default is safe)
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen and answer until cancelled; reports the bound port once listening.

    Raises:
        StartupError: the address cannot be listened on.
    """
    runner = web.AppRunner(
        api.application(limits),
        handle_signals=False,  # the supervisor handles SIGTERM/SIGINT
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    try:
        site = LimitedSite(runner, host, port, limits)
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        log.info("http_listening", host=host, port=site.port)
        task_status.started(site.port)
        await anyio.sleep_forever()
    finally:
        # cancelled (the daemon is stopping): close the listener and the connections, shielded
        # so the cancellation cannot cut that short, and bounded so a stuck client cannot hold
        # the stop up
        with anyio.move_on_after(SHUTDOWN_TIMEOUT + 1, shield=True):
            await runner.cleanup()
