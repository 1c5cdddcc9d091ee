"""Cycles that raise one threshold event each, for tests of the webhook outbox."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count

from equity_daemon.model import Snapshot
from equity_daemon.monitor import Event, Reference, ThresholdRule, observe
from tests.reports import book_at


def threshold_cycles(events: int) -> Iterator[tuple[Snapshot, Reference, list[Event]]]:
    """`events + 1` cycles of book `basis`: the first sets the reference, each next one doubles
    equity and raises an event, with ids `e-1`, `e-2`, … and a minute between cycles."""
    ids = (f"e-{n}" for n in count(1))
    reference = Reference("basis")
    for sequence in range(1, events + 2):
        snap = book_at(str(100 * 2**sequence), sequence=sequence)
        reference, raised = observe(reference, snap, ThresholdRule(), lambda: next(ids))
        yield snap, reference, raised
