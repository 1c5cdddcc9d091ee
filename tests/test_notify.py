"""Webhooks: signed, retried with backoff, in order, from the durable outbox (HTTP mocked)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from functools import partial
from pathlib import Path

import anyio
import httpx
import pytest
import respx
from structlog.testing import capture_logs

from equity_daemon.cli import main
from equity_daemon.clock import SystemClock
from equity_daemon.history import History, PendingDelivery
from equity_daemon.notify import (
    DEAD_LETTER_AFTER,
    Outbox,
    Outcome,
    WebhookClient,
    retry_delay,
    sign,
)
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import Settings, WebhookSettings
from tests.events import threshold_cycles
from tests.reports import NOW, Clock

pytestmark = pytest.mark.anyio

URL = "http://127.0.0.1:8999/hook/tok3n"
LATER = NOW + timedelta(hours=1)  # every recorded event is due by then
DELIVERY = PendingDelivery("e1", b'{"id":"e1","kind":"threshold"}', 0)


def target(secret: str | None = "s3") -> WebhookSettings:
    return WebhookSettings.model_validate({"name": "ops", "url": URL, "secret": secret})


@respx.mock
async def test_the_body_is_sent_as_stored_and_signed() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(204))
    async with httpx.AsyncClient() as http:
        assert await WebhookClient(target(), http).post(DELIVERY) == Outcome("delivered")
    request = route.calls.last.request
    assert request.content == DELIVERY.body
    assert request.headers["X-Equity-Event-Id"] == "e1"
    expected = hmac.new(b"s3", DELIVERY.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Equity-Signature"] == f"sha256={expected}"
    assert sign("s3", DELIVERY.body) == f"sha256={expected}"


@respx.mock
async def test_without_a_secret_there_is_no_signature() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200))
    async with httpx.AsyncClient() as http:
        await WebhookClient(target(None), http).post(DELIVERY)
    assert "X-Equity-Signature" not in route.calls.last.request.headers


@respx.mock
async def test_refusals_and_errors_are_outcomes_that_never_name_the_url() -> None:
    respx.post(URL).mock(side_effect=[httpx.Response(500), httpx.ConnectError(f"to {URL}")])
    async with httpx.AsyncClient() as http:
        client = WebhookClient(target(), http)
        assert await client.post(DELIVERY) == Outcome("rejected", "HTTP 500")
        outcome, reason, permanent = await client.post(DELIVERY)
    assert (outcome, reason, permanent) == ("error", "ConnectError", False)
    assert "tok3n" not in str(reason)
    assert "127.0.0.1" not in str(reason)


def test_retry_delays_double_up_to_the_cap_with_jitter() -> None:
    rng = random.Random(0)
    for attempts, ceiling in [(1, 1), (2, 2), (3, 4), (6, 32), (12, 300), (60, 300)]:
        delay = retry_delay(attempts, 300, rng)
        assert ceiling / 2 <= delay <= ceiling


async def record_events(history: History, count: int, targets: list[str]) -> list[str]:
    """Record `count` threshold events for `targets`; their ids, oldest first."""
    ids: list[str] = []
    for snap, reference, events in threshold_cycles(count):
        await history.record_cycle(snap, reference, events, targets)
        ids += [event.id for event in events]
    return ids


@pytest.fixture
async def history(tmp_path: Path) -> AsyncIterator[History]:
    opened = await History.open(tmp_path / "h.sqlite3")
    await record_events(opened, 2, ["ops"])
    yield opened
    await opened.aclose()


async def eventually(condition: Callable[[], bool], what: str, seconds: float = 5) -> None:
    """Wait up to `seconds` for `condition`, looking every 10 ms (a bound, not a pace)."""
    for _ in range(int(seconds * 100)):
        if condition():
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def sent_ids(route: respx.Route) -> list[str]:
    return [call.request.headers["X-Equity-Event-Id"] for call in route.calls]


async def deliver_for_a_while(outbox: Outbox, clock: Clock, looks: int = 50) -> None:
    """Let the delivery loop look `looks` times, the clock moving on to each next retry."""
    client = WebhookClient(target(), outbox._client)
    for _ in range(looks):
        clock.now += timedelta(seconds=await outbox._deliver_due(client, 300))


@respx.mock
async def test_the_outbox_retries_in_order_until_the_receiver_accepts(history: History) -> None:
    route = respx.post(URL).mock(
        side_effect=[httpx.Response(503), httpx.Response(503), *[httpx.Response(204)] * 2]
    )
    outcomes: list[tuple[str, str]] = []
    clock = Clock(LATER)
    first, second = (e["id"] for e in await history.events())
    async with httpx.AsyncClient() as http:
        outbox = Outbox(
            history, [target()], http, clock, lambda t, o: outcomes.append((t, o)), random.Random(0)
        )
        client = WebhookClient(target(), http)
        with capture_logs() as logs:
            delay = await outbox._deliver_due(client, 300)
            assert 0.5 <= delay <= 1
            assert await history.next_delivery_at("ops") == LATER + timedelta(seconds=delay)
            assert await history.due_deliveries("ops", LATER, limit=1) == []
            assert await outbox._deliver_due(client, 300) > 0  # not due yet: nothing sent
            clock.now += timedelta(seconds=delay)
            delay = await outbox._deliver_due(client, 300)
            assert 1 <= delay <= 2
            clock.now += timedelta(seconds=delay)
            assert await outbox._deliver_due(client, 300) == 60  # nothing left: check hourly-ish
    sent = [call.request.headers["X-Equity-Event-Id"] for call in route.calls]
    assert sent == [first, first, first, second]  # the second waited behind the first
    bodies = {
        call.request.headers["X-Equity-Event-Id"]: call.request.content for call in route.calls
    }
    assert [json.loads(bodies[first])["id"], json.loads(bodies[second])["id"]] == [first, second]
    assert len({call.request.content for call in route.calls[:3]}) == 1  # retries: same bytes
    assert outcomes == [("ops", "rejected")] * 2 + [("ops", "delivered")] * 2
    assert outbox.backlog == {"ops": 0}
    assert await history.outbox_backlog("ops") == 0
    failures = [entry for entry in logs if entry["event"] == "webhook_failed"]
    assert [entry["attempts"] for entry in failures] == [1, 2]
    assert all("tok3n" not in str(entry) for entry in logs)


async def test_the_backlog_is_known_before_anything_is_sent(history: History) -> None:
    with respx.mock:
        respx.post(URL).mock(return_value=httpx.Response(500))
        async with httpx.AsyncClient() as http:
            outbox = Outbox(history, [target()], http, Clock(LATER), lambda t, o: None)
            with capture_logs():
                await outbox._deliver_due(WebhookClient(target(), http), 1)
    assert outbox.backlog == {"ops": 2}


@respx.mock
async def test_a_permanently_refused_event_is_dead_lettered_and_the_target_moves_on(
    tmp_path: Path,
) -> None:
    history = await History.open(tmp_path / "h.sqlite3")
    poison, *newer = await record_events(history, 4, ["ops"])

    def receiver(request: httpx.Request) -> httpx.Response:
        refused = request.headers["X-Equity-Event-Id"] == poison
        return httpx.Response(422 if refused else 204)

    route = respx.post(URL).mock(side_effect=receiver)
    clock = Clock(LATER)
    dead: list[str] = []
    async with httpx.AsyncClient() as http:
        outbox = Outbox(
            history, [target()], http, clock, lambda t, o: None, on_dead_letter=dead.append
        )
        with capture_logs() as logs:
            await deliver_for_a_while(outbox, clock)  # long enough for 50 tries of one event
    assert DEAD_LETTER_AFTER == 5
    assert sent_ids(route) == [poison] * 5 + newer  # then the three newer ones, in order
    assert dead == ["ops"]
    (entry,) = [entry for entry in logs if entry["event"] == "webhook_dead_lettered"]
    assert (entry["target"], entry["event_id"], entry["reason"]) == ("ops", poison, "HTTP 422")
    assert entry["log_level"] == "error"
    assert all("tok3n" not in str(entry) for entry in logs)
    assert outbox.backlog == {"ops": 0}  # a dead letter waits for no one
    assert len(await history.events()) == 4  # kept in history
    await history.aclose()


@respx.mock
async def test_transient_failures_are_retried_for_as_long_as_they_last(tmp_path: Path) -> None:
    history = await History.open(tmp_path / "h.sqlite3")
    (event,) = await record_events(history, 1, ["ops"])
    refused: list[httpx.Response | Exception] = [httpx.Response(404)] * (DEAD_LETTER_AFTER - 1)
    transient: list[httpx.Response | Exception] = [
        httpx.Response(503),
        httpx.Response(408),
        httpx.Response(429),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
    ]
    # refusals count only in a row: a transient failure between them starts the count again
    answers = [*transient * 4, *refused, httpx.Response(502), *refused, httpx.Response(204)]
    route = respx.post(URL).mock(side_effect=answers)
    clock = Clock(LATER)
    dead: list[str] = []
    async with httpx.AsyncClient() as http:
        outbox = Outbox(
            history, [target()], http, clock, lambda t, o: None, on_dead_letter=dead.append
        )
        with capture_logs():
            await deliver_for_a_while(outbox, clock)
    assert sent_ids(route) == [event] * len(answers)
    assert dead == []
    assert await history.outbox_backlog("ops") == 0
    assert await history.due_deliveries("ops", clock.now, limit=1) == []
    await history.aclose()


async def test_dead_letters_are_counted_by_target_in_the_daemons_metrics(tmp_path: Path) -> None:
    (tmp_path / "ops.toml").write_text('[[positions]]\nasset = "USDT"\namount = "1000"\n')
    hook = {"name": "pager", "url": URL, "max_backoff_seconds": 0.001}
    venue = {"kind": "manual", "name": "ops", "path": tmp_path / "ops.toml"}
    settings = Settings.model_validate(
        {
            "books": {"ops": {"share_class": "USDT", "venues": [venue], "webhooks": [hook]}},
            "http": {"port": 0},
            "history_path": tmp_path / "h.sqlite3",
        }
    )
    history = await History.open(settings.history_path)
    await record_events(history, 1, ["pager"])  # left by an earlier run
    daemon = Daemon(settings)

    def scraped(prefix: str) -> list[str]:
        lines = daemon.metrics()[0].decode().splitlines()
        return [line for line in lines if line.startswith(prefix)]

    with respx.mock, capture_logs():
        respx.post(URL).mock(return_value=httpx.Response(410))
        async with anyio.create_task_group() as tg:
            await tg.start(partial(daemon.run, history, handle_signals=False))
            # the series is there from the start (at 0); the next look updates the backlog
            await eventually(
                lambda: (
                    scraped("equity_daemon_webhook_dead")
                    == ['equity_daemon_webhook_dead_letters_total{target="pager"} 1.0']
                    and scraped("equity_daemon_outbox_backlog{")
                    == ['equity_daemon_outbox_backlog{target="pager"} 0.0']
                ),
                "a dead letter, out of the backlog",
            )
            tg.cancel_scope.cancel()
    assert scraped("equity_daemon_webhook_dead") == [
        'equity_daemon_webhook_dead_letters_total{target="pager"} 1.0'
    ]
    await history.aclose()


@respx.mock
async def test_outbox_orphaned_rows_are_reported_at_start(tmp_path: Path) -> None:
    history = await History.open(tmp_path / "h.sqlite3")
    await record_events(history, 2, ["ops", "old", "older"])  # `old` and `older` were removed
    await history.mark_dead("e-1", "older", 5, NOW, "HTTP 404")
    respx.post(URL).mock(return_value=httpx.Response(204))
    async with httpx.AsyncClient() as http:
        outbox = Outbox(history, [target()], http, Clock(LATER), lambda t, o: None)
        with capture_logs() as logs, anyio.move_on_after(0.2):
            await outbox.run()
    orphaned = [entry for entry in logs if entry["event"] == "outbox_orphaned"]
    assert [(e["target"], e["pending"], e["log_level"]) for e in orphaned] == [
        ("old", 2, "warning"),
        ("older", 1, "warning"),  # its dead letter is not waiting for anything
    ]
    await history.aclose()


@respx.mock
async def test_outbox_retry_while_the_daemon_runs_is_sent_at_its_next_look(
    tmp_path: Path,
) -> None:
    config = tmp_path / "equity.toml"
    config.write_text(
        f"""
history_path = "{tmp_path / "h.sqlite3"}"
[books.ops]
share_class = "USDT"
venues = [{{kind = "manual", name = "ops", path = "{tmp_path / "ops.toml"}"}}]
webhooks = [{{name = "ops", url = "{URL}"}}]
"""
    )
    history = await History.open(tmp_path / "h.sqlite3")  # the running daemon's, open throughout
    (event,) = await record_events(history, 1, ["ops"])
    route = respx.post(URL).mock(side_effect=[*[httpx.Response(400)] * 5, httpx.Response(204)])
    clock = Clock(LATER)
    async with httpx.AsyncClient() as http:
        outbox = Outbox(history, [target()], http, clock, lambda t, o: None)
        with capture_logs():
            await deliver_for_a_while(outbox, clock, looks=10)
            assert await history.outbox_backlog("ops") == 0  # dead-lettered: nothing waits
            retry = ["outbox", "retry", "--config", str(config)]
            assert await anyio.to_thread.run_sync(main, retry) == 0  # another process, in effect
            # the loop's next look reads the database again: it finds the row and sends it
            assert await outbox._deliver_due(WebhookClient(target(), http), 300) == 60
    assert sent_ids(route) == [event] * 6
    assert await history.outbox_backlog("ops") == 0
    await history.aclose()


@respx.mock
async def test_the_delivery_loop_survives_an_unavailable_history(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    history = await History.open(path, busy_timeout_ms=50)
    (event,) = await record_events(history, 1, ["ops"])
    route = respx.post(URL).mock(return_value=httpx.Response(204))
    hook = WebhookSettings.model_validate({"name": "ops", "url": URL, "max_backoff_seconds": 0.05})
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # e.g. an operator's sqlite3 shell, left open
    async with httpx.AsyncClient() as http, anyio.create_task_group() as tg:
        outbox = Outbox(history, [hook], http, SystemClock(), lambda t, o: None)
        with capture_logs() as logs:
            tg.start_soon(outbox.run)
            # sent, but "delivered" cannot be written down: sent again, and again
            await eventually(lambda: len(route.calls) >= 3, "three tries")
            other.execute("ROLLBACK")
            await eventually(lambda: outbox.backlog == {"ops": 0}, "the delivery to be recorded")
            tg.cancel_scope.cancel()
    other.close()
    assert set(sent_ids(route)) == {event}
    trouble = [entry for entry in logs if entry["event"].startswith("outbox_history")]
    assert [(e["event"], e["target"], e.get("reason")) for e in trouble] == [
        ("outbox_history_unavailable", "ops", "database is locked"),  # once, not every try
        ("outbox_history_available", "ops", None),
    ]
    assert await history.outbox_backlog("ops") == 0
    await history.aclose()


@respx.mock
async def test_a_backward_wall_clock_step_does_not_hold_a_retry_back(history: History) -> None:
    route = respx.post(URL).mock(side_effect=[httpx.Response(503), httpx.Response(204)] * 2)
    clock = Clock(LATER)
    async with httpx.AsyncClient() as http:
        outbox = Outbox(history, [target()], http, clock, lambda t, o: None)
        with capture_logs():
            delay = await outbox._deliver_due(WebhookClient(target(), http), cap=30)
            assert delay <= 1  # the first retry is due within a second...
            clock.step(-timedelta(hours=1))  # ...but NTP steps the wall clock back an hour
            await outbox._deliver_due(WebhookClient(target(), http), cap=30)
    assert len(route.calls) >= 3  # retried at once, then the next event, not an hour later
