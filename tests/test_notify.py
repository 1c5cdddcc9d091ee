"""Webhooks: signed, retried with backoff, in order, from the durable outbox (HTTP mocked)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from equity_daemon.history import History, PendingDelivery
from equity_daemon.monitor import Reference, ThresholdRule, observe
from equity_daemon.notify import Outbox, WebhookClient, retry_delay, sign
from equity_daemon.settings import WebhookSettings
from tests.reports import NOW, Clock, book_at

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
        assert await WebhookClient(target(), http).post(DELIVERY) == ("delivered", None)
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
        assert await client.post(DELIVERY) == ("rejected", "HTTP 500")
        outcome, reason = await client.post(DELIVERY)
    assert (outcome, reason) == ("error", "ConnectError")
    assert "tok3n" not in str(reason)
    assert "127.0.0.1" not in str(reason)


def test_retry_delays_double_up_to_the_cap_with_jitter() -> None:
    rng = random.Random(0)
    for attempts, ceiling in [(1, 1), (2, 2), (3, 4), (6, 32), (12, 300), (60, 300)]:
        delay = retry_delay(attempts, 300, rng)
        assert ceiling / 2 <= delay <= ceiling


@pytest.fixture
async def history(tmp_path: Path) -> AsyncIterator[History]:
    opened = await History.open(tmp_path / "h.sqlite3")
    reference = Reference("basis")
    for sequence, equity in enumerate(["100", "200", "300"], start=1):
        snap = book_at(equity, sequence=sequence)
        reference, events = observe(reference, snap, ThresholdRule())
        await opened.record_cycle(snap, reference, events, ["ops"])
    yield opened
    await opened.aclose()


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
