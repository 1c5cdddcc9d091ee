"""Callbacks are isolated: a slow or failing one never stalls the loop or the others."""

from __future__ import annotations

import threading
import time

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.callbacks import Callbacks
from equity_daemon.monitor import Event, Reference, ThresholdRule, observe
from tests.reports import book_at

pytestmark = pytest.mark.anyio


def an_event() -> Event:
    ref, _ = observe(Reference("basis"), book_at("1000"), ThresholdRule())
    _, (event,) = observe(ref, book_at("1100", sequence=2), ThresholdRule())
    return event


async def test_sync_and_async_callbacks_both_receive_the_event() -> None:
    got: list[str] = []

    def sync_cb(event: Event) -> None:
        got.append(f"sync {event.kind}")

    async def async_cb(event: Event) -> None:
        got.append(f"async {event.kind}")

    callbacks = Callbacks()
    callbacks.add(sync_cb)
    callbacks.add(async_cb)
    await callbacks.deliver(an_event())
    assert sorted(got) == ["async threshold", "sync threshold"]


async def test_a_failing_callback_is_logged_and_counted_and_the_others_still_run() -> None:
    got: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("strategy bug")

    async def fine(event: Event) -> None:
        got.append(event.id)

    callbacks = Callbacks()
    callbacks.add(broken)
    callbacks.add(fine)
    event = an_event()
    with capture_logs() as logs:
        await callbacks.deliver(event)
    assert got == [event.id]
    assert callbacks.failures[broken.__qualname__] == 1
    assert logs[0]["event"] == "callback_failed"
    assert logs[0]["event_id"] == event.id


async def test_slow_callbacks_are_cut_off_at_their_timeout() -> None:
    got: list[str] = []
    release = threading.Event()

    def blocking(event: Event) -> None:
        release.wait(10)  # a sync callback that blocks its thread

    async def sleepy(event: Event) -> None:
        await anyio.sleep(10)

    async def fine(event: Event) -> None:
        got.append("fine")

    reasons: list[str] = []
    callbacks = Callbacks(timeout=0.2, on_failure=reasons.append)
    for cb in (blocking, sleepy, fine):
        callbacks.add(cb)
    started = time.monotonic()
    with capture_logs() as logs:
        await callbacks.deliver(an_event())
    release.set()
    assert time.monotonic() - started < 2
    assert got == ["fine"]
    assert sum(callbacks.timeouts.values()) == 2
    assert reasons == ["timeout", "timeout"]
    assert {entry["event"] for entry in logs} == {"callback_timeout"}


async def test_a_sync_callback_runs_off_the_event_loop_thread() -> None:
    threads: list[int] = []
    callbacks = Callbacks()
    callbacks.add(lambda event: threads.append(threading.get_ident()))
    await callbacks.deliver(an_event())
    assert threads
    assert threads[0] != threading.get_ident()


async def test_a_callable_object_is_named_by_its_class() -> None:
    class Notifier:
        def __call__(self, event: Event) -> None:
            raise ValueError("nope")

    callbacks = Callbacks()
    callbacks.add(Notifier())
    with capture_logs():
        await callbacks.deliver(an_event())
    assert list(callbacks.failures) == [
        "test_a_callable_object_is_named_by_its_class.<locals>.Notifier"
    ]
