"""The HTTP API: routes, the bearer token, and requests that are not what they should be."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import anyio
import httpx
import pytest
from structlog.testing import capture_logs

from equity_daemon.access import SESSION_COOKIE
from equity_daemon.errors import StartupError
from equity_daemon.http import Api, serve
from equity_daemon.http_limits import Limits
from equity_daemon.model import EquityPoint
from tests.reports import NOW, basis_doc

pytestmark = pytest.mark.anyio


class Backend:
    def __init__(self) -> None:
        self.is_healthy = True
        self.is_ready = True
        self.since: list[datetime | None] = []
        self.asked: list[tuple[str | None, int | None]] = []

    def metrics(self) -> tuple[bytes, str]:
        return b"equity_daemon_up 1\n", "text/plain; version=0.0.4; charset=utf-8"

    def healthy(self) -> tuple[bool, str]:
        return self.is_healthy, "ok" if self.is_healthy else "calculator loop silent for 200s"

    def ready(self) -> tuple[bool, list[str]]:
        return self.is_ready, [] if self.is_ready else ["basis: no snapshot yet"]

    def snapshots(self) -> list[dict[str, Any]]:
        return [{"book": "basis", "equity": "1.5"}]

    def exchange_bans(self) -> dict[str, datetime]:
        return {}

    def book_names(self) -> list[str]:
        return ["basis", "carry"]

    async def events(
        self,
        since: datetime | None,
        book: str | None = None,
        limit: int | None = None,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        self.since.append(since)
        self.asked.append((book, limit))
        return [{"id": "e1"}]

    async def equity_history(
        self, book: str, since: datetime, points: int | None = None
    ) -> list[EquityPoint]:
        return []

    async def equity_baseline(self, book: str, at: datetime) -> EquityPoint | None:
        return None


@pytest.fixture
async def server() -> AsyncIterator[tuple[Backend, httpx.AsyncClient, int]]:
    backend = Backend()
    with capture_logs():
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve, Api(backend, "s3cret"), "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                yield backend, client, port
            tg.cancel_scope.cancel()


AUTH = {"Authorization": "Bearer s3cret"}


async def test_the_open_endpoints(server: tuple[Backend, httpx.AsyncClient, int]) -> None:
    backend, client, _ = server
    landing = await client.get("/")  # the status page, token-protected: a sign-in form
    assert landing.status_code == 401
    assert 'href="/healthz"' in landing.text  # which links the open endpoints
    assert (await client.get("/healthz")).text == "ok\n"
    assert (await client.get("/readyz")).json() == {"ready": True, "reasons": []}
    backend.is_healthy = backend.is_ready = False
    assert (await client.get("/healthz")).status_code == 503
    not_ready = await client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["reasons"] == ["basis: no snapshot yet"]


async def test_snapshot_events_and_metrics_need_the_token(
    server: tuple[Backend, httpx.AsyncClient, int],
) -> None:
    _, client, _ = server
    for path in ("/snapshot", "/events", "/metrics"):  # /metrics: equity, assets, debt too
        denied = await client.get(path)
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"] == "Bearer"
        wrong = await client.get(path, headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401
    snapshot = await client.get("/snapshot", headers=AUTH)
    assert snapshot.json() == {"books": [{"book": "basis", "equity": "1.5"}]}
    events = await client.get("/events", headers=AUTH)
    assert (events.status_code, events.json()) == (200, {"events": [{"id": "e1"}]})
    metrics = await client.get("/metrics", headers=AUTH)
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert metrics.text == "equity_daemon_up 1\n"


async def test_an_operator_may_leave_metrics_open_beside_a_token() -> None:
    backend = Backend()
    api = Api(backend, "s3cret", open_metrics=True)
    with capture_logs():
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve, api, "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.get("/metrics")).text == "equity_daemon_up 1\n"
                assert (await client.get("/snapshot")).status_code == 401
            tg.cancel_scope.cancel()


async def test_bearer_scheme_is_case_insensitive(
    server: tuple[Backend, httpx.AsyncClient, int],
) -> None:
    _, client, _ = server
    for accepted in ("bearer s3cret", "BEARER s3cret", "bEaReR s3cret", "Bearer   s3cret"):
        answer = await client.get("/snapshot", headers={"Authorization": accepted})
        assert answer.status_code == 200, accepted
    # only the scheme: the token stays exact, and another scheme is no bearer token
    for refused in ("bearer S3CRET", "Bearer s3cre", "Bearer s3crett", "Basic s3cret", "s3cret"):
        answer = await client.get("/snapshot", headers={"Authorization": refused})
        assert answer.status_code == 401, refused


async def test_events_are_the_latest_100_unless_told_and_a_book_s_alone_when_named(
    server: tuple[Backend, httpx.AsyncClient, int],
) -> None:
    backend, client, _ = server
    assert (await client.get("/events", headers=AUTH)).status_code == 200
    named = {"book": "carry", "limit": "5"}
    assert (await client.get("/events", params=named, headers=AUTH)).status_code == 200
    assert backend.asked == [(None, 100), ("carry", 5)]
    unknown = await client.get("/events", params={"book": "nope"}, headers=AUTH)
    assert (unknown.status_code, unknown.text) == (
        404,
        "no book named 'nope' (books: basis, carry)\n",
    )
    for bad in ("0", "10001", "ten", "-1"):
        answer = await client.get("/events", params={"limit": bad}, headers=AUTH)
        assert (answer.status_code, answer.text) == (
            400,
            "limit must be a whole number from 1 to 10000\n",
        )
    assert len(backend.asked) == 2  # a refused request never reaches the backend


async def test_events_since_must_be_an_aware_time(
    server: tuple[Backend, httpx.AsyncClient, int],
) -> None:
    backend, client, _ = server
    ok = await client.get("/events", params={"since": "2026-11-25T12:00:00+00:00"}, headers=AUTH)
    assert ok.json() == {"events": [{"id": "e1"}]}
    await client.get("/events", params={"since": "2026-11-25T14:00:00+02:00"}, headers=AUTH)
    await client.get("/events", headers=AUTH)
    noon = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert backend.since == [noon, noon, None]
    assert all(since is None or since.tzinfo is not None for since in backend.since)
    for bad in ("yesterday", "2026-11-25T12:00:00"):
        answer = await client.get("/events", params={"since": bad}, headers=AUTH)
        assert answer.status_code == 400
    assert len(backend.since) == 3  # a refused `since` never reaches the backend


async def test_unknown_paths_other_methods_and_head(
    server: tuple[Backend, httpx.AsyncClient, int],
) -> None:
    _, client, _ = server
    assert (await client.get("/admin")).status_code == 404
    post = await client.post("/snapshot", headers=AUTH)
    assert post.status_code == 405
    assert {method.strip() for method in post.headers["allow"].split(",")} == {"GET", "HEAD"}
    head = await client.head("/metrics", headers=AUTH)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(b"equity_daemon_up 1\n"))
    assert (await client.head("/snapshot")).status_code == 401


async def raw(port: int, data: bytes) -> bytes:
    """Send `data` on a fresh connection; everything the server says until it closes it."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(data)
        answer = b""
        try:
            while True:
                answer += await stream.receive()
        except anyio.EndOfStream:
            return answer


def status(answer: bytes) -> int:
    """The status code of a raw answer (HTTP/1.0 or 1.1: a request aiohttp could not parse has
    no version to answer in)."""
    version, code, _ = answer.split(b" ", 2)
    assert version in (b"HTTP/1.0", b"HTTP/1.1")
    return int(code)


async def test_malformed_and_oversized_requests(
    server: tuple[Backend, httpx.AsyncClient, int],
) -> None:
    _, client, port = server
    assert status(await raw(port, b"HELLO\r\n\r\n")) == 400
    assert status(await raw(port, b"GET / SMTP/1\r\n\r\n")) == 400
    head = await raw(port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status(head) == 200
    assert head.endswith(b"\r\n\r\n")  # no body
    limits = Limits()
    # one header past the limit: refused as soon as it is, without waiting for the rest
    huge = b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * (limits.max_field_bytes + 10)
    with anyio.fail_after(2):
        assert status(await raw(port, huge)) == 413
    long_line = b"GET /" + b"a" * (limits.max_line_bytes + 10) + b" HTTP/1.1\r\n\r\n"
    assert status(await raw(port, long_line)) == 413
    many = b"".join(b"X-%d: 1\r\n" % n for n in range(limits.max_headers + 1))
    assert status(await raw(port, b"GET / HTTP/1.1\r\n" + many + b"\r\n")) == 413
    # a body past the limit, on a route that would not even read it
    size = limits.max_body_bytes + 1
    body = b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size
    assert status(await raw(port, body + b"x" * size)) == 413
    assert (await client.get("/healthz")).status_code == 200  # and the server goes on


async def test_a_client_that_stalls_is_cut_off_and_others_are_served() -> None:
    with capture_logs():
        async with anyio.create_task_group() as tg:
            limits = Limits(request_timeout=0.5)
            port = await tg.start(
                partial(serve, Api(Backend(), None), "127.0.0.1", 0, limits=limits)
            )
            async with (
                await anyio.connect_tcp("127.0.0.1", port) as stalled,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
            ):
                await stalled.send(b"GET / HT")  # half a request line, and then nothing
                assert (await client.get("/healthz")).status_code == 200
                started = anyio.current_time()
                with anyio.fail_after(5), pytest.raises(anyio.EndOfStream):
                    await stalled.receive()  # closed by the server, without an answer
                assert anyio.current_time() - started < 2
                assert (await client.get("/healthz")).status_code == 200
            tg.cancel_scope.cancel()


async def test_a_client_that_hangs_up_does_not_hurt_the_server(
    server: tuple[Backend, httpx.AsyncClient, int],
) -> None:
    _, client, port = server
    stream = await anyio.connect_tcp("127.0.0.1", port)
    await stream.aclose()
    assert (await client.get("/healthz")).status_code == 200


async def test_without_a_token_everything_is_open() -> None:
    with capture_logs():
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve, Api(Backend(), None), "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                snapshot = await client.get("/snapshot")
                events = await client.get("/events")
            assert (snapshot.status_code, events.status_code) == (200, 200)
            tg.cancel_scope.cancel()


class BrokenBackend(Backend):
    def snapshots(self) -> list[dict[str, Any]]:
        raise RuntimeError("a bug behind one endpoint")


async def test_a_failing_endpoint_answers_500_and_the_server_keeps_serving() -> None:
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve, Api(BrokenBackend(), None), "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.get("/snapshot")).status_code == 500
                assert (await client.get("/healthz")).status_code == 200
            tg.cancel_scope.cancel()
    assert [entry["event"] for entry in logs].count("http_request_failed") == 1


async def test_a_taken_port_is_a_startup_error() -> None:
    with capture_logs():
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve, Api(Backend(), None), "127.0.0.1", 0)
            with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}"):
                await serve(Api(Backend(), None), "127.0.0.1", port)
            tg.cancel_scope.cancel()


async def test_an_unencoded_plus_in_since_still_means_an_offset(
    server: tuple[Backend, httpx.AsyncClient, int],
) -> None:
    backend, _, port = server
    request = (
        b"GET /events?since=2026-11-25T12:00:00+02:00 HTTP/1.1\r\n"
        b"Host: x\r\nAuthorization: Bearer s3cret\r\nConnection: close\r\n\r\n"
    )
    assert status(await raw(port, request)) == 200
    assert backend.since[-1] == datetime.fromisoformat("2026-11-25T12:00:00+02:00")


class PageBackend(Backend):
    """A backend with a real snapshot document, history and events, for the status page."""

    def __init__(self) -> None:
        super().__init__()
        self.history_fails = False
        self.history_read: list[tuple[str, datetime, int | None]] = []
        self.events_read: list[tuple[datetime | None, str | None, int | None, str | None]] = []

    def snapshots(self) -> list[dict[str, Any]]:
        return [basis_doc()]

    async def events(
        self,
        since: datetime | None,
        book: str | None = None,
        limit: int | None = None,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        if self.history_fails:
            raise sqlite3.OperationalError("disk I/O error")
        self.events_read.append((since, book, limit, kind))
        return []

    async def equity_history(
        self, book: str, since: datetime, points: int | None = None
    ) -> list[EquityPoint]:
        if self.history_fails:
            raise sqlite3.OperationalError("disk I/O error")
        self.history_read.append((book, since, points))
        return [EquityPoint(NOW, Decimal(512000), True)]


# the page charts the last 24 h before its clock: it reads the test's moment, never the wall's
PAGE_CLOCK = (NOW + timedelta(minutes=1)).timestamp


@pytest.fixture
async def page_server() -> AsyncIterator[tuple[PageBackend, httpx.AsyncClient, int]]:
    backend = PageBackend()
    with capture_logs():
        async with anyio.create_task_group() as tg:
            limits = Limits(request_timeout=0.5)
            port = await tg.start(
                partial(serve, Api(backend, "s3cret", PAGE_CLOCK), LOOPBACK, 0, limits=limits)
            )
            async with httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{port}") as client:
                yield backend, client, port
            tg.cancel_scope.cancel()


LOOPBACK = "127.0.0.1"
EQUITY = "512,500.00"  # basis_doc()'s equity as the page shows it


async def test_the_status_page_shows_data_only_with_the_token(
    page_server: tuple[PageBackend, httpx.AsyncClient, int],
) -> None:
    _, client, _ = page_server
    anonymous = await client.get("/")
    assert anonymous.status_code == 401
    assert '<form method="post" action="/login">' in anonymous.text
    assert EQUITY not in anonymous.text
    assert "basis" not in anonymous.text
    forged = await client.get("/", headers={"Cookie": f"{SESSION_COOKIE}=4102444800.deadbeef"})
    assert EQUITY not in forged.text
    page = await client.get("/", headers=AUTH)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert EQUITY in page.text
    assert '<polyline class="equity"' in page.text
    head = await client.head("/", headers=AUTH)
    assert (head.status_code, head.content) == (200, b"")
    assert int(head.headers["content-length"]) > 1000


async def test_the_chart_range_is_a_query_parameter_and_bounds_what_is_read(
    page_server: tuple[PageBackend, httpx.AsyncClient, int],
) -> None:
    backend, client, _ = page_server
    now = datetime.fromtimestamp(PAGE_CLOCK(), UTC)
    default = await client.get("/", headers=AUTH)
    week = await client.get("/?range=7d", headers=AUTH)
    assert "Equity, last 24 h" in default.text
    assert "Equity, last 7 d" in week.text
    assert '<a href="?range=1h#book-basis">1 h</a>' in week.text
    # history over the range, thinned to about 480 points whatever it holds
    assert backend.history_read == [
        ("basis", now - timedelta(hours=24), 480),
        ("basis", now - timedelta(days=7), 480),
    ]
    # events by count: the book's latest threshold alerts, and the latest of all for the table
    assert backend.events_read[:2] == [(None, "basis", 200, "threshold"), (None, None, 20, None)]
    for wrong in ("30d", "", "7D", "<b>"):
        refused = await client.get("/", params={"range": wrong}, headers=AUTH)
        assert refused.status_code == 400
        assert refused.text == "range must be one of 1h, 24h, 7d\n"


async def test_a_session_opened_with_the_token_shows_the_page_until_signed_out(
    page_server: tuple[PageBackend, httpx.AsyncClient, int],
) -> None:
    _, client, _ = page_server
    refused = await client.post("/login", data={"token": "guess"})
    assert refused.status_code == 401
    assert "not right" in refused.text
    assert "set-cookie" not in refused.headers
    opened = await client.post("/login", data={"token": "s3cret"})
    assert (opened.status_code, opened.headers["location"]) == (303, "/")
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "s3cret" not in cookie  # an HMAC of the token, never the token
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    page = await client.get("/")  # the client keeps the cookie
    assert page.status_code == 200
    assert EQUITY in page.text
    assert 'action="/logout"' in page.text
    assert (await client.get("/snapshot")).status_code == 200  # the session reads the API too
    closed = await client.post("/logout")
    assert closed.status_code == 303
    assert SESSION_COOKIE not in client.cookies
    assert (await client.get("/")).status_code == 401


async def test_a_login_body_too_large_or_too_slow_is_refused(
    page_server: tuple[PageBackend, httpx.AsyncClient, int],
) -> None:
    _, client, port = page_server
    too_large = await client.post("/login", data={"token": "x" * Limits().max_body_bytes})
    assert too_large.status_code == 413
    slow = (
        b"POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 20\r\n\r\ntoken="
    )
    with anyio.fail_after(5):  # half the body, then nothing: answered once the deadline passed
        assert status(await raw(port, slow)) == 408


async def test_the_page_survives_a_history_that_cannot_be_read(
    page_server: tuple[PageBackend, httpx.AsyncClient, int],
) -> None:
    backend, client, _ = page_server
    backend.history_fails = True
    page = await client.get("/", headers=AUTH)
    assert page.status_code == 200
    assert EQUITY in page.text
    assert "History unavailable: OperationalError: disk I/O error" in page.text


async def test_without_a_token_the_page_is_open_and_login_goes_home() -> None:
    with capture_logs():
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve, Api(PageBackend(), None, PAGE_CLOCK), LOOPBACK, 0)
            async with httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{port}") as client:
                page = await client.get("/")
                assert (page.status_code, EQUITY in page.text) == (200, True)
                assert 'action="/logout"' not in page.text
                login = await client.post("/login", data={"token": "anything"})
                assert (login.status_code, login.headers["location"]) == (303, "/")
                assert "set-cookie" not in login.headers
            tg.cancel_scope.cancel()


async def test_cancelling_the_server_stops_it_promptly_with_clients_connected() -> None:
    with capture_logs():
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve, Api(Backend(), None), LOOPBACK, 0)
            client = httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{port}")
            assert (await client.get("/healthz")).status_code == 200  # a kept-alive connection
            stalled = await anyio.connect_tcp(LOOPBACK, port)
            await stalled.send(b"GET /healthz HT")  # and one mid-request
            started = anyio.current_time()
            tg.cancel_scope.cancel()
        assert anyio.current_time() - started < 1
        with pytest.raises(httpx.ConnectError):  # nothing listens any more
            await client.get("/healthz")
        with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await stalled.receive()
        await stalled.aclose()
        await client.aclose()
