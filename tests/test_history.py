"""History: what a restart finds, what retention keeps, what a kill -9 can cost."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from equity_daemon.history import History, HistoryDB
from equity_daemon.monitor import EventKind, Reference, ThresholdRule, observe
from tests.reports import NOW, book_at

RULE = ThresholdRule()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[HistoryDB]:
    opened = HistoryDB(tmp_path / "h.sqlite3")
    yield opened
    opened.close()


def record(db: HistoryDB, reference: Reference, equity: str, sequence: int) -> Reference:
    snap = replace(book_at(equity, sequence=sequence), at=NOW + timedelta(minutes=sequence))
    reference, events = observe(reference, snap, RULE)
    db.record_cycle(snap, reference, events, targets=["pager"])
    return reference


def test_a_restart_finds_the_reference_the_sequence_and_the_events(tmp_path: Path) -> None:
    path = tmp_path / "state" / "history.sqlite3"
    db = HistoryDB(path)
    assert db.load_reference("basis") == Reference("basis")
    assert db.last_sequence("basis") == 0
    ref = record(db, Reference("basis"), "1000", 1)
    ref = record(db, ref, "1000.5", 2)
    ref = record(db, ref, "1010", 3)
    db.close()

    reopened = HistoryDB(path)
    restored = reopened.load_reference("basis")
    assert restored == ref
    assert restored.equity == Decimal(1010)
    assert restored.at is not None
    assert restored.at.utcoffset() == timedelta(0)
    assert reopened.last_sequence("basis") == 3
    (event,) = reopened.events()
    assert (event["kind"], event["reference"], event["equity"]) == ("threshold", "1000", "1010")
    assert reopened.journal_mode() == "wal"
    reopened.close()


def test_an_incomplete_state_and_an_empty_reference_round_trip(db: HistoryDB) -> None:
    snap = book_at("5", complete=False)
    reference, events = observe(Reference("basis"), snap, RULE)
    db.record_cycle(snap, reference, events)
    assert db.load_reference("basis") == Reference("basis", complete=False)
    assert [e["kind"] for e in db.events(book="basis")] == ["incomplete"]


def test_recording_an_event_twice_keeps_one(db: HistoryDB) -> None:
    ref, _ = observe(Reference("basis"), book_at("100"), RULE)
    snap = book_at("200", sequence=2)
    moved, events = observe(ref, snap, RULE)
    db.record_cycle(snap, moved, events, ["pager"])
    db.record_cycle(replace(snap, sequence=3), moved, events, ["pager"])
    assert len(db.events()) == 1
    assert db.outbox_backlog("pager") == 1


def test_a_failed_write_leaves_nothing_behind(db: HistoryDB) -> None:
    ref = record(db, Reference("basis"), "1000", 1)
    snap = book_at("2000", sequence=1)  # the same sequence again: the insert fails
    moved, events = observe(ref, snap, RULE)
    with pytest.raises(Exception, match="UNIQUE"):
        db.record_cycle(snap, moved, events, ["pager"])
    assert db.load_reference("basis") == ref
    assert db.events() == []


def test_snapshots_by_book_and_time_range(db: HistoryDB) -> None:
    ref = Reference("basis")
    for sequence in range(1, 6):
        ref = record(db, ref, "1000", sequence)
    picked = db.snapshots("basis", NOW + timedelta(minutes=2), NOW + timedelta(minutes=4))
    assert [doc["sequence"] for doc in picked] == [2, 3, 4]
    assert db.snapshots("other") == []
    with pytest.raises(ValueError, match="timezone-aware"):
        db.snapshots(since=NOW.replace(tzinfo=None))


def test_retention_keeps_recent_snapshots_and_one_per_hour_before(db: HistoryDB) -> None:
    ref = Reference("basis")
    for sequence in range(1, 181):  # three hours, one snapshot a minute
        ref = record(db, ref, str(1000 + 10 * sequence), sequence)
    events_before = len(db.events())
    now = NOW + timedelta(minutes=181)
    removed = db.prune(now, keep_all_for=timedelta(minutes=60))
    kept = [doc["sequence"] for doc in db.snapshots()]
    recent = [s for s in kept if s > 120]
    assert recent == list(range(121, 181))  # the last hour, untouched
    assert len(kept) - len(recent) <= 3  # the two hours before: one each (plus an edge hour)
    assert removed == 180 - len(kept)
    assert len(db.events()) == events_before
    assert db.load_reference("basis") == ref


def test_the_outbox_orders_retries_and_forgets_delivered_events(db: HistoryDB) -> None:
    ref = Reference("basis")
    for sequence, equity in enumerate(["100", "200", "300"], start=1):
        ref = record(db, ref, equity, sequence)
    first, second = (e["id"] for e in db.events())
    due = db.due_deliveries("pager", NOW + timedelta(hours=1), limit=5)
    assert [d.event_id for d in due] == [first, second]
    assert due[0].body.startswith(b'{"id":"' + first.encode())
    retry_at = NOW + timedelta(hours=2)
    db.mark_attempt_failed(first, "pager", 1, retry_at, "HTTP 503")
    assert db.due_deliveries("pager", NOW + timedelta(hours=1), limit=5) == []  # order kept
    assert db.next_delivery_at("pager") == retry_at  # the head of the line decides
    assert db.due_deliveries("pager", retry_at, limit=1)[0].attempts == 1
    db.mark_delivered(first, "pager", retry_at)
    assert db.outbox_backlog("pager") == 1
    db.mark_delivered(second, "pager", retry_at)
    assert db.outbox_backlog("pager") == 0
    assert db.next_delivery_at("pager") is None


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    HistoryDB(path).close()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version=99")
    raw.close()
    with pytest.raises(RuntimeError, match="newer equity-daemon"):
        HistoryDB(path)


@pytest.mark.anyio
async def test_the_async_face_runs_sqlite_off_the_event_loop_thread(tmp_path: Path) -> None:
    threads: list[int] = []

    class Watched(HistoryDB):
        def last_sequence(self, book: str) -> int:
            threads.append(threading.get_ident())
            return super().last_sequence(book)

    history = History(Watched(tmp_path / "h.sqlite3"))
    snap = book_at("100")
    reference, events = observe(Reference("basis"), snap, RULE)
    await history.record_cycle(snap, reference, events)
    assert await history.last_sequence("basis") == 1
    assert threads
    assert threads[0] != threading.get_ident()
    assert await history.load_reference("basis") == reference
    assert [doc["sequence"] for doc in await history.snapshots()] == [1]
    assert await history.events() == []
    assert await history.prune(NOW, timedelta(days=7)) == 0
    await history.aclose()


def test_kill_9_loses_at_most_the_cycle_in_flight(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    root = Path(__file__).parents[1]
    for round_ in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-m", "tests.history_writer", str(path)],
            stdout=subprocess.PIPE,
            cwd=root,
        )
        assert writer.stdout is not None
        committed = 0
        while committed < 20 + 7 * round_:  # stop at a different point each round
            committed = int(writer.stdout.readline().split()[1])
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()

        db = HistoryDB(path)
        assert db._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        last = db.last_sequence("basis")
        assert last >= committed  # every cycle reported as committed is there
        reference = db.load_reference("basis")
        assert reference.sequence == last  # the reference moved with the last snapshot...
        last_event = db.events()[-1]
        assert last_event["kind"] == EventKind.THRESHOLD
        assert Decimal(last_event["equity"]) == reference.equity  # ...and with its event
        assert last_event["snapshot"]["sequence"] == last
        db.close()


def test_retention_never_removes_a_books_latest_snapshot(db: HistoryDB) -> None:
    ref = Reference("basis")
    for sequence in range(1, 4):  # three snapshots in one hour, long ago
        ref = record(db, ref, "1000", sequence)
    db.prune(NOW + timedelta(days=30), keep_all_for=timedelta(days=7))
    assert [doc["sequence"] for doc in db.snapshots()] == [1, 3]
    assert db.last_sequence("basis") == 3
