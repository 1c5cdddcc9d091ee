"""Calls that cannot hold their caller past a deadline, even when they block in a thread.

`anyio.fail_after` cancels a call cooperatively. A venue or price source that sits in a worker
thread (a synchronous library call) cannot be cancelled: its caller waits until the thread
returns, however long that is. `Detached` runs the call in a task group that outlives the
caller, waits for it at most `timeout`, and leaves a straggler to finish on its own. Only one
call per `Detached` is in flight: while a straggler runs, the next caller waits for that one
instead of starting another thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

T = TypeVar("T")


class _Call(Generic[T]):
    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: T | None = None
        self.error: Exception | None = None

    async def run(self, call: Callable[[], Awaitable[T]]) -> None:
        try:
            self.result = await call()
        except Exception as exc:  # handed to whoever waits for it
            self.error = exc
        finally:
            self.done.set()


class Detached(Generic[T]):
    """One call at a time, run in `tg`, waited for at most a deadline."""

    def __init__(self) -> None:
        self._in_flight: _Call[T] | None = None

    async def __call__(self, tg: TaskGroup, seconds: float, call: Callable[[], Awaitable[T]]) -> T:
        """The call's result, or its exception; `TimeoutError` when not done within `seconds`."""
        if self._in_flight is None:
            self._in_flight = _Call()
            tg.start_soon(self._in_flight.run, call)
        running = self._in_flight
        with anyio.move_on_after(seconds):
            await running.done.wait()
        if not running.done.is_set():
            raise TimeoutError
        self._in_flight = None
        if running.error is not None:
            raise running.error
        return running.result  # type: ignore[return-value]  # set whenever error is None
