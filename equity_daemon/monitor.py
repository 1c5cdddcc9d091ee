"""The threshold monitor: which snapshots become events.

Pure: `observe` takes the book's `Reference` and a snapshot and returns the next reference and the
events to deliver. It compares with the last *notified* equity, not the previous snapshot, so a
slow drift alerts once it adds up to the threshold (spec-notes row 2).

| state change                     | event        | reference moves |
|----------------------------------|--------------|-----------------|
| first complete snapshot          | none         | set             |
| complete, |change| >= threshold  | `threshold`  | yes             |
| complete -> incomplete           | `incomplete` | no              |
| incomplete -> complete           | `recovered`  | no (then the threshold rule runs) |
| incomplete, again                | none         | no              |
| only awaiting a venue's first report (`unreported_venue`) | none | no (nothing changes) |

`AlertBand` says where the next alert fires (the reference ± the rule's distance): the status
page and `/snapshot` show it.

Beside the equity, two kinds of notice that never move the reference (`reference`, `change`
None; `detail` says what it is about): `reconciliation`, an account too far from its venue's
own total (`drifting`), and `venue_refused` / `venue_restored`, a venue refusing our key or a
permission, and reading again (`refusals`).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from equity_daemon.model import (
    ProblemKind,
    Reconciliation,
    Snapshot,
    VenueState,
    decimal_str,
    decimal_str_or_none,
)
from equity_daemon.prices import PRICE_PRECISION


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """Fire when |change| >= `percent` % of |reference| and >= `floor` share-class units.

    Taking `abs(reference)` keeps the rule meaningful for negative equity (row 3); with a zero
    reference any non-zero change fires, unless the floor says otherwise.
    """

    percent: Decimal = Decimal("0.1")
    floor: Decimal = Decimal(0)

    def crossed(self, reference: Decimal, equity: Decimal) -> bool:
        with localcontext(prec=PRICE_PRECISION):  # the calculator's precision, not 28 digits
            change = abs(equity - reference)
            if change == 0:
                return False
            return change >= self.distance(reference)

    def distance(self, reference: Decimal) -> Decimal:
        """How far from `reference` the equity must move to fire (0: any move fires)."""
        with localcontext(prec=PRICE_PRECISION):
            return max(abs(reference) * self.percent / 100, self.floor)


@dataclass(frozen=True, slots=True)
class Reference:
    """What the monitor remembers of a book; persisted so a restart neither re-alerts nor forgets.

    `equity` is the last notified equity (None before the first complete snapshot); `complete`
    is the state of the last snapshot seen (None before any).
    """

    book: str
    equity: Decimal | None = None
    sequence: int | None = None
    at: datetime | None = None
    complete: bool | None = None


@dataclass(frozen=True, slots=True)
class AlertBand:
    """Where a book's next threshold alert fires: the reference ± `rule.distance(reference)`.

    A complete snapshot at or past either edge fires and becomes the reference. Before the first
    complete snapshot there is no reference, and no band.
    """

    reference: Reference
    rule: ThresholdRule

    def edges(self) -> tuple[Decimal, Decimal] | None:
        """(low, high); None before the first reference."""
        if self.reference.equity is None:
            return None
        distance = self.rule.distance(self.reference.equity)
        with localcontext(prec=PRICE_PRECISION):
            return self.reference.equity - distance, self.reference.equity + distance

    def to_json(self) -> dict[str, Any]:
        """`/snapshot`'s `alert_band`: every figure a decimal string, or null before a
        reference."""
        equity, at = self.reference.equity, self.reference.at
        edges = self.edges()
        return {
            "reference": decimal_str_or_none(equity),
            "reference_at": None if at is None else at.isoformat(),
            "threshold_percent": decimal_str(self.rule.percent),
            "threshold_floor": decimal_str(self.rule.floor),
            "distance": None if equity is None else decimal_str(self.rule.distance(equity)),
            "low": None if edges is None else decimal_str(edges[0]),
            "high": None if edges is None else decimal_str(edges[1]),
        }


class EventKind(enum.StrEnum):
    THRESHOLD = "threshold"
    INCOMPLETE = "incomplete"
    RECOVERED = "recovered"
    RECONCILIATION = "reconciliation"
    VENUE_REFUSED = "venue_refused"
    VENUE_RESTORED = "venue_restored"


@dataclass(frozen=True, slots=True)
class Event:
    """Something operators and the strategy are told about. `id` is stable for de-duplication.

    `change` and `relative_change` compare the snapshot's equity with the reference, at the
    calculator's precision (`prices.PRICE_PRECISION`); they are None for `incomplete` events (an
    incomplete figure is not a move) and before any reference. `detail` says what a
    `reconciliation`, `venue_refused` or `venue_restored` notice is about, and `venue` names the
    venue of a `venue_*` one.
    """

    id: str
    book: str
    kind: EventKind
    at: datetime
    reference: Decimal | None
    equity: Decimal | None  # None: unknown (see `Snapshot.equity`)
    change: Decimal | None
    relative_change: Decimal | None
    snapshot: Snapshot
    detail: str | None = None
    venue: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "book": self.book,
            "kind": self.kind.value,
            "at": self.at.isoformat(),
            "reference": decimal_str_or_none(self.reference),
            "equity": decimal_str_or_none(self.equity),
            "change": decimal_str_or_none(self.change),
            "relative_change": decimal_str_or_none(self.relative_change),
            "detail": self.detail,
            "venue": self.venue,
            "snapshot": self.snapshot.to_json(),
        }


def new_event_id() -> str:
    return uuid.uuid4().hex


def observe(
    reference: Reference,
    snapshot: Snapshot,
    rule: ThresholdRule,
    new_id: Callable[[], str] = new_event_id,
) -> tuple[Reference, list[Event]]:
    """Advance a book's monitor by one snapshot.

    Returns:
        The next reference (persist it with the events, atomically) and the events, in order.
    """

    equity = snapshot.equity

    def event(kind: EventKind) -> Event:
        change = relative = None
        if kind is not EventKind.INCOMPLETE and reference.equity is not None and equity is not None:
            with localcontext(prec=PRICE_PRECISION):
                change = equity - reference.equity
                if reference.equity != 0:
                    relative = change / abs(reference.equity)
        return Event(
            id=new_id(),
            book=snapshot.book,
            kind=kind,
            at=snapshot.at,
            reference=reference.equity,
            equity=equity,
            change=change,
            relative_change=relative,
            snapshot=snapshot,
        )

    if awaiting_first_reports(snapshot):
        return reference, []
    if not snapshot.complete or equity is None:
        events = [] if reference.complete is False else [event(EventKind.INCOMPLETE)]
        return replace(reference, complete=False), events

    events = [event(EventKind.RECOVERED)] if reference.complete is False else []
    if reference.equity is not None and not rule.crossed(reference.equity, equity):
        return replace(reference, complete=True), events
    if reference.equity is not None:
        events.append(event(EventKind.THRESHOLD))
    moved = Reference(
        book=reference.book,
        equity=equity,
        sequence=snapshot.sequence,
        at=snapshot.at,
        complete=True,
    )
    return moved, events


def awaiting_first_reports(snapshot: Snapshot) -> bool:
    """True when all that keeps the book incomplete is venues not heard from since the daemon
    started, within their max age: nothing is known to have changed, so the monitor holds
    still (a restart during a short outage raises no `incomplete`, and its end no `recovered`);
    past the max age the venue is `failed_venue`, and the book's outage is told as any other."""
    problems = snapshot.problems
    return bool(problems) and all(p.kind is ProblemKind.UNREPORTED_VENUE for p in problems)


# An account that drifted stays drifting until it is back within this share of the tolerance,
# so a difference hovering around the tolerance warns once, not every other cycle.
DRIFT_EXIT_RATIO = Decimal("0.8")


# The venue's uPnL and the positions it is the sum of come from one answer, of one moment: only
# the exchange's rounding keeps them apart. A difference past this share of the account's total
# is a position the venue does not read (an option, a category never asked for), whatever the
# book's tolerance for drift between two moments.
UNEXPLAINED_PNL_TOLERANCE = Decimal("0.0001")


def drifting(previous: frozenset[str], snapshot: Snapshot, tolerance: Decimal) -> frozenset[str]:
    """The accounts (`venue/account`) whose computed equity is too far from the venue's own total,
    or whose uPnL its positions read do not explain.

    An account enters past `tolerance` (a ratio: 0.005 is 0.5 %), or with an unexplained uPnL
    past `UNEXPLAINED_PNL_TOLERANCE` of its total, and leaves below `DRIFT_EXIT_RATIO` of
    each; one whose total cannot be compared keeps its state.
    """
    found = set()
    for item in snapshot.reconciliations:
        ratio = item.ratio
        if ratio is None:
            if item.key in previous:
                found.add(item.key)
            continue
        exit_ratio = DRIFT_EXIT_RATIO if item.key in previous else Decimal(1)
        unexplained = _unexplained_ratio(item)
        if abs(ratio) > tolerance * exit_ratio or (
            unexplained is not None and unexplained > UNEXPLAINED_PNL_TOLERANCE * exit_ratio
        ):
            found.add(item.key)
    return frozenset(found)


def _unexplained_ratio(item: Reconciliation) -> Decimal | None:
    """The account's unexplained uPnL as a share of its total (None: nothing to say)."""
    if item.unexplained_pnl is None or not item.reported:
        return None
    return abs(item.unexplained_pnl) / abs(item.reported)


def drift_events(
    previous: frozenset[str],
    now_drifting: frozenset[str],
    snapshot: Snapshot,
    new_id: Callable[[], str] = new_event_id,
) -> list[Event]:
    """One `reconciliation` warning per account that started drifting with this snapshot.

    It carries the book's equity; the account's figures are in `detail` and in the snapshot,
    and so is the part of the venue's uPnL its positions read do not explain, when there is
    one (a position the venue never asks for).
    """
    return [
        notice(
            snapshot,
            EventKind.RECONCILIATION,
            f"{item.key}: computed {decimal_str(item.computed)} vs {item.label} "
            f"{decimal_str(item.reported_amount)} {item.reported_currency}"
            + _unexplained(item, snapshot.share_class.value),
            new_id,
        )
        for item in snapshot.reconciliations
        if item.key in now_drifting - previous
    ]


def _unexplained(item: Reconciliation, currency: str) -> str:
    if not item.unexplained_pnl:
        return ""
    amount = decimal_str(item.unexplained_pnl.quantize(Decimal("1e-8")))
    return f"; {amount} {currency} of its uPnL unexplained by the positions read"


def refusals(previous: frozenset[str], venues: Iterable[VenueState]) -> frozenset[str]:
    """The venues refusing our key or a permission: one enters when its latest fetch is refused
    (`VenueReport.refused`) and leaves when a fetch succeeds again; a venue that fails in
    another way meanwhile (a timeout) is still refused, for nothing says the key works."""
    return frozenset(
        state.venue
        for state in venues
        if state.latest.refused or (state.venue in previous and not state.latest.ok)
    )


def refusal_events(
    previous: frozenset[str],
    now_refused: frozenset[str],
    venues: Iterable[VenueState],
    snapshot: Snapshot,
    new_id: Callable[[], str] = new_event_id,
) -> list[Event]:
    """One `venue_refused` per venue that started refusing, one `venue_restored` per venue that
    reads again. The reason is the venue's error (`VenueAuthError.reason`: never a secret)."""
    events = []
    for state in sorted(venues, key=lambda s: s.venue):
        venue = state.venue
        if venue in now_refused - previous:
            detail = f"{venue} refused our key or a permission: {state.latest.error}"
            events.append(notice(snapshot, EventKind.VENUE_REFUSED, detail, new_id, venue))
        elif venue in previous - now_refused:
            detail = f"{venue} reads again"
            events.append(notice(snapshot, EventKind.VENUE_RESTORED, detail, new_id, venue))
    return events


def notice(
    snapshot: Snapshot,
    kind: EventKind,
    detail: str,
    new_id: Callable[[], str] = new_event_id,
    venue: str | None = None,
) -> Event:
    """An event about something beside the equity: it carries the book's equity as it is and
    no reference or change (the figures it is about are in `detail` and the snapshot)."""
    return Event(
        id=new_id(),
        book=snapshot.book,
        kind=kind,
        at=snapshot.at,
        reference=None,
        equity=snapshot.equity,
        change=None,
        relative_change=None,
        snapshot=snapshot,
        detail=detail,
        venue=venue,
    )
