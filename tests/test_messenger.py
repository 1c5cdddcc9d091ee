"""Apprise destinations: each event as a message to a real local receiver, from the outbox.

The receiver is an aiohttp server on 127.0.0.1 in the test's own event loop, reached through
Apprise's `json://` service (it POSTs the title, body and type as JSON). A send that blocked
the event loop would therefore never be answered: these tests also prove Apprise runs off it.
No traffic leaves the machine.
"""

from __future__ import annotations

import json
import random
import socket
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from equity_daemon import messenger
from equity_daemon.history import History, PendingDelivery
from equity_daemon.message import message_for
from equity_daemon.messenger import AppriseChannel, apprise_accepts, outcome_of
from equity_daemon.notify import IDLE_LOOK, Outbox, Outcome
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import AppriseSettings, Settings
from tests.reports import Clock
from tests.test_notify import LATER, eventually, record_events

pytestmark = pytest.mark.anyio


@dataclass
class Receiver:
    """What the local receiver heard, and how it answers: `statuses` in turn, the last one
    repeating; `hold` keeps every request waiting until the test ends (a receiver that hangs)."""

    statuses: Sequence[int] = (200,)
    hold: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    released: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.messages.append(await request.json())
        if self.hold:
            await self.released.wait()
        status = self.statuses[min(len(self.messages), len(self.statuses)) - 1]
        return web.Response(status=status)

    @property
    def titles(self) -> list[str]:
        return [str(message["title"]) for message in self.messages]


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    """Serve `receiver` on 127.0.0.1 (on its `port`, or a free one) while the block runs."""
    app = web.Application()
    app.router.add_post("/{path:.*}", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
        receiver.port = runner.addresses[0][1]
        yield receiver
    finally:
        receiver.released.set()
        await runner.cleanup()


def closed_port() -> int:
    """A loopback port nothing listens on: bound once to pick it, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def destination(port: int, **overrides: object) -> AppriseSettings:
    settings = {"name": "chat", "url": f"json://127.0.0.1:{port}/alerts/t0ken"}
    return AppriseSettings.model_validate(settings | overrides)


def channel_to(port: int, **overrides: object) -> AppriseChannel:
    return AppriseChannel(destination(port, **overrides), anyio.CapacityLimiter(2))


async def deliver_for_a_while(outbox: Outbox, channel: AppriseChannel, clock: Clock) -> None:
    """Let the delivery loop look until the outbox is empty, the clock moving on to each retry."""
    for _ in range(30):
        delay = await outbox._deliver_due(channel)
        if delay == IDLE_LOOK:
            return
        clock.now += timedelta(seconds=delay)
    raise AssertionError("the outbox never emptied")


@pytest.fixture
async def history(tmp_path: Path) -> AsyncIterator[History]:
    opened = await History.open(tmp_path / "h.sqlite3")
    yield opened
    await opened.aclose()


async def test_an_event_reaches_a_local_receiver_as_a_short_human_message(
    history: History,
) -> None:
    (event_id,) = await record_events(history, 1, ["chat"])
    (stored,) = await history.due_deliveries("chat", LATER, limit=1)
    outcomes: list[tuple[str, str]] = []
    async with receiving(Receiver()) as receiver:
        channel = channel_to(receiver.port)
        outbox = Outbox(history, [channel], Clock(LATER), lambda t, o: outcomes.append((t, o)))
        with capture_logs() as logs:
            assert await outbox._deliver_due(channel) == IDLE_LOOK
    (heard,) = receiver.messages
    expected = message_for(json.loads(stored.body))
    assert heard["title"] == expected.title == "basis: equity +100.00 % to 400.00 USDT"
    assert heard["message"] == expected.body
    assert heard["message"].splitlines() == [
        "Equity: 400.00 USDT",
        "Reference (last alert): 200.00 USDT",
        "Change: +200.00 USDT (+100.00 %)",
        f"At 2026-11-25 12:02:00 UTC · event {event_id}",
    ]
    assert heard["type"] == "warning"
    assert outcomes == [("chat", "delivered")]
    assert await history.outbox_backlog("chat") == 0
    delivered = [entry for entry in logs if entry["event"] == "webhook_delivered"]
    assert [(e["target"], e["event_id"]) for e in delivered] == [("chat", event_id)]


async def test_a_receiver_down_then_up_gets_the_message_once(history: History) -> None:
    (event_id,) = await record_events(history, 1, ["chat"])
    receiver = Receiver(port=closed_port())
    channel = channel_to(receiver.port)
    clock = Clock(LATER)
    outcomes: list[str] = []
    outbox = Outbox(history, [channel], clock, lambda t, o: outcomes.append(o), random.Random(0))
    with capture_logs() as logs:
        delay = await outbox._deliver_due(channel)  # nothing listens yet
        assert 0.5 <= delay <= 1
        assert await history.outbox_backlog("chat") == 1
        async with receiving(receiver):
            assert await outbox._deliver_due(channel) > 0  # not due yet: nothing sent
            clock.now += timedelta(seconds=delay)
            assert await outbox._deliver_due(channel) == IDLE_LOOK
            clock.now += timedelta(hours=1)
            assert await outbox._deliver_due(channel) == IDLE_LOOK  # and never again
    assert receiver.titles == ["basis: equity +100.00 % to 400.00 USDT"]
    assert outcomes == ["rejected", "delivered"]
    (failed,) = [entry for entry in logs if entry["event"] == "webhook_failed"]
    assert (failed["target"], failed["event_id"], failed["reason"]) == (
        "chat",
        event_id,
        "apprise failure",
    )
    assert all("t0ken" not in str(entry) for entry in logs)
    assert await history.outbox_backlog("chat") == 0


async def test_every_retry_sends_the_same_message_with_the_same_event_id(
    history: History,
) -> None:
    (event_id,) = await record_events(history, 1, ["chat"])
    clock = Clock(LATER)
    async with receiving(Receiver(statuses=(500, 503, 200))) as receiver:
        channel = channel_to(receiver.port)
        outbox = Outbox(history, [channel], clock, lambda t, o: None, random.Random(0))
        with capture_logs():
            await deliver_for_a_while(outbox, channel, clock)
    assert len(receiver.messages) == 3
    assert all(message == receiver.messages[0] for message in receiver.messages)
    assert receiver.messages[0]["message"].endswith(f"event {event_id}")


async def test_a_destination_that_always_fails_dead_letters_each_event_and_moves_on(
    history: History,
) -> None:
    first, second = await record_events(history, 2, ["chat"])
    clock = Clock(LATER)
    dead: list[str] = []
    async with receiving(Receiver(statuses=(500,))) as receiver:
        channel = channel_to(receiver.port, dead_letter_after_attempts=3)
        outbox = Outbox(history, [channel], clock, lambda t, o: None, on_dead_letter=dead.append)
        with capture_logs() as logs:
            await deliver_for_a_while(outbox, channel, clock)
    ids = [message["message"].rsplit(" ", 1)[-1] for message in receiver.messages]
    assert ids == [first] * 3 + [second] * 3
    assert dead == ["chat", "chat"]
    letters = [entry for entry in logs if entry["event"] == "webhook_dead_lettered"]
    assert [(e["target"], e["event_id"], e["attempts"], e["reason"]) for e in letters] == [
        ("chat", first, 3, "apprise failure"),
        ("chat", second, 3, "apprise failure"),
    ]
    rows = await history.undelivered()
    assert [(row.event_id, row.dead, row.last_error) for row in rows] == [
        (first, True, "apprise failure"),
        (second, True, "apprise failure"),
    ]


@pytest.mark.thread_deadline  # Apprise's deadline is a thread's timed wait
async def test_a_receiver_that_hangs_is_a_timeout_and_the_loop_goes_on(history: History) -> None:
    await record_events(history, 1, ["chat"])
    (delivery,) = await history.due_deliveries("chat", LATER, limit=1)
    async with receiving(Receiver(hold=True)) as receiver:
        channel = channel_to(receiver.port, timeout_seconds=0.3)
        with anyio.fail_after(10):  # Apprise's own deadline ends it, long before ours
            assert await channel.send(delivery) == Outcome("error", "apprise timeout", True)


async def test_an_event_no_message_can_be_made_of_fails_its_try_not_the_delivery_loop() -> None:
    channel = channel_to(closed_port())
    with capture_logs() as logs:
        outcome = await channel.send(PendingDelivery("e1", b'{"kind": "threshold"}', 0))
    assert outcome == Outcome("error", "message failed: KeyError", True)
    (entry,) = logs
    assert (entry["event"], entry["target"], entry["event_id"]) == (
        "message_unwritable",
        "chat",
        "e1",
    )


async def test_a_call_apprise_never_ends_is_given_up_and_one_that_raises_names_no_url(
    history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    await record_events(history, 1, ["chat"])
    (delivery,) = await history.due_deliveries("chat", LATER, limit=1)
    channel = channel_to(closed_port(), timeout_seconds=0.1)
    monkeypatch.setattr(messenger, "GRACE", 0.1)
    stuck = threading.Event()
    monkeypatch.setattr(channel, "_notify", lambda message: stuck.wait(10))
    try:
        with anyio.fail_after(5):
            assert await channel.send(delivery) == Outcome("error", "apprise timeout", True)
    finally:
        stuck.set()  # the abandoned thread ends

    def raises(message: object) -> None:
        raise RuntimeError("json://127.0.0.1/alerts/t0ken refused")

    monkeypatch.setattr(channel, "_notify", raises)
    assert await channel.send(delivery) == Outcome("error", "apprise raised RuntimeError", True)


def test_any_status_but_success_is_a_failure_that_counts_towards_a_dead_letter() -> None:
    from apprise import AppriseResultStatus

    assert outcome_of(AppriseResultStatus.SUCCESS) == Outcome("delivered")
    for status in AppriseResultStatus:
        if status is not AppriseResultStatus.SUCCESS:
            assert outcome_of(status).permanent, status


@pytest.mark.parametrize(
    "url",
    [
        "slak://T1JJ3T3L2/A1BRTD4JD/TIiajkdnl",  # no such service
        "json://127.0.0.1/a json://127.0.0.1/b",  # two destinations under one name
        "not a url",
        "",
    ],
)
def test_only_one_url_of_a_service_apprise_knows_is_accepted(url: str) -> None:
    assert not apprise_accepts(url)


async def test_the_daemon_messages_an_unknown_equity_and_counts_a_dead_letter(
    tmp_path: Path,
) -> None:
    """End to end: a book that cannot price an asset raises `incomplete` at its first cycle;
    one destination hears it as a message, one that always fails dead-letters it (metric)."""
    (tmp_path / "ops.toml").write_text('[[positions]]\nasset = "PEPE"\namount = "1e9"\n')
    venue = {"kind": "manual", "name": "ops", "path": tmp_path / "ops.toml"}
    async with (
        receiving(Receiver()) as good,
        receiving(Receiver(statuses=(500,))) as bad,
    ):
        places = [
            {"name": "chat", "url": f"json://127.0.0.1:{good.port}/alerts"},
            {
                "name": "broken",
                "url": f"json://127.0.0.1:{bad.port}/alerts",
                "max_backoff_seconds": 0.001,
                "dead_letter_after_attempts": 2,
            },
        ]
        settings = Settings.model_validate(
            {
                "books": {"ops": {"share_class": "USDT", "venues": [venue], "apprise": places}},
                "http": {"port": 0},
                "history_path": tmp_path / "h.sqlite3",
            }
        )
        history = await History.open(settings.history_path)
        daemon = Daemon(settings)

        def scraped(prefix: str) -> list[str]:
            lines = daemon.metrics()[0].decode().splitlines()
            return [line for line in lines if line.startswith(prefix)]

        with capture_logs():
            async with anyio.create_task_group() as tg:
                await tg.start(partial(daemon.run, history, handle_signals=False))
                await eventually(
                    lambda: (
                        len(good.messages) == 1
                        and 'equity_daemon_webhook_dead_letters_total{target="broken"} 1.0'
                        in scraped("equity_daemon_webhook_dead")
                        # the backlog is counted after the dead letter, not with it
                        and 'equity_daemon_outbox_backlog{target="broken"} 0.0'
                        in scraped("equity_daemon_outbox_backlog{")
                    ),
                    "one message heard, one dead letter, nothing left",
                )
                tg.cancel_scope.cancel()
        await history.aclose()
    (heard,) = good.messages
    assert heard["title"] == "ops: incomplete, equity unknown"
    assert heard["message"].splitlines()[:2] == ["Equity: unknown", "  unknown: PEPE has no price"]
    assert len(bad.messages) == 2
    assert set(scraped("equity_daemon_webhook_deliveries_total")) == {
        'equity_daemon_webhook_deliveries_total{outcome="delivered",target="chat"} 1.0',
        'equity_daemon_webhook_deliveries_total{outcome="rejected",target="broken"} 2.0',
    }
    assert scraped("equity_daemon_outbox_backlog{") == [
        'equity_daemon_outbox_backlog{target="broken"} 0.0',
        'equity_daemon_outbox_backlog{target="chat"} 0.0',
    ]
