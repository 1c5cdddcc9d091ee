"""The daemon's one HTTP server: aiohttp's web server, on the daemon's own event loop.

aiohttp because it is already in the dependency tree through ccxt (the next venue kind), runs on
the asyncio loop the daemon uses, and is well kept.

| path                | what                                                      | auth     |
|---------------------|-----------------------------------------------------------|----------|
| `/?range=24h`       | the status page (HTML; without access, a sign-in form)    | token    |
| `/login`            | POST `token=...`: opens a browser session, back to `/`    | -        |
| `/logout`           | POST: closes it                                           | -        |
| `/metrics`          | Prometheus exposition                                     | token*   |
| `/healthz`          | 200 while the calculator loop keeps ticking               | no       |
| `/readyz`           | 200 when every book has a complete, fresh snapshot        | no       |
| `/snapshot`         | `{"books": [snapshot, ...]}`, money as decimal strings    | token    |
| `/events`           | `{"events": [event, ...]}` from history (below)           | token    |

`/events` takes `book` (only that book's), `limit` (1 to 10,000; 100 by default) and `since`
(ISO 8601 with an offset): the latest `limit` events, oldest first; with `since`, the first
`limit` from then (ask again from the last one's `at` for more, de-duplicating by `id`).

"token": when one is configured, `Authorization: Bearer <token>` or a session (`access.py`).
*`/metrics` carries equity, assets and debt by venue and asset, so it asks for the token too,
unless `open_metrics` (a scraper on a private network that cannot send one). `/healthz` and
`/readyz` carry no money: probes need no token.
Every connection is held to `http_limits.Limits`: sizes (`413` past them) and a deadline for the
request to arrive. The endpoints are cheap reads of state the loops already hold; the status
page also reads history over its chart's range (`1h`, `24h` by default, or `7d`; any other
`range` is `400`), thinned to a few hundred points.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from anyio.abc import TaskStatus

from equity_daemon.access import SESSION_COOKIE, SESSION_SECONDS, Access
from equity_daemon.errors import StartupError
from equity_daemon.http_limits import LimitedSite, Limits
from equity_daemon.status_page.data import RANGES, chart_range
from equity_daemon.status_page.gather import PageSource, gather
from equity_daemon.status_page.page import login_page, render

log = structlog.get_logger()

JSON = "application/json"
SHUTDOWN_TIMEOUT = 2.0  # open requests get this long to finish when the daemon stops
BODY_TIMEOUT = web.AppKey("body_timeout", float)  # seconds a request body may take to arrive
EVENTS_LIMIT, EVENTS_MAX = 100, 10_000  # events in one /events answer: by default, at most


class Backend(PageSource, Protocol):
    """**Protocol**: what the HTTP API reads (beside what the status page reads, `PageSource`:
    health, readiness, snapshots, events, history); the supervisor's `Daemon` provides it."""

    def metrics(self) -> tuple[bytes, str]: ...

    def book_names(self) -> list[str]: ...


# what a browser may do with our HTML: show it, styles inline, forms back to us; nothing else
# (a string that escaped escaping still could not run)
HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Api:
    """The routes, reading from `backend`. `token` guards the data when set."""

    def __init__(
        self,
        backend: Backend,
        token: str | None,
        clock: Callable[[], float] = time.time,
        *,
        open_metrics: bool = False,
    ) -> None:
        self._backend = backend
        self._access = Access(token, clock)
        self._clock = clock
        self._open_metrics = open_metrics

    def application(self, limits: Limits) -> web.Application:
        """A new aiohttp application serving the routes (one per server)."""
        app = web.Application(
            middlewares=[_answer_500_on_failure, _refuse_bodies_over(limits.max_body_bytes)],
            client_max_size=limits.max_body_bytes,
        )
        app[BODY_TIMEOUT] = limits.request_timeout
        app.router.add_get("/", self._status_page)
        app.router.add_post("/login", self._login)
        app.router.add_post("/logout", self._logout)
        metrics = self._metrics if self._open_metrics else self._guarded(self._metrics)
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/snapshot", self._guarded(self._snapshot))
        app.router.add_get("/events", self._guarded(self._events))
        return app

    def _allowed(self, request: web.Request) -> bool:
        session = request.cookies.get(SESSION_COOKIE)
        return self._access.allows(request.headers.get("Authorization"), session)

    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not self._allowed(request):
                raise web.HTTPUnauthorized(
                    text="bearer token required\n", headers={"WWW-Authenticate": "Bearer"}
                )
            return await handler(request)

        return guarded

    async def _status_page(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return _html(401, login_page(), {"WWW-Authenticate": "Bearer"})
        shown = chart_range(request.query.get("range"))
        if shown is None:
            choices = ", ".join(choice.key for choice in RANGES)
            raise web.HTTPBadRequest(text=f"range must be one of {choices}\n")
        now = datetime.fromtimestamp(self._clock(), UTC)
        data = await gather(self._backend, now, shown, signed_in=not self._access.open)
        return _html(200, render(data))

    async def _login(self, request: web.Request) -> web.Response:
        """The sign-in form's target: a session cookie for the right token, back to `/`."""
        with anyio.move_on_after(request.app[BODY_TIMEOUT]) as reading:
            form = await request.post()
        if reading.cancelled_caught:
            raise web.HTTPRequestTimeout(text="request body too slow\n")
        token = form.get("token")
        if not isinstance(token, str) or not self._access.token_matches(token):
            log.warning("http_login_refused", remote=request.remote)
            return _html(401, login_page(failed=True))
        response = web.HTTPSeeOther("/")
        if not self._access.open:
            response.set_cookie(
                SESSION_COOKIE,
                self._access.new_session(),
                max_age=SESSION_SECONDS,
                path="/",
                secure=request.secure,
                httponly=True,
                samesite="Strict",
            )
        raise response

    async def _logout(self, request: web.Request) -> web.Response:
        response = web.HTTPSeeOther("/")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

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
        text = request.query.get("limit", str(EVENTS_LIMIT))
        if not text.isdigit() or not 1 <= int(text) <= EVENTS_MAX:
            raise web.HTTPBadRequest(text=f"limit must be a whole number from 1 to {EVENTS_MAX}\n")
        book = request.query.get("book")
        books = self._backend.book_names()
        if book is not None and book not in books:
            raise web.HTTPNotFound(text=f"no book named {book!r} (books: {', '.join(books)})\n")
        return _json(200, {"events": await self._backend.events(since, book, int(text))})


def _html(status: int, page: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=page,
        content_type="text/html",
        headers=HTML_HEADERS | (headers or {}),
    )


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
