"""The strategy manager's view of equity: read the latest snapshot, never recompute it.

In-process (the daemon runs inside the strategy's event loop):

    async with anyio.create_task_group() as tg:
        tracker = await EquityTracker.start(tg, load_settings(Path("equity.toml")), [on_event])
        target = tracker.equity("basis") * leverage

From another process, `client.EquityClient` reads the same document over HTTP.

`equity()`, `by_venue()` and `by_asset()` raise rather than hand a strategy a number it must not
size from: `IncompleteEquity` when the latest snapshot is incomplete (or there is none yet),
`StaleEquity` when it is older than the daemon's `stale_after_seconds` (2 × interval by default:
the calculator loop has stopped ticking).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

import anyio

from equity_daemon.callbacks import EventCallback
from equity_daemon.errors import EquityDaemonError
from equity_daemon.history import History
from equity_daemon.model import Snapshot
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import Settings

if TYPE_CHECKING:
    from anyio.abc import TaskGroup, TaskStatus


class IncompleteEquity(EquityDaemonError):
    """Raised when a book has no snapshot yet, or its latest one is incomplete."""

    def __init__(self, book: str, problems: str) -> None:
        self.book = book
        self.problems = problems
        super().__init__(f"equity of {book} is not known: {problems}")


class StaleEquity(EquityDaemonError):
    """Raised when a book's latest snapshot is too old to act on."""

    def __init__(self, book: str, age: float, limit: float) -> None:
        self.book = book
        self.age = age
        self.limit = limit
        super().__init__(f"equity of {book} is {age:.0f}s old (limit {limit:.0f}s)")


class EquityTracker:
    """Reads a running daemon's latest snapshots."""

    def __init__(self, daemon: Daemon, port: int) -> None:
        self._daemon = daemon
        self.port = port

    @classmethod
    async def start(
        cls, tg: TaskGroup, settings: Settings, callbacks: Sequence[EventCallback] = ()
    ) -> EquityTracker:
        """Start a daemon in `tg` and return once its first cycle is done.

        `callbacks` are registered before that first cycle, so they see its events too. The
        daemon handles no signals here: the host process owns its signals.
        """
        daemon = Daemon(settings)
        for callback in callbacks:
            daemon.callbacks.add(callback)
        history = await History.open(settings.history_path, exclusive=True)
        port: int = await tg.start(_run_then_close, daemon, history)
        return cls(daemon, port)

    def add_callback(self, callback: EventCallback) -> None:
        """Call `callback(event)` for every threshold, incomplete and recovered event."""
        self._daemon.callbacks.add(callback)

    def latest(self, book: str | None = None) -> Snapshot | None:
        """The latest snapshot (complete or not); `book` may be omitted with a single book."""
        return self._daemon.latest(book)

    def equity(self, book: str | None = None) -> Decimal:
        snap = self._complete(book)
        return _known(snap.book, {"equity": snap.equity})["equity"]

    def by_venue(self, book: str | None = None) -> Mapping[str, Decimal]:
        snap = self._complete(book)
        return _known(snap.book, snap.equity_by_venue)

    def by_asset(self, book: str | None = None) -> Mapping[str, Decimal]:
        snap = self._complete(book)
        return _known(snap.book, snap.equity_by_asset)

    def _complete(self, book: str | None) -> Snapshot:
        snap = self._daemon.latest(book)
        age = self._daemon.snapshot_age(book)
        name = book or self._daemon.books[0].name
        if snap is None or age is None:
            raise IncompleteEquity(name, "no snapshot yet")
        if not snap.complete:
            raise IncompleteEquity(
                name, "; ".join(f"{p.subject}: {p.detail}" for p in snap.problems)
            )
        if age > self._daemon.stale_after:
            raise StaleEquity(name, age, self._daemon.stale_after)
        return snap


def _known(book: str, figures: Mapping[str, Decimal | None]) -> dict[str, Decimal]:
    """The figures, or `IncompleteEquity` if one is unknown (a complete snapshot has none)."""
    unknown = sorted(name for name, value in figures.items() if value is None)
    if unknown:
        raise IncompleteEquity(book, f"unknown: {', '.join(unknown)}")
    return {name: value for name, value in figures.items() if value is not None}


async def _run_then_close(
    daemon: Daemon, history: History, *, task_status: TaskStatus[int]
) -> None:
    try:
        await daemon.run(history, handle_signals=False, task_status=task_status)
    finally:
        with anyio.CancelScope(shield=True):
            await history.aclose()
