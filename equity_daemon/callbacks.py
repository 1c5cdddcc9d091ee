"""In-process event callbacks, each isolated: time-limited, failures logged and counted.

The sample code ran callbacks inline, so one slow callback stalled monitoring (spec-notes row 9).
Here every callback runs concurrently with the others under its own deadline. A sync callback
runs in a worker thread, so it cannot block the event loop; when it overruns, the loop stops
waiting for it (the thread finishes on its own, its result ignored).
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeAlias

import anyio
import structlog

from equity_daemon.monitor import Event

log = structlog.get_logger()

EventCallback: TypeAlias = Callable[[Event], Awaitable[None] | None]


def callback_name(callback: EventCallback) -> str:
    return getattr(callback, "__qualname__", None) or type(callback).__qualname__


class Callbacks:
    """The registered callbacks of one process.

    Args:
        timeout: seconds one callback may take for one event.
        on_failure: told `"error"` or `"timeout"` for each failure (the daemon counts them).
    """

    def __init__(
        self, timeout: float = 5.0, on_failure: Callable[[str], None] = lambda reason: None
    ) -> None:
        self._callbacks: list[EventCallback] = []
        self._timeout = timeout
        self._on_failure = on_failure
        self.failures: Counter[str] = Counter()
        self.timeouts: Counter[str] = Counter()

    def add(self, callback: EventCallback) -> None:
        self._callbacks.append(callback)

    async def deliver(self, event: Event) -> None:
        """Run every callback for `event`; returns within about `timeout`, whatever they do."""
        async with anyio.create_task_group() as tg:
            for callback in self._callbacks:
                tg.start_soon(self._run_one, callback, event)

    async def _run_one(self, callback: EventCallback, event: Event) -> None:
        name = callback_name(callback)
        try:
            with anyio.fail_after(self._timeout):
                if inspect.iscoroutinefunction(callback):
                    await callback(event)
                else:
                    result = await anyio.to_thread.run_sync(callback, event, abandon_on_cancel=True)
                    if inspect.isawaitable(result):
                        await result
        except TimeoutError:
            self.timeouts[name] += 1
            self._on_failure("timeout")
            log.warning("callback_timeout", callback=name, event_id=event.id, timeout=self._timeout)
        except Exception:  # a callback is user code: count it, log it, never let it stop us
            self.failures[name] += 1
            self._on_failure("error")
            log.exception("callback_failed", callback=name, event_id=event.id)
