"""History: what a restart finds, what retention keeps, what a kill -9 can cost."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from itertools import count
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from equity_daemon.errors import HistoryUnavailable, StartupError
from equity_daemon.history import SCHEMA_VERSION, History, HistoryDB
from equity_daemon.model import Snapshot, VenueReport, VenueState
from equity_daemon.monitor import Event, EventKind, Reference, ThresholdRule, observe
from tests.events import threshold_cycles
from tests.reports import NOW, make_snapshot, snapshot

RULE = ThresholdRule()
ROOT = Path(__file__).parents[1]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[HistoryDB]:
    opened = HistoryDB(tmp_path / "h.sqlite3")
    yield opened
    opened.close()


def record(
    db: HistoryDB, reference: Reference, equity: str, sequence: int, at: datetime | None = None
) -> Reference:
    """Observe and store one cycle of `reference.book`; the next reference."""
    snap = make_snapshot(reference.book, sequence, equity, at)
    reference, events = observe(reference, snap, RULE)
    db.record_cycle(snap, reference, events, targets=["pager"])
    return reference


def pragma(path: Path, name: str) -> object:
    """A PRAGMA read through a connection of its own, as any other SQLite client sees the file."""
    raw = sqlite3.connect(path)
    try:
        (value,) = raw.execute(f"PRAGMA {name}").fetchone()
    finally:
        raw.close()
    return value


def sequences(docs: Sequence[dict[str, object]]) -> list[object]:
    return [doc["sequence"] for doc in docs]


def test_a_restart_finds_the_reference_the_sequence_and_the_events(tmp_path: Path) -> None:
    path = tmp_path / "state" / "history.sqlite3"  # the folder does not exist yet
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
    reopened.close()


def test_the_file_is_in_wal_mode_with_a_schema_version(db: HistoryDB, tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    assert pragma(path, "journal_mode") == "wal"  # stored in the file, not only the connection
    assert pragma(path, "user_version") == SCHEMA_VERSION


@pytest.mark.parametrize(
    "reference",
    [
        Reference("basis"),
        Reference("basis", complete=False),
        Reference("basis", Decimal("1000.50"), 7, NOW, True),
        Reference("basis", Decimal("-1.2E+3"), 8, NOW, False),
        Reference("basis", Decimal("0E-18"), 9, NOW, True),
        Reference("basis", Decimal(5), 10, NOW.astimezone(timezone(timedelta(hours=2))), True),
    ],
    ids=repr,
)
def test_a_reference_round_trips_exactly(db: HistoryDB, reference: Reference) -> None:
    db.record_cycle(make_snapshot(), reference, [])
    restored = db.load_reference("basis")
    assert restored == reference
    assert str(restored.equity) == str(reference.equity)  # not only equal: the same digits
    assert restored.at is None or restored.at.tzinfo == UTC


def test_any_decimal_reference_comes_back_with_the_same_digits(db: HistoryDB) -> None:
    sequence = count(1)

    @settings(deadline=None, max_examples=50)  # every example is an fsync'ed commit
    @given(st.decimals(allow_nan=False, allow_infinity=False))
    def check(equity: Decimal) -> None:
        snap = make_snapshot(sequence=next(sequence))
        db.record_cycle(snap, Reference("basis", equity, snap.sequence, snap.at, True), [])
        assert str(db.load_reference("basis").equity) == str(equity)

    check()


def test_an_incomplete_state_and_an_empty_reference_round_trip(db: HistoryDB) -> None:
    snap = make_snapshot(equity="5", complete=False)
    reference, events = observe(Reference("basis"), snap, RULE)
    db.record_cycle(snap, reference, events)
    assert db.load_reference("basis") == Reference("basis", complete=False)
    assert [e["kind"] for e in db.events(book="basis")] == ["incomplete"]
    (stored,) = db.snapshots()
    assert stored == snap.to_json()


def test_events_come_back_with_their_ids_and_an_id_is_stored_once(db: HistoryDB) -> None:
    ref = record(db, Reference("basis"), "100", 1)
    snap = make_snapshot(sequence=2, equity="200")
    moved, events = observe(ref, snap, RULE, new_id=lambda: "e-1")
    db.record_cycle(snap, moved, events, ["pager"])
    db.record_cycle(replace(snap, sequence=3), moved, events, ["pager"])  # a retried cycle
    (event,) = db.events()
    assert event == events[0].to_json()
    assert event["id"] == "e-1"
    assert db.outbox_backlog("pager") == 1


def test_events_since_a_time_and_by_book(db: HistoryDB) -> None:
    basis = record(db, Reference("basis"), "100", 1)
    carry = record(db, Reference("carry"), "100", 2)
    record(db, basis, "200", 3)
    record(db, carry, "300", 4)
    assert [(e["book"], e["equity"]) for e in db.events()] == [("basis", "200"), ("carry", "300")]
    assert [e["book"] for e in db.events(since=NOW + timedelta(minutes=4))] == ["carry"]
    assert [e["book"] for e in db.events(book="basis")] == ["basis"]


def test_a_limit_keeps_the_latest_events_or_the_first_ones_since_a_time(db: HistoryDB) -> None:
    ref = Reference("basis")
    for minute, equity in enumerate(("100", "200", "300", "400", "500"), start=1):
        ref = record(db, ref, equity, minute)
    assert [e["equity"] for e in db.events()] == ["200", "300", "400", "500"]  # 100 set it
    assert [e["equity"] for e in db.events(limit=2)] == ["400", "500"]  # latest, oldest first
    since = NOW + timedelta(minutes=3)
    assert [e["equity"] for e in db.events(since=since, limit=1)] == ["300"]  # first from then
    assert [e["equity"] for e in db.events(book="carry", limit=2)] == []


def test_a_failed_write_leaves_nothing_behind(db: HistoryDB) -> None:
    ref = record(db, Reference("basis"), "1000", 1)
    snap = make_snapshot(sequence=1, equity="2000")  # the same sequence again: the insert fails
    moved, events = observe(ref, snap, RULE)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        db.record_cycle(snap, moved, events, ["pager"])
    assert db.load_reference("basis") == ref
    assert db.events() == []


def test_naive_times_are_refused_and_nothing_is_written(db: HistoryDB) -> None:
    naive = NOW.replace(tzinfo=None)
    with pytest.raises(ValueError, match="timezone-aware"):
        db.record_cycle(make_snapshot(at=naive), Reference("basis"), [])
    # the reference is written after the snapshot: its failure must take the snapshot back
    with pytest.raises(ValueError, match="timezone-aware"):
        db.record_cycle(make_snapshot(), Reference("basis", Decimal(1), 1, naive, True), [])
    assert db.last_sequence("basis") == 0
    assert db.load_reference("basis") == Reference("basis")
    for call in (
        lambda: db.snapshots(since=naive),
        lambda: db.snapshots(until=naive),
        lambda: db.events(since=naive),
        lambda: db.prune(naive, timedelta(days=1)),
    ):
        with pytest.raises(ValueError, match="timezone-aware"):
            call()


def test_a_cycle_writes_only_its_own_books_reference(db: HistoryDB) -> None:
    with pytest.raises(ValueError, match="cannot write for \\['carry'\\]"):
        db.record_cycle(make_snapshot("basis"), Reference("carry"), [])
    assert db.load_reference("carry") == Reference("carry")


def test_snapshots_by_book_and_time_range(db: HistoryDB) -> None:
    refs = {"basis": Reference("basis"), "carry": Reference("carry")}
    for sequence in range(1, 6):
        for book in refs:
            refs[book] = record(db, refs[book], "1000", sequence)
    since, until = NOW + timedelta(minutes=2), NOW + timedelta(minutes=4)
    assert sequences(db.snapshots("basis", since, until)) == [2, 3, 4]  # both ends included
    assert [(d["book"], d["sequence"]) for d in db.snapshots(None, until=since)] == [
        ("basis", 1),
        ("carry", 1),
        ("basis", 2),
        ("carry", 2),
    ]
    assert db.snapshots("other") == []


def test_retention_keeps_recent_snapshots_and_one_per_hour_before(db: HistoryDB) -> None:
    ref = Reference("basis")
    for sequence in range(1, 181):  # three hours, one snapshot a minute, an event every one
        ref = record(db, ref, str(1000 + 10 * sequence), sequence)
    events_before = db.events()
    now = NOW + timedelta(minutes=180)
    removed = db.prune(now, keep_all_for=timedelta(minutes=60))
    # NOW is 12:00; the snapshots at 12:01..14:59 are thinned to the first of 12:xx and 13:xx
    assert sequences(db.snapshots()) == [1, 60, *range(120, 181)]
    assert removed == 180 - 63
    assert db.events() == events_before
    assert db.load_reference("basis") == ref
    assert db.prune(now, keep_all_for=timedelta(minutes=60)) == 0  # already thin


def test_retention_keeps_the_earliest_of_each_hour_for_each_book(db: HistoryDB) -> None:
    ten = NOW.replace(hour=10)
    # the clock stepped back between sequences 1 and 2: the first of the hour is sequence 2
    for book in ("basis", "carry"):
        ref = Reference(book)
        for sequence, minute in [(1, 30), (2, 10), (3, 50), (4, 70), (5, 80), (6, 300)]:
            ref = record(db, ref, "1000", sequence, ten + timedelta(minutes=minute))
    assert db.prune(ten + timedelta(hours=5), timedelta(hours=1)) == 6
    for book in ("basis", "carry"):
        assert sequences(db.snapshots(book)) == [2, 4, 6]


def test_retention_never_removes_a_books_latest_snapshot(db: HistoryDB) -> None:
    ref = Reference("basis")
    for sequence in range(1, 4):  # three snapshots in one hour, long ago
        ref = record(db, ref, "1000", sequence)
    db.prune(NOW + timedelta(days=30), keep_all_for=timedelta(days=7))
    assert sequences(db.snapshots()) == [1, 3]
    assert db.last_sequence("basis") == 3


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


def test_outbox_order_is_commit_order_not_wall_clock(db: HistoryDB) -> None:
    ref = record(db, Reference("basis"), "100", 1)
    # the clock ran an hour ahead, then was stepped back: B is committed after A, dated before it
    ref = record(db, ref, "200", 2, at=NOW + timedelta(hours=1))
    record(db, ref, "300", 3, at=NOW + timedelta(minutes=10))
    a, b = (e["id"] for e in sorted(db.events(), key=lambda e: str(e["equity"])))
    now = NOW + timedelta(minutes=20)  # before A's date: A is due anyway, as soon as committed
    assert [d.event_id for d in db.due_deliveries("pager", now, limit=5)] == [a, b]
    db.mark_attempt_failed(a, "pager", 1, now + timedelta(seconds=30), "HTTP 503")
    assert db.next_delivery_at("pager") == now + timedelta(seconds=30)  # B still waits behind A


# the schema equity-daemon 0.x wrote as version 1, verbatim
SCHEMA_V1 = """
CREATE TABLE snapshots (book TEXT NOT NULL, sequence INTEGER NOT NULL, at TEXT NOT NULL,
    epoch REAL NOT NULL, equity TEXT NOT NULL, complete INTEGER NOT NULL, doc BLOB NOT NULL,
    PRIMARY KEY (book, sequence));
CREATE INDEX snapshots_by_time ON snapshots (epoch);
CREATE TABLE events (id TEXT PRIMARY KEY, book TEXT NOT NULL, kind TEXT NOT NULL,
    at TEXT NOT NULL, epoch REAL NOT NULL, doc BLOB NOT NULL);
CREATE INDEX events_by_time ON events (epoch);
CREATE TABLE monitor_references (book TEXT PRIMARY KEY, equity TEXT, sequence INTEGER, at TEXT,
    complete INTEGER);
CREATE TABLE outbox (event_id TEXT NOT NULL REFERENCES events (id), target TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL, delivered REAL,
    last_error TEXT, PRIMARY KEY (event_id, target));
CREATE INDEX outbox_pending ON outbox (target, delivered, next_attempt);
PRAGMA user_version=1;
"""


def write_version_1_file(path: Path) -> None:
    """A v1 file: three events written in the order e-1, e-2, e-3, the clock stepping back."""
    raw = sqlite3.connect(path)
    raw.executescript(SCHEMA_V1)
    with raw:
        for name, minutes in [("e-1", 30), ("e-2", 10), ("e-3", 20)]:
            at = NOW + timedelta(minutes=minutes)
            doc = zlib.compress(json.dumps({"id": name}, separators=(",", ":")).encode())
            raw.execute(
                "INSERT INTO events VALUES (?, 'basis', 'threshold', ?, ?, ?)",
                (name, at.isoformat(), at.timestamp(), doc),
            )
        raw.executemany(
            "INSERT INTO outbox (event_id, target, attempts, next_attempt, delivered, last_error)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("e-1", "pager", 0, NOW.timestamp(), NOW.timestamp(), None),
                ("e-2", "pager", 3, NOW.timestamp(), None, "HTTP 503"),
                ("e-3", "pager", 0, NOW.timestamp(), None, None),
            ],
        )
        raw.execute("INSERT INTO monitor_references VALUES ('basis', '1000', 7, NULL, 1)")
    raw.close()


def test_a_version_1_file_is_migrated_and_keeps_its_pending_rows(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    write_version_1_file(path)
    db = HistoryDB(path)
    try:
        assert pragma(path, "user_version") == SCHEMA_VERSION == 4
        assert db.outbox_backlog("pager") == 2  # e-1 was delivered, and stays so
        due = db.due_deliveries("pager", NOW, limit=5)
        # in the order they were written, no longer by their (stepped back) dates
        assert [(d.event_id, d.attempts) for d in due] == [("e-2", 3), ("e-3", 0)]
        assert due[0].body == b'{"id":"e-2"}'
        assert [e["id"] for e in db.events()] == ["e-2", "e-3", "e-1"]  # by time, as before
        assert db.load_reference("basis").equity == Decimal(1000)
        # a new event is delivered after everything the old file held
        snap = make_snapshot(sequence=8, equity="2000", at=NOW - timedelta(days=1))
        moved, events = observe(db.load_reference("basis"), snap, RULE, new_id=lambda: "e-4")
        db.record_cycle(snap, moved, events, ["pager"])
        assert [d.event_id for d in db.due_deliveries("pager", NOW, limit=5)] == [
            "e-2",
            "e-3",
            "e-4",
        ]
    finally:
        db.close()
    HistoryDB(path).close()  # opening a migrated file again changes nothing
    assert pragma(path, "user_version") == SCHEMA_VERSION
    assert pragma(path, "integrity_check") == "ok"


def test_a_version_1_file_that_cannot_be_migrated_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    write_version_1_file(path)
    raw = sqlite3.connect(path)  # foreign keys are off here: a row naming no event gets in
    with raw:
        raw.execute("INSERT INTO outbox (event_id, target, next_attempt) VALUES ('e-9', 'x', 0)")
    raw.close()
    with pytest.raises(sqlite3.DatabaseError, match="the outbox names events that do not exist"):
        HistoryDB(path)
    assert pragma(path, "user_version") == 1  # the migration was rolled back, whole
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT id FROM events ORDER BY rowid").fetchall() == [
        ("e-1",),
        ("e-2",),
        ("e-3",),
    ]
    raw.close()


def test_record_cycle_without_a_snapshot_writes_the_reference_and_the_events(
    db: HistoryDB,
) -> None:
    ref = record(db, Reference("basis"), "100", 1)
    snap = make_snapshot(sequence=2, equity="200")
    moved, events = observe(ref, snap, RULE)
    db.record_cycle(None, moved, events, ["pager"])  # snapshots are kept at a lower rate
    assert sequences(db.snapshots()) == [1]
    assert db.last_sequence("basis") == 1
    assert db.load_reference("basis") == moved
    assert [e["id"] for e in db.events()] == [events[0].id]
    assert db.outbox_backlog("pager") == 1
    carry = observe(Reference("carry"), make_snapshot("carry", 3, "1"), RULE)[0]
    with pytest.raises(ValueError, match="a cycle of 'basis' cannot write for \\['carry'\\]"):
        db.record_cycle(None, moved, [replace(events[0], book="carry")])
    with pytest.raises(ValueError, match="a cycle of 'carry' cannot write for \\['basis'\\]"):
        db.record_cycle(None, carry, events)


def every_write(db: HistoryDB, sequence: int) -> dict[str, Callable[[], object]]:
    """One call of each write, each of which has something to change in the file."""
    ref = db.load_reference("basis")
    snap = make_snapshot(sequence=sequence, equity=str(ref.equity * 2 if ref.equity else 1))
    moved, events = observe(ref, snap, RULE)
    later = NOW + timedelta(days=30)
    return {
        "record_cycle": lambda: db.record_cycle(snap, moved, events, ["pager"]),
        "record_cycle without snapshot": lambda: db.record_cycle(None, moved, events, ["pager"]),
        "mark_delivered": lambda: db.mark_delivered("e-2", "pager", NOW),
        "mark_attempt_failed": lambda: db.mark_attempt_failed("e-2", "pager", 1, NOW, "HTTP 503"),
        "mark_dead": lambda: db.mark_dead("e-2", "pager", 5, NOW, "HTTP 400"),
        "retry_dead": lambda: db.retry_dead(["pager"]),
        "drop_undelivered": lambda: db.drop_undelivered("pager"),
        "prune": lambda: db.prune(later, timedelta(days=7)),
    }


@pytest.fixture
def busy_db(tmp_path: Path) -> Iterator[HistoryDB]:
    """A history with snapshots to prune, a dead letter and a pending row; a 50 ms busy timeout."""
    opened = HistoryDB(tmp_path / "h.sqlite3", busy_timeout_ms=50)
    for cycle in threshold_cycles(2):
        opened.record_cycle(*cycle, targets=["pager"])
    opened.mark_dead("e-1", "pager", 5, NOW, "HTTP 422")
    yield opened
    opened.close()


def test_writes_raise_history_unavailable_while_another_connection_holds_the_lock(
    busy_db: HistoryDB, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "h.sqlite3", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        for name, write in every_write(busy_db, 10).items():
            with pytest.raises(HistoryUnavailable) as refused:
                write()
            assert refused.value.reason == "database is locked", name
        assert busy_db.outbox_backlog("pager") == 1  # reads go on (WAL)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert sequences(busy_db.snapshots()) == [1, 2, 3]  # nothing was half-written
    for write in every_write(busy_db, 10).values():
        write()  # and once the lock is gone, every write goes through
    assert busy_db.last_sequence("basis") == 10


def test_a_file_made_read_only_raises_history_unavailable(
    busy_db: HistoryDB, tmp_path: Path
) -> None:
    # chmod does not stop root, and tests may run as root: the immutable attribute stops anyone
    chattr = shutil.which("chattr")
    files = [str(tmp_path / "h.sqlite3"), str(tmp_path / "h.sqlite3-wal")]
    if chattr is None or subprocess.run([chattr, "+i", *files], check=False).returncode:
        pytest.skip("cannot make a file immutable here (chattr +i needs root and ext4 or alike)")
    try:
        for name, write in every_write(busy_db, 10).items():
            with pytest.raises(HistoryUnavailable) as refused:
                write()
            assert refused.value.reason == "disk I/O error", name  # the write(2) failed
    finally:
        subprocess.run([chattr, "-i", *files], check=True)
    every_write(busy_db, 10)["record_cycle"]()  # writable again: the same connection goes on
    assert busy_db.last_sequence("basis") == 10


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    HistoryDB(path).close()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version=99")
    raw.close()
    with pytest.raises(StartupError, match="newer equity-daemon \\(schema 99\\)"):
        HistoryDB(path)


@pytest.mark.anyio
async def test_a_second_daemon_on_the_same_file_is_refused_with_the_holders_pid(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.sqlite3"
    first = await History.open(path, exclusive=True)
    # flock locks belong to an open file, so a second open in this process conflicts too
    message = f"{path} is in use by another equity-daemon \\(pid {os.getpid()}\\)$"
    with pytest.raises(StartupError, match=message):
        await History.open(path, exclusive=True)
    with pytest.raises(StartupError, match=message):
        HistoryDB(path, exclusive=True)
    reader = await History.open(path)  # `history` export and `outbox list` need no lock
    assert await reader.last_sequence("basis") == 0
    await reader.aclose()
    await first.aclose()
    second = await History.open(path, exclusive=True)  # closing let go of it
    await second.aclose()


@pytest.mark.anyio
async def test_an_unusable_file_is_a_startup_error(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"not a database, " * 100)
    with pytest.raises(StartupError, match="cannot open history"):
        await History.open(path)


@pytest.mark.anyio
async def test_the_async_face_runs_sqlite_off_the_event_loop_thread(tmp_path: Path) -> None:
    threads: set[int] = set()

    class Watched(HistoryDB):
        def record_cycle(
            self,
            snapshot: Snapshot | None,
            reference: Reference,
            events: Sequence[Event],
            targets: Sequence[str] = (),
        ) -> None:
            threads.add(threading.get_ident())
            super().record_cycle(snapshot, reference, events, targets)

        def last_sequence(self, book: str) -> int:
            threads.add(threading.get_ident())
            return super().last_sequence(book)

    history = History(Watched(tmp_path / "h.sqlite3"))
    snap = make_snapshot(equity="100")
    reference, events = observe(Reference("basis"), snap, RULE)
    await history.record_cycle(snap, reference, events)
    assert await history.last_sequence("basis") == 1
    assert threads
    assert threading.get_ident() not in threads
    assert await history.load_reference("basis") == reference
    assert sequences(await history.snapshots()) == [1]
    assert await history.events() == []
    assert await history.prune(NOW, timedelta(days=7)) == 0
    await history.aclose()

    reopened = await History.open(tmp_path / "h.sqlite3")
    assert await reopened.load_reference("basis") == reference
    await reopened.aclose()


def check_after_kill(path: Path, committed: list[int]) -> int:
    """What a kill -9 may leave: at most the cycle in flight missing, nothing half-written."""
    assert pragma(path, "integrity_check") == "ok"
    db = HistoryDB(path)
    try:
        last = db.last_sequence("basis")
        assert sequences(db.snapshots("basis")) == list(range(1, last + 1))
        assert set(committed) <= set(range(1, last + 1))  # every reported commit is there
        reference = db.load_reference("basis")
        assert reference.sequence == last  # the reference moved with the last snapshot...
        events = db.events()
        # ...and every move but the first (which only sets the reference) has its event
        assert len(events) == last - 1
        assert all(e["kind"] == EventKind.THRESHOLD for e in events)
        assert events[-1]["snapshot"]["sequence"] == last
        assert Decimal(events[-1]["equity"]) == reference.equity
        return last
    finally:
        db.close()


def test_kill_9_loses_at_most_the_cycle_in_flight(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    chance = random.Random(9)  # "random" kill moments that replay when a run fails
    committed: list[int] = []
    last = 0
    for _ in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-m", "tests.history_writer", str(path)],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        try:
            assert writer.stdout is not None
            for _ in range(chance.randint(5, 40)):
                word, sequence = writer.stdout.readline().split()
                assert word == b"committed"
                committed.append(int(sequence))
            time.sleep(chance.uniform(0, 0.005))  # land anywhere in a cycle
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            assert writer.stdout is not None
            writer.stdout.close()
        assert writer.returncode == -signal.SIGKILL
        assert committed[0] == last + 1  # the writer continued where the last one stopped
        last = check_after_kill(path, committed)
        committed = []


def test_what_a_venue_remembers_survives_a_restart(tmp_path: Path) -> None:
    """Discovery (token decimals, Aave reserves, a log cursor) is not redone after a restart."""
    path = tmp_path / "h.sqlite3"
    db = HistoryDB(path)
    db.remember("mainnet", "decimals", '{"USDT": 6}', NOW)
    db.remember("mainnet", "cursor", "100", NOW)
    db.remember("mainnet", "cursor", "250", NOW)
    db.close()
    again = HistoryDB(path)
    assert again.recall("mainnet") == {"decimals": '{"USDT": 6}', "cursor": "250"}
    assert again.recall("arbitrum") == {}
    again.close()


def unknown_snapshot(sequence: int) -> Snapshot:
    """A book whose only venue has never answered: its equity is unknown."""
    chain = VenueState(VenueReport.failed("chain", NOW, "connection refused"), None)
    return replace(snapshot(chain), sequence=sequence, at=NOW + timedelta(minutes=sequence))


def test_an_unknown_equity_is_recorded_as_null_never_as_zero(db: HistoryDB, tmp_path: Path) -> None:
    ref = record(db, Reference("basis"), "1000", 1)
    db.record_cycle(unknown_snapshot(2), ref, [])
    points = db.equity_points("basis", NOW)
    assert [(p.equity, p.complete) for p in points] == [(Decimal(1000), True), (None, False)]
    raw = sqlite3.connect(tmp_path / "h.sqlite3")  # what any SQL reader of the file sees
    try:
        (equity,) = raw.execute("SELECT equity FROM snapshots WHERE sequence = 2").fetchone()
    finally:
        raw.close()
    assert equity is None
    assert db.snapshots("basis")[-1]["equity"] is None


def test_a_file_of_an_older_schema_keeps_its_snapshots_and_records_unknown_equity(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.sqlite3"
    write_version_1_file(path)  # its snapshots table required an equity
    raw = sqlite3.connect(path)
    with raw:
        doc = zlib.compress(json.dumps({"sequence": 1}).encode())
        at = NOW + timedelta(minutes=1)
        raw.execute(
            "INSERT INTO snapshots VALUES ('basis', 1, ?, ?, '1000', 1, ?)",
            (at.isoformat(), at.timestamp(), doc),
        )
    raw.close()
    db = HistoryDB(path)
    try:
        db.record_cycle(unknown_snapshot(2), Reference("basis"), [])
        points = db.equity_points("basis", NOW)
        assert [p.equity for p in points] == [Decimal(1000), None]
        assert db.last_sequence("basis") == 2
    finally:
        db.close()
    assert pragma(path, "integrity_check") == "ok"


# --- what the status page reads -----------------------------------------------------------------


def test_equity_thinned_to_a_few_points_never_thins_away_an_unknown_or_incomplete_one(
    db: HistoryDB,
) -> None:
    ref = Reference("basis")
    for sequence in range(1, 61):  # an hour, one a minute; the 17th unknown, the 42nd incomplete
        if sequence == 17:
            db.record_cycle(unknown_snapshot(17), ref, [])
            continue
        snap = make_snapshot("basis", sequence, str(1000 + sequence), complete=sequence != 42)
        db.record_cycle(snap, ref, [])
    points = db.equity_points("basis", NOW, 6)
    # six slices of the hour the rows cover (12:01 to 13:00): the latest of each, unless the
    # slice holds an unknown or incomplete one
    assert [(p.at - NOW, p.equity, p.complete) for p in points] == [
        (timedelta(minutes=10), Decimal(1010), True),
        (timedelta(minutes=17), None, False),
        (timedelta(minutes=30), Decimal(1030), True),
        (timedelta(minutes=40), Decimal(1040), True),
        (timedelta(minutes=42), Decimal(1042), False),
        (timedelta(minutes=60), Decimal(1060), True),
    ]
    assert len(db.equity_points("basis", NOW)) == 60  # unthinned
    assert len(db.equity_points("basis", NOW + timedelta(minutes=55), 480)) == 6  # all of them
    (last,) = db.equity_points("basis", NOW + timedelta(minutes=60), 6)
    assert (last.at, last.equity) == (NOW + timedelta(minutes=60), Decimal(1060))
    assert db.equity_points("carry", NOW, 6) == []


def test_the_change_over_a_day_starts_at_the_last_complete_figure_before_it(
    db: HistoryDB,
) -> None:
    assert db.equity_baseline("basis", NOW) is None
    ref = Reference("basis")
    for sequence, equity, complete in [(1, "900", True), (2, "950", True), (3, "990", False)]:
        db.record_cycle(make_snapshot("basis", sequence, equity, complete=complete), ref, [])
    db.record_cycle(unknown_snapshot(4), ref, [])
    db.record_cycle(make_snapshot("basis", 5, "1000"), ref, [])
    # neither an incomplete figure nor an unknown one is a start to measure a move from
    baseline = db.equity_baseline("basis", NOW + timedelta(minutes=4))
    assert baseline is not None
    assert (baseline.at, baseline.equity) == (NOW + timedelta(minutes=2), Decimal(950))
    # history that starts later than asked: its first complete figure
    first = db.equity_baseline("basis", NOW - timedelta(days=1))
    assert first is not None
    assert first.equity == Decimal(900)
    assert db.equity_baseline("carry", NOW + timedelta(days=1)) is None


def test_events_of_one_kind(db: HistoryDB) -> None:
    ref = record(db, Reference("basis"), "1000", 1)
    ref = record(db, ref, "2000", 2)
    snap = make_snapshot("basis", 3, "2000", complete=False)
    moved, events = observe(ref, snap, RULE)
    db.record_cycle(snap, moved, events)
    assert [e["kind"] for e in db.events()] == ["threshold", "incomplete"]
    assert [e["kind"] for e in db.events(limit=5, kind="threshold")] == ["threshold"]
    assert db.events(book="carry", kind="threshold") == []
