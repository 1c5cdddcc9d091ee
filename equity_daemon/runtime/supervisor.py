"""The daemon: one task group running pollers, the calculator loop, delivery and the HTTP API.

    supervisor task group
    ├── http.serve                 /metrics /healthz /readyz /snapshot /events
    ├── poll_forever × venue       -> PositionStore (pulls `changed` when equity could move)
    ├── calculate_forever          every interval, or `debounce` after a change:
    │                              per book: oracle -> calculator -> monitor -> history
    ├── deliver_callbacks          events -> in-process callbacks, off the calculator's path
    ├── Outbox.run                 webhook delivery from the durable outbox
    ├── prune_forever              history retention, hourly
    └── stop_on_signal             SIGTERM/SIGINT -> cancel everything, exit 0

A venue failing never stops the daemon (the poller turns it into a failed report). A bug in the
calculator loop is not caught: the process exits non-zero and systemd or Docker restarts it.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import structlog
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from equity_daemon import systemd
from equity_daemon.calculator import Limits
from equity_daemon.callbacks import Callbacks
from equity_daemon.history import History
from equity_daemon.http import Api, serve
from equity_daemon.metrics import BookView, DaemonMetrics, EquityCollector
from equity_daemon.model import Snapshot, decimal_str, decimal_str_or_none
from equity_daemon.monitor import Event, ThresholdRule
from equity_daemon.notify import Outbox
from equity_daemon.oracle import Edge, FixedRate, PriceOracle, QuoteSource
from equity_daemon.runtime.poller import PollPolicy, fetch_once, poll_forever
from equity_daemon.settings import BookSettings, DemoVenue, ManualVenue, Settings
from equity_daemon.store import PositionStore
from equity_daemon.tracker import BookTracker, Cycle
from equity_daemon.venues import demo, manual
from equity_daemon.venues.base import Venue

log = structlog.get_logger()

SHUTDOWN_GRACE = 4.0
PRUNE_EVERY = 3600.0
CALLBACK_QUEUE = 10_000


def utc_now() -> datetime:
    return datetime.now(UTC)


def make_venue(config: DemoVenue | ManualVenue, clock: Callable[[], datetime]) -> Venue:
    if isinstance(config, DemoVenue):
        return demo.DemoVenue(
            config.name, clock, config.interval_seconds, config.seed, config.volatility
        )
    return manual.ManualVenue(config.name, config.path, clock)


@dataclass
class Book:
    """One book's running parts."""

    name: str
    settings: BookSettings
    venues: list[Venue]
    oracle: PriceOracle
    tracker: BookTracker

    @property
    def venue_names(self) -> list[str]:
        return [venue.name for venue in self.venues]


class Daemon:
    """Everything one running daemon holds. Readers (HTTP, metrics, `EquityTracker`) use it."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.history: History | None = None  # set by run(); preview() needs none
        self.clock = clock
        self.instruments = DaemonMetrics()
        self.callbacks = Callbacks(
            settings.callback_timeout_seconds,
            on_failure=lambda reason: self.instruments.callback_failures.labels(reason).inc(),
        )
        self.books = [self._book(name, book) for name, book in settings.books.items()]
        venue_names = [name for book in self.books for name in book.venue_names]
        self.store = PositionStore(venue_names, clock())
        self.instruments.prepare(venue_names)
        self.last_cycle_at: datetime | None = None
        self._webhooks = [hook for book in settings.books.values() for hook in book.webhooks]
        self.outbox: Outbox | None = None
        # run() opens it: the calculator hands events over and goes on
        self._to_callbacks: MemoryObjectSendStream[Event] | None = None
        self.instruments.registry.register(
            EquityCollector(self._book_views, self._outbox_backlog, clock)
        )

    def _book(self, name: str, book: BookSettings) -> Book:
        venues = [make_venue(config, self.clock) for config in book.venues]
        limits = Limits(
            venue_max_age=timedelta(seconds=book.venue_max_age_seconds),
            venue_max_ages={
                v.name: timedelta(seconds=v.max_age_seconds)
                for v in book.venues
                if v.max_age_seconds is not None
            },
            max_deviation_bps=book.max_deviation_bps,
        )
        tracker = BookTracker(
            book=name,
            share_class=book.share_class,
            limits=limits,
            rule=ThresholdRule(book.threshold_percent, book.threshold_floor),
            clock=self.clock,
        )
        oracle = PriceOracle(
            self._edges(book, venues),
            self.clock,
            cache_ttl=timedelta(
                seconds=30 if book.quote_cache_seconds is None else book.quote_cache_seconds
            ),
            on_failure=lambda source: self.instruments.quote_errors.labels(source).inc(),
        )
        return Book(name, book, venues, oracle, tracker)

    def _edges(self, book: BookSettings, venues: Iterable[Venue]) -> list[Edge]:
        by_name = {venue.name: venue for venue in venues}
        edges = []
        for edge in book.prices:
            sources: tuple[QuoteSource, ...]
            if edge.fixed is not None:
                sources = (FixedRate(edge.fixed, self.clock),)
            else:
                sources = tuple(_as_source(by_name[name]) for name in edge.sources)
            edges.append(
                Edge(edge.base, edge.quote, sources, timedelta(seconds=edge.max_age_seconds))
            )
        return edges

    # --- what readers see -------------------------------------------------------------

    def _book_views(self) -> list[BookView]:
        return [
            BookView(b.name, b.tracker.latest, tuple(self.store.states(b.venue_names)))
            for b in self.books
        ]

    def _outbox_backlog(self) -> dict[str, int]:
        return {} if self.outbox is None else dict(self.outbox.backlog)

    def metrics(self) -> tuple[bytes, str]:
        return generate_latest(self.instruments.registry), CONTENT_TYPE_LATEST

    def healthy(self) -> tuple[bool, str]:
        if self.last_cycle_at is None:
            return True, "starting"
        silent = self.clock() - self.last_cycle_at
        limit = timedelta(seconds=3 * self.settings.interval_seconds + 30)
        if silent > limit:
            return False, f"calculator loop silent for {silent.total_seconds():.0f}s"
        return True, "ok"

    def ready(self) -> tuple[bool, list[str]]:
        reasons = []
        now = self.clock()
        limit = timedelta(seconds=2 * self.settings.interval_seconds)
        for book in self.books:
            snap = book.tracker.latest
            if snap is None:
                reasons.append(f"{book.name}: no snapshot yet")
            elif not snap.complete:
                names = ", ".join(f"{p.kind.value} {p.subject}" for p in snap.problems)
                reasons.append(f"{book.name}: incomplete ({names})")
            elif now - snap.at > limit:
                reasons.append(
                    f"{book.name}: snapshot is {(now - snap.at).total_seconds():.0f}s old"
                )
        return not reasons, reasons

    def snapshots(self) -> list[dict[str, Any]]:
        return [b.tracker.latest.to_json() for b in self.books if b.tracker.latest is not None]

    async def events(self, since: datetime | None) -> list[dict[str, Any]]:
        return [] if self.history is None else await self.history.events(since=since)

    def latest(self, book: str | None = None) -> Snapshot | None:
        return self._named(book).tracker.latest

    def _named(self, book: str | None) -> Book:
        if book is None:
            if len(self.books) != 1:
                raise LookupError("this daemon tracks several books: name one")
            return self.books[0]
        for candidate in self.books:
            if candidate.name == book:
                return candidate
        raise LookupError(f"no book named {book!r}")

    # --- the cycle ----------------------------------------------------------------------

    async def preview(self) -> list[Snapshot]:
        """Fetch every venue once and value every book, recording and notifying nothing."""
        await self.fetch_all_once()
        snapshots = []
        for book in self.books:
            quotes = await book.oracle.quotes()
            snapshots.append(
                book.tracker.judge(self.store.states(book.venue_names), quotes).snapshot
            )
        return snapshots

    async def cycle(self, history: History) -> list[Event]:
        """One snapshot per book: judge, persist (with the outbox rows), commit, deliver."""
        raised: list[Event] = []
        for book in self.books:
            quotes = await book.oracle.quotes()
            cycle = book.tracker.judge(self.store.states(book.venue_names), quotes)
            targets = [hook.name for hook in book.settings.webhooks]
            await history.record_cycle(cycle.snapshot, cycle.reference, cycle.events, targets)
            book.tracker.commit(cycle)
            _log_cycle(cycle)
            for event in cycle.events:
                _log_event(event)
            for event in cycle.events:
                self.instruments.events.labels(book.name, event.kind.value).inc()
            raised += cycle.events
        self.instruments.cycles.inc()
        self.last_cycle_at = self.clock()
        if raised and self.outbox is not None:
            self.outbox.wake()
        for event in raised:
            self._hand_to_callbacks(event)
        return raised

    def _hand_to_callbacks(self, event: Event) -> None:
        if self._to_callbacks is None:
            return
        try:
            self._to_callbacks.send_nowait(event)
        except anyio.WouldBlock:
            self.instruments.callback_failures.labels("dropped").inc()
            log.error("callback_queue_full", event_id=event.id)

    async def _deliver_callbacks(self, events: MemoryObjectReceiveStream[Event]) -> None:
        async for event in events:
            await self.callbacks.deliver(event)

    async def fetch_all_once(self) -> None:
        """Fetch every venue once, concurrently (for `once` and for a prompt first cycle)."""
        async with anyio.create_task_group() as tg:
            for venue, policy in self._polled():
                tg.start_soon(self._fetch_into_store, venue, policy)

    def _polled(self) -> Iterator[tuple[Venue, PollPolicy]]:
        """Every venue with the interval and timeout its configuration gives it."""
        for book in self.books:
            for venue, config in zip(book.venues, book.settings.venues, strict=True):
                yield venue, PollPolicy(config.interval_seconds, config.timeout_seconds)

    async def _fetch_into_store(self, venue: Venue, policy: PollPolicy) -> None:
        self.store.update(await fetch_once(venue, policy, self.clock, self.instruments))

    # --- running ------------------------------------------------------------------------

    async def run(
        self,
        history: History,
        *,
        handle_signals: bool = True,
        task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until cancelled or signalled. Reports the HTTP port after the first cycle.

        Args:
            history: the open history database (snapshots, references, outbox).
            handle_signals: stop cleanly on SIGTERM/SIGINT; off when embedded in a strategy
                process that handles its own signals.
        """
        self.history = history
        for book in self.books:
            book.tracker.restore(
                await history.load_reference(book.name), await history.last_sequence(book.name)
            )
        to_callbacks, for_callbacks = anyio.create_memory_object_stream[Event](CALLBACK_QUEUE)
        self._to_callbacks = to_callbacks
        async with (
            to_callbacks,
            for_callbacks,
            httpx.AsyncClient() as client,
            anyio.create_task_group() as tg,
        ):
            dead_letters = self.instruments.webhook_dead_letters
            self.outbox = Outbox(
                history,
                self._webhooks,
                client,
                self.clock,
                self._count_delivery,
                on_dead_letter=lambda target: dead_letters.labels(target).inc(),
            )
            token = self.settings.http.bearer_token
            api = Api(self, None if token is None else token.get_secret_value())
            port = await tg.start(serve, api, self.settings.http.host, self.settings.http.port)
            if handle_signals:
                tg.start_soon(self._stop_on_signal, tg.cancel_scope)
            await self.fetch_all_once()
            for venue, policy in self._polled():
                tg.start_soon(self._poll_after_first, venue, policy)
            tg.start_soon(self.outbox.run)
            tg.start_soon(self._prune_forever, history)
            tg.start_soon(self._deliver_callbacks, for_callbacks)
            await self.cycle(history)
            systemd.notify("READY=1")
            tg.start_soon(self._calculate_forever, history)
            task_status.started(port)

    async def _poll_after_first(self, venue: Venue, policy: PollPolicy) -> None:
        await anyio.sleep(policy.interval)
        await poll_forever(venue, self.store, policy, self.clock, self.instruments)

    async def _calculate_forever(self, history: History) -> None:
        while True:
            with anyio.move_on_after(self.settings.interval_seconds):
                await self.store.changed.wait()
                await anyio.sleep(self.settings.debounce_seconds)  # let a burst of pushes settle
            await self.cycle(history)
            systemd.notify("WATCHDOG=1")

    async def _prune_forever(self, history: History) -> None:
        keep = timedelta(days=self.settings.keep_all_days)
        while True:
            removed = await history.prune(self.clock(), keep)
            if removed:
                log.info("history_pruned", removed=removed)
            await anyio.sleep(PRUNE_EVERY)

    async def _stop_on_signal(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("stopping", signal=signal.Signals(signum).name)
                systemd.notify("STOPPING=1")
                scope.cancel()
                return

    def _count_delivery(self, target: str, outcome: str) -> None:
        self.instruments.webhook_deliveries.labels(target, outcome).inc()


def _log_cycle(cycle: Cycle) -> None:
    """The canonical log line of a cycle: one per book."""
    snap = cycle.snapshot
    log.info(
        "cycle",
        book=snap.book,
        sequence=snap.sequence,
        equity=decimal_str(snap.equity),
        share_class=snap.share_class.value,
        complete=snap.complete,
        problems=[f"{p.kind.value}:{p.subject}" for p in snap.problems],
        events=[e.kind.value for e in cycle.events],
    )


def _log_event(event: Event) -> None:
    """Every event is a log line too, whatever other targets say."""
    log.warning(
        "equity_event",
        event_id=event.id,
        book=event.book,
        kind=event.kind.value,
        reference=decimal_str_or_none(event.reference),
        equity=decimal_str(event.equity),
        change=decimal_str_or_none(event.change),
        problems=[f"{p.kind.value} {p.subject}: {p.detail}" for p in event.snapshot.problems],
    )


def _as_source(venue: Venue) -> QuoteSource:
    if not hasattr(venue, "observe"):
        raise TypeError(f"venue {venue.name!r} cannot quote prices")
    return venue  # type: ignore[return-value]


async def run_daemon(settings: Settings) -> None:
    """Open history, run the daemon until a signal, then close history (shielded)."""
    daemon = Daemon(settings)
    history = await History.open(settings.history_path, exclusive=True)
    try:
        await daemon.run(history)
    finally:
        with anyio.move_on_after(SHUTDOWN_GRACE, shield=True):
            await history.aclose()
        log.info("stopped")
