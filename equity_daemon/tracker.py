"""One book's state between cycles: its sequence number, monitor reference and latest snapshot.

No I/O here. A cycle is `judge()` (calculate, then observe), then the caller persists the result
(snapshot, reference and events in one transaction), then `commit()`. State advances only after
the write succeeded, so a crash can cost a delivery attempt, never an event or a reference move;
`restore()` takes the stored reference and sequence back after a restart, so a restart neither
re-alerts nor forgets a drift that built up before it.

Readers (the strategy, the HTTP API, metrics) use `latest`; nothing recomputes a snapshot on
demand (spec-notes row 14).

Between cycles the tracker also carries what the pure calculator needs from earlier snapshots:
the last good (fresh and clean) price of every asset, to value an asset whose quotes vanished,
and the edges that were suspect, for the hysteresis of `prices.resolve`; and which accounts
drift from their venue's total and which venues refuse our key (so each warns once per
episode). All advance on `commit()` only, like the reference, and start empty after a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from equity_daemon.calculator import Limits, calculate
from equity_daemon.model import PriceUsed, Problem, ProblemKind, ShareClass, Snapshot, VenueState
from equity_daemon.monitor import (
    AlertBand,
    Event,
    Reference,
    ThresholdRule,
    drift_events,
    drifting,
    new_event_id,
    observe,
    refusal_events,
    refusals,
)
from equity_daemon.prices import Quote, QuoteFailure


@dataclass(frozen=True, slots=True)
class Cycle:
    """What one cycle produced, to be persisted before it is committed."""

    snapshot: Snapshot
    reference: Reference
    events: list[Event]
    drifting: frozenset[str] = frozenset()  # accounts too far from their venue's own total
    refused: frozenset[str] = frozenset()  # venues refusing our key or a permission


class BookTracker:
    """The per-book state the calculator loop advances."""

    def __init__(
        self,
        *,
        book: str,
        share_class: ShareClass,
        limits: Limits,
        rule: ThresholdRule,
        clock: Callable[[], datetime],
        new_id: Callable[[], str] = new_event_id,
        reconciliation_tolerance: Decimal = Decimal("0.005"),
    ) -> None:
        self.book = book
        self.share_class = share_class
        self._limits = limits
        self._rule = rule
        self._clock = clock
        self._new_id = new_id
        self.reference = Reference(book)
        self.sequence = 0
        self.latest: Snapshot | None = None
        self._last_good_prices: dict[str, PriceUsed] = {}
        self._suspect_edges: frozenset[str] = frozenset()
        self._tolerance = reconciliation_tolerance
        self._drifting: frozenset[str] = frozenset()
        self._refused: frozenset[str] = frozenset()

    def alert_band(self) -> AlertBand:
        """Where the next threshold alert fires, from the committed reference."""
        return AlertBand(self.reference, self._rule)

    def restore(self, reference: Reference, last_sequence: int) -> None:
        self.reference = reference
        self.sequence = last_sequence

    def judge(
        self,
        venues: Sequence[VenueState],
        quotes: Iterable[Quote],
        quote_failures: Sequence[QuoteFailure] = (),
    ) -> Cycle:
        """The next snapshot and what the monitor makes of it; changes nothing yet."""
        snap = calculate(
            book=self.book,
            share_class=self.share_class,
            venues=venues,
            quotes=quotes,
            now=self._clock(),
            sequence=self.sequence + 1,
            limits=self._limits,
            quote_failures=quote_failures,
            last_good_prices=self._last_good_prices,
            previously_suspect=self._suspect_edges,
        )
        reference, events = observe(self.reference, snap, self._rule, self._new_id)
        drifting_now = drifting(self._drifting, snap, self._tolerance)
        events += drift_events(self._drifting, drifting_now, snap, self._new_id)
        refused_now = refusals(self._refused, venues)
        events += refusal_events(self._refused, refused_now, venues, snap, self._new_id)
        return Cycle(snap, reference, events, drifting_now, refused_now)

    def failed(self, detail: str) -> Cycle | None:
        """A cycle whose calculation raised: the last figures, incomplete, naming why.

        None before any snapshot: there is no figure to show, and readiness says why.
        """
        if self.latest is None:
            return None
        kept = [p for p in self.latest.problems if p.kind is not ProblemKind.CYCLE_FAILED]
        problem = Problem(ProblemKind.CYCLE_FAILED, self.book, detail)
        snap = replace(
            self.latest, at=self._clock(), sequence=self.sequence + 1, problems=(*kept, problem)
        )
        reference, events = observe(self.reference, snap, self._rule, self._new_id)
        return Cycle(snap, reference, events, self._drifting, self._refused)

    def commit(self, cycle: Cycle) -> None:
        snap = cycle.snapshot
        self.sequence = snap.sequence
        self.reference = cycle.reference
        self.latest = snap
        # a stale price is not remembered again (its age would reset); a suspect one is not good
        self._last_good_prices.update(
            (price.asset, price) for price in snap.prices if not (price.stale or price.suspect)
        )
        self._suspect_edges = frozenset(snap.suspect_edges)
        self._drifting = cycle.drifting
        self._refused = cycle.refused
