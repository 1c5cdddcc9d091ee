"""The daemon: one task group running pollers, the calculator loop, delivery and the HTTP API.

    supervisor task group
    ├── http.serve                 / /metrics /healthz /readyz /snapshot /events
    ├── Poller.run × venue         -> PositionStore (pulls `changed` when equity could move)
    ├── calculate_forever          every interval, and on a change (at most one per `debounce`):
    │                              per book: oracle -> calculator -> monitor -> history
    ├── stragglers                 venue fetches and quotes still blocked past their timeout
    ├── deliver_callbacks          events -> in-process callbacks, off the calculator's path
    ├── Outbox.run                 webhooks and Apprise messages from the durable outbox
    ├── prune_forever              history retention, hourly
    └── stop_on_signal             SIGTERM/SIGINT -> cancel everything, exit 0

A venue failing never stops the daemon (the poller turns it into a failed report). Nothing a
cycle raises ends the daemon either, nor the host's task group when embedded: a calculation that
fails makes its book's snapshot incomplete with a named problem (logged with its traceback once
per distinct error, counted in `equity_daemon_cycle_errors_total`), and a history that refuses
writes is reported by `/readyz` while the events wait in memory for it.
"""

from __future__ import annotations

import math
import signal
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import anyio
import httpx
import structlog
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from equity_daemon import systemd
from equity_daemon.calculator import Limits
from equity_daemon.callbacks import Callbacks
from equity_daemon.clock import Clock, SystemClock
from equity_daemon.errors import HistoryUnavailable
from equity_daemon.history import History
from equity_daemon.http import Api, serve
from equity_daemon.messenger import APPRISE_THREADS, AppriseChannel
from equity_daemon.metrics import BookView, DaemonMetrics, EquityCollector
from equity_daemon.model import EquityPoint, Snapshot, decimal_str_or_none
from equity_daemon.monitor import Event, ThresholdRule
from equity_daemon.notify import Channel, Outbox, WebhookClient
from equity_daemon.oracle import Edge, FixedRate, PriceOracle, QuoteSource
from equity_daemon.pegs import Peg
from equity_daemon.runtime.compose import (
    ContractPricing,
    make_contract_pricing,
    make_hosts,
    make_market,
    make_price_source,
    make_venue,
)
from equity_daemon.runtime.poller import Poller, PollPolicy
from equity_daemon.settings import (
    BookSettings,
    ManualVenue,
    Settings,
)
from equity_daemon.store import PositionStore
from equity_daemon.tracker import BookTracker, Cycle
from equity_daemon.venues.base import RemembersVenue, StreamingVenue, Venue

log = structlog.get_logger()

SHUTDOWN_GRACE = 4.0
PRUNE_EVERY = 3600.0
CALLBACK_QUEUE = 10_000
# Events of cycles the history could not write, kept per book until it can: an outage of hours
# at a few events an hour fits many times over; past it the oldest go (counted and logged).
UNWRITTEN_EVENTS_KEPT = 10_000


@dataclass
class Book:
    """One book's running parts, and what the runtime remembers of its recent cycles."""

    name: str
    settings: BookSettings
    venues: list[Venue]
    oracle: PriceOracle
    tracker: BookTracker
    marks: ContractPricing
    unwritten: deque[Event] = field(default_factory=lambda: deque(maxlen=UNWRITTEN_EVENTS_KEPT))
    judged_at: float | None = None  # monotonic time of the latest snapshot
    recorded_at: float | None = None  # monotonic time of the latest recorded snapshot
    recorded_complete: bool | None = None
    failing: str | None = None  # why no snapshot could be made, while that lasts

    @property
    def venue_names(self) -> list[str]:
        return [venue.name for venue in self.venues]

    def latest_prices(self) -> dict[str, Decimal]:
        latest = self.tracker.latest
        return {} if latest is None else {p.asset: p.price for p in latest.prices}


class Daemon:
    """Everything one running daemon holds. Readers (HTTP, metrics, `EquityTracker`) use it."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.history: History | None = None  # set by run(); preview() needs none
        self.clock: Clock = clock or SystemClock()
        self.instruments = DaemonMetrics()
        self.callbacks = Callbacks(
            settings.callback_timeout_seconds,
            on_failure=lambda reason: self.instruments.callback_failures.labels(reason).inc(),
        )
        self._price_sources: dict[str, QuoteSource] = {
            name: make_price_source(name, config) for name, config in settings.price_sources.items()
        }
        # every venue and market of one exchange host waits on one rate limiter, and one ban
        self.budgets = make_hosts(settings, self.instruments, self.clock)
        self.markets = {
            name: make_market(name, config, self.clock, self.budgets)
            for name, config in settings.markets.items()
        }
        self._price_sources.update(self.markets)
        self.books = [self._book(name, book) for name, book in settings.books.items()]
        venue_names = [name for book in self.books for name in book.venue_names]
        self.store = PositionStore(venue_names, self.clock)
        self.pollers = list(self._pollers())
        self.instruments.prepare(
            venue_names,
            [name for book in settings.books.values() for name in book.outbox_targets],
            self.budgets.exchanges,
            books=settings.books,
        )
        self.history_problem: str | None = None
        self._last_cycle_at: float | None = None  # monotonic
        self._errors_seen: set[tuple[str, str, str]] = set()
        self.outbox: Outbox | None = None
        # run() opens it: the calculator hands events over and goes on
        self._to_callbacks: MemoryObjectSendStream[Event] | None = None
        self.instruments.registry.register(
            EquityCollector(self._book_views, self._outbox_backlog, self.clock)
        )

    def _book(self, name: str, book: BookSettings) -> Book:
        venues = [
            make_venue(
                config,
                self.clock,
                self.instruments.stream_disagreed,
                self.budgets,
                self.instruments.chain_endpoint_behind,
            )
            for config in book.venues
        ]
        limits = Limits(
            venue_max_age=timedelta(seconds=book.venue_max_age_seconds),
            venue_max_ages={
                v.name: timedelta(seconds=v.max_age_seconds)
                for v in book.venues
                if v.max_age_seconds is not None
            },
            max_deviation_bps=book.max_deviation_bps,
            ignore_assets=book.ignore_assets,
            pegs={
                f"{edge.base}/{edge.quote}": Peg(
                    edge.base, edge.quote, edge.peg, edge.value_at == "peg"
                )
                for edge in book.prices
                if edge.peg is not None
            },
        )
        tracker = BookTracker(
            book=name,
            share_class=book.share_class,
            limits=limits,
            rule=ThresholdRule(book.threshold_percent, book.threshold_floor),
            clock=self.clock,
            reconciliation_tolerance=book.reconciliation_tolerance,
        )
        oracle = PriceOracle(
            self._edges(book, venues),
            self.clock,
            cache_cap=book.quote_cache_seconds,
            on_failure=lambda source: self.instruments.quote_errors.labels(source).inc(),
        )
        return Book(name, book, venues, oracle, tracker, self._marks(venues, limits))

    def _marks(self, venues: Iterable[Venue], limits: Limits) -> ContractPricing:
        """What reads the marks of the contracts each exchange venue holds: the market of its
        exchange host if one is configured, else the venue's own instance."""
        return make_contract_pricing(venues, self.markets.values(), limits.max_age_of, self.clock)

    def _edges(self, book: BookSettings, venues: Iterable[Venue]) -> list[Edge]:
        by_name: dict[str, Venue | QuoteSource] = dict(self._price_sources)
        by_name.update((venue.name, venue) for venue in venues)
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

    def _pollers(self) -> Iterator[Poller]:
        """Every venue with the interval and timeout its configuration gives it."""
        for book in self.books:
            for venue, config in zip(book.venues, book.settings.venues, strict=True):
                policy = PollPolicy(
                    config.interval_seconds,
                    config.timeout_seconds,
                    # a file fails until someone fixes it: look again at the usual pace
                    backoff=not isinstance(config, ManualVenue),
                )
                yield Poller(
                    venue, self.store, policy, self.clock, self.instruments, book.latest_prices
                )

    # --- what readers see -------------------------------------------------------------

    def _book_views(self) -> list[BookView]:
        return [
            BookView(
                b.name,
                b.tracker.latest,
                tuple(self.store.states(b.venue_names)),
                self.snapshot_age(b.name),
                len(b.unwritten),
            )
            for b in self.books
        ]

    def _outbox_backlog(self) -> dict[str, int]:
        return {} if self.outbox is None else dict(self.outbox.backlog)

    def metrics(self) -> tuple[bytes, str]:
        return generate_latest(self.instruments.registry), CONTENT_TYPE_LATEST

    def healthy(self) -> tuple[bool, str]:
        if self._last_cycle_at is None:
            return True, "starting"
        silent = self.clock.monotonic() - self._last_cycle_at
        if silent > 3 * self.settings.interval_seconds + 30:
            return False, f"calculator loop silent for {silent:.0f}s"
        return True, "ok"

    @property
    def stale_after(self) -> float:
        """Seconds after which the latest snapshot is too old to act on."""
        configured = self.settings.stale_after_seconds
        return 2 * self.settings.interval_seconds if configured is None else configured

    def snapshot_age(self, book: str | None = None) -> float | None:
        """Seconds since the book's latest snapshot, on the monotonic clock."""
        judged_at = self._named(book).judged_at
        return None if judged_at is None else self.clock.monotonic() - judged_at

    def ready(self) -> tuple[bool, list[str]]:
        reasons = []
        if self.history_problem is not None:
            reasons.append(f"history unavailable: {self.history_problem}")
        for book in self.books:
            snap, age = book.tracker.latest, self.snapshot_age(book.name)
            if book.failing is not None:
                reasons.append(f"{book.name}: cycle failing ({book.failing})")
            if snap is None or age is None:
                reasons.append(f"{book.name}: no snapshot yet")
            elif not snap.complete:
                names = ", ".join(f"{p.kind.value} {p.subject}" for p in snap.problems)
                reasons.append(f"{book.name}: incomplete ({names})")
            elif age > 2 * self.settings.interval_seconds:
                reasons.append(f"{book.name}: snapshot is {age:.0f}s old")
        return not reasons, reasons

    def snapshots(self) -> list[dict[str, Any]]:
        """Every book's latest snapshot document, with how old it is, whether it is stale, and
        where its next threshold alert fires (`alert_band`)."""
        documents = []
        for book in self.books:
            snap, age = book.tracker.latest, self.snapshot_age(book.name)
            if snap is not None and age is not None:
                beside = {
                    "age_seconds": round(age, 3),
                    "stale_after_seconds": self.stale_after,
                    "stale": age > self.stale_after,
                    "alert_band": book.tracker.alert_band().to_json(),
                }
                documents.append(snap.to_json() | beside)
        return documents

    def exchange_bans(self) -> dict[str, datetime]:
        """The exchanges banning us now, each with when its ban ends (the status page)."""
        return self.budgets.bans()

    async def events(
        self,
        since: datetime | None,
        book: str | None = None,
        limit: int | None = None,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        """Stored events (`History.events`); none before `run()` opened a history."""
        if self.history is None:
            return []
        return await self.history.events(since, book, limit, kind)

    def book_names(self) -> list[str]:
        return [book.name for book in self.books]

    async def equity_history(
        self, book: str, since: datetime, points: int | None = None
    ) -> list[EquityPoint]:
        """The book's recorded equity since `since`, oldest first, thinned to about `points`
        (`History.equity_points`: the status page's chart); none before `run()` opened a
        history."""
        if self.history is None:
            return []
        return await self.history.equity_points(book, since, points)

    async def equity_baseline(self, book: str, at: datetime) -> EquityPoint | None:
        """The book's complete equity recorded at or before `at` (`History.equity_baseline`)."""
        if self.history is None:
            return None
        return await self.history.equity_baseline(book, at)

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
        """Fetch every venue once and value every book, recording and notifying nothing (the
        snapshots are the latest in memory: `snapshots()` gives their documents)."""
        async with anyio.create_task_group() as tg:
            await self.fetch_all_once(tg)
            snapshots = []
            for book in self.books:
                cycle = await self._judge(book, tg)
                if cycle is not None:
                    book.tracker.commit(cycle)
                    book.judged_at = self.clock.monotonic()
                    snapshots.append(cycle.snapshot)
            tg.cancel_scope.cancel()  # stragglers (a venue stuck in a thread) are not waited for
        await self.aclose()
        return snapshots

    async def aclose(self) -> None:
        """Close every venue that holds connections (ccxt sessions, RPC sessions): shielded
        from cancellation, and time-limited so a hung peer cannot hold the stop."""
        with anyio.move_on_after(SHUTDOWN_GRACE, shield=True):
            for venue in self._closable_venues():
                await venue.aclose()
            for market in self.markets.values():
                await market.aclose()

    async def cycle(self, history: History, tg: TaskGroup | None = None) -> list[Event]:
        """One snapshot per book: judge, persist (with the outbox rows), commit, deliver.

        Never raises for a book's sake: a calculation that fails gives that book an incomplete
        snapshot naming the failure, a history that refuses writes keeps the events in memory
        until it accepts them again, and the other books go on.
        """
        raised: list[Event] = []
        queued = False  # events reached the outbox: this cycle's, or ones held in memory
        for book in self.books:
            cycle = await self._judge(book, tg)
            if cycle is None:
                continue
            queued |= await self._record(book, cycle, history)
            previous = book.tracker.latest
            book.tracker.commit(cycle)
            book.judged_at = self.clock.monotonic()
            _log_cycle(cycle, previous)
            for event in cycle.events:
                _log_event(event)
                self.instruments.events.labels(book.name, event.kind.value).inc()
            raised += cycle.events
        self.instruments.cycles.inc()
        self.instruments.cycle_weights(self.budgets.weight_since_last_call())
        self._last_cycle_at = self.clock.monotonic()
        if queued and self.outbox is not None:
            self.outbox.wake()
        for event in raised:
            self._hand_to_callbacks(event)
        return raised

    async def _judge(self, book: Book, tg: TaskGroup | None) -> Cycle | None:
        try:
            states = self.store.states(book.venue_names)  # the contracts to price are theirs
            quotes = await book.oracle.quotes(tg, book.marks.edges(states))
            cycle = book.tracker.judge(states, quotes.quotes, quotes.failures)
        except Exception as exc:  # a bug must cost this book's cycle, not the daemon
            book.failing = self._cycle_error(book.name, "calculate", exc)
            return self._failed_cycle(book)
        book.failing = None
        return cycle

    def _failed_cycle(self, book: Book) -> Cycle | None:
        try:
            return book.tracker.failed(f"calculation failed: {book.failing}")
        except Exception as exc:
            self._cycle_error(book.name, "monitor", exc)
            return None

    async def _record(self, book: Book, cycle: Cycle, history: History) -> bool:
        """Write the cycle, or keep its events for a later write when history refuses it.

        A snapshot is recorded at most once per `record_interval_seconds`, unless an event
        fires or completeness changes; events and the reference are written every time.

        Returns:
            Whether events reached the outbox: this cycle's, or those kept through an outage
            and written now (the delivery loop must look at once, not at its next idle look).
        """
        if len(book.unwritten) + len(cycle.events) > UNWRITTEN_EVENTS_KEPT:
            self.instruments.unwritten_dropped.labels(book.name).inc()
            log.error("unwritten_events_dropped", book=book.name)
        book.unwritten.extend(cycle.events)
        snap = cycle.snapshot if self._record_due(book, cycle) else None
        targets = book.settings.outbox_targets
        try:
            await history.record_cycle(snap, cycle.reference, list(book.unwritten), targets)
        except HistoryUnavailable as exc:
            self._history_refused(exc.reason)
            return False
        except Exception as exc:  # keep computing and serving; the reason shows in readiness
            self._history_refused(self._cycle_error(book.name, "history", exc))
            return False
        if self.history_problem is not None:
            log.warning("history_available", written_events=len(book.unwritten))
            self.history_problem = None
        queued = bool(book.unwritten and targets)
        book.unwritten.clear()
        if snap is not None:
            book.recorded_at, book.recorded_complete = self.clock.monotonic(), snap.complete
        return queued

    def _record_due(self, book: Book, cycle: Cycle) -> bool:
        if cycle.events or book.recorded_at is None:
            return True
        if cycle.snapshot.complete != book.recorded_complete:
            return True
        every = book.settings.record_interval_seconds or self.settings.interval_seconds
        return self.clock.monotonic() - book.recorded_at >= every

    def _history_refused(self, reason: str) -> None:
        if self.history_problem != reason:
            log.error("history_unavailable", reason=reason)
        self.history_problem = reason

    def _cycle_error(self, book: str, stage: str, exc: Exception) -> str:
        """Count it, log it (with its traceback the first time it is seen), and describe it."""
        self.instruments.cycle_errors.labels(book, stage).inc()
        reason = f"{type(exc).__name__}: {exc}"
        key = (book, stage, reason)
        if key not in self._errors_seen:
            self._errors_seen.add(key)
            log.error("cycle_failed", book=book, stage=stage, reason=reason, exc_info=exc)
        return reason

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

    async def fetch_all_once(self, tg: TaskGroup | None = None) -> None:
        """Fetch every venue once, concurrently (for `once` and for a prompt first cycle)."""
        async with anyio.create_task_group() as local:
            for poller in self.pollers:
                local.start_soon(poller.fetch, tg or local)

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
            for venue in book.venues:
                if isinstance(venue, RemembersVenue):
                    venue.attach_memory(history)  # discovery survives a restart
        try:
            await self._run(history, handle_signals, task_status)
        finally:
            await self.aclose()

    async def _run(
        self, history: History, handle_signals: bool, task_status: TaskStatus[int]
    ) -> None:
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
                self._channels(client),
                self.clock,
                self._count_delivery,
                on_dead_letter=lambda target: dead_letters.labels(target).inc(),
            )
            token = self.settings.http.bearer_token
            api = Api(
                self,
                None if token is None else token.get_secret_value(),
                open_metrics=self.settings.http.open_metrics,
            )
            port = await tg.start(serve, api, self.settings.http.host, self.settings.http.port)
            if handle_signals:
                tg.start_soon(self._stop_on_signal, tg.cancel_scope)
            await self.fetch_all_once(tg)
            for poller in self.pollers:
                tg.start_soon(self._poll_after_first, poller, tg)
            tg.start_soon(self.outbox.run)
            tg.start_soon(self._prune_forever, history)
            tg.start_soon(self._deliver_callbacks, for_callbacks)
            await self._cycle_guarded(history, tg)
            systemd.notify("READY=1")
            tg.start_soon(self._calculate_forever, history, tg)
            task_status.started(port)

    def _channels(self, client: httpx.AsyncClient) -> list[Channel]:
        """Every outbox target: each book's webhooks, then its Apprise destinations."""
        books = self.settings.books.values()
        threads = anyio.CapacityLimiter(APPRISE_THREADS)  # for every destination together
        webhooks = [WebhookClient(hook, client) for book in books for hook in book.webhooks]
        places = [AppriseChannel(place, threads) for book in books for place in book.apprise]
        return [*webhooks, *places]

    def _closable_venues(self) -> Iterator[Closable]:
        """Venues holding connections (ccxt or RPC sessions), closed when run() or preview() end."""
        for book in self.books:
            for venue in book.venues:
                if isinstance(venue, Closable):
                    yield venue

    async def _poll_after_first(self, poller: Poller, tg: TaskGroup) -> None:
        if not isinstance(poller.venue, StreamingVenue):  # a stream is followed from the start
            await anyio.sleep(poller.policy.interval)
        await poller.run(tg)

    async def _calculate_forever(self, history: History, tg: TaskGroup) -> None:
        """A cycle every interval, and one on every change, at most one per `debounce_seconds`.

        The first change after a quiet spell is computed at once (a push reaches the webhook in
        milliseconds, not after a fixed delay); changes that follow it within the window wait for
        the window's end and are computed together, so a burst of pushes costs two cycles.
        """
        last_cycle = -math.inf
        while True:
            with anyio.move_on_after(self.settings.interval_seconds):
                await self.store.changed.wait()
                await anyio.sleep(
                    max(0.0, last_cycle + self.settings.debounce_seconds - anyio.current_time())
                )
            last_cycle = anyio.current_time()
            await self._cycle_guarded(history, tg)
            systemd.notify("WATCHDOG=1")

    async def _cycle_guarded(self, history: History, tg: TaskGroup) -> None:
        """The last line of defence: whatever a cycle raises, the loop (and the host) go on."""
        try:
            await self.cycle(history, tg)
        except Exception as exc:
            self._cycle_error("*", "cycle", exc)

    async def _prune_forever(self, history: History) -> None:
        keep = timedelta(days=self.settings.keep_all_days)
        while True:
            try:
                removed = await history.prune(self.clock(), keep)
            except HistoryUnavailable as exc:
                self._history_refused(exc.reason)
            except Exception as exc:  # retention is housekeeping: it never ends the daemon
                self._cycle_error("*", "prune", exc)
            else:
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


def _log_cycle(cycle: Cycle, previous: Snapshot | None) -> None:
    """The canonical log line of a cycle, one per book: at info when the book's state changed
    (an event fired, it became complete or incomplete, its problems or whether its equity is
    known changed), else at debug: a quiet daemon does not log every few seconds."""
    snap = cycle.snapshot
    changed = previous is None or bool(cycle.events) or _state(previous) != _state(snap)
    (log.info if changed else log.debug)(
        "cycle",
        book=snap.book,
        sequence=snap.sequence,
        equity=decimal_str_or_none(snap.equity),
        share_class=snap.share_class.value,
        complete=snap.complete,
        problems=[f"{p.kind.value}:{p.subject}" for p in snap.problems],
        events=[e.kind.value for e in cycle.events],
    )


def _state(snap: Snapshot) -> tuple[object, ...]:
    """What makes a cycle worth a line at info when it changes (not the equity's every move:
    a threshold event says when that matters)."""
    problems = tuple((problem.kind, problem.subject) for problem in snap.problems)
    return snap.complete, snap.equity is None, problems


def _log_event(event: Event) -> None:
    """Every event is a log line too, whatever other targets say."""
    log.warning(
        "equity_event",
        event_id=event.id,
        book=event.book,
        kind=event.kind.value,
        reference=decimal_str_or_none(event.reference),
        equity=decimal_str_or_none(event.equity),
        change=decimal_str_or_none(event.change),
        problems=[f"{p.kind.value} {p.subject}: {p.detail}" for p in event.snapshot.problems],
    )


@runtime_checkable
class Closable(Protocol):
    async def aclose(self) -> None: ...


def _as_source(venue: Venue | QuoteSource) -> QuoteSource:
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
