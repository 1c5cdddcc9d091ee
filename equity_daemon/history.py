"""History: snapshots, events, monitor references and the webhook outbox, in SQLite (WAL).

One cycle is one transaction (`record_cycle`): the snapshot, the book's monitor reference, the
events and one outbox row per event and webhook target. A crash (kill -9 included) therefore
loses at most the cycle being written — never an event without its reference move, nor a
reference move without its event, nor an event that no one will deliver.

The outbox delivers each target's events in the order they were committed (`events.seq`), never
by their wall-clock dates: a clock stepped back must not let a later event jump the queue.

A file keeps its schema version in `user_version`; opening an older file migrates it in one
transaction (version 1 → 2: the events' commit sequence, dead letters; 3 → 4: an unknown equity
is recorded as NULL), a newer one is refused.

`synchronous=FULL` makes every commit durable, not only against a killed process but against a
power cut; at one cycle a minute the cost is nothing.

Every write, and every read the webhook delivery loop makes, raises `HistoryUnavailable` when
SQLite says "not now" (locked past the busy timeout, disk full, read-only, I/O error): the caller
keeps what it had and tries again later. Other errors (a duplicate snapshot) are bugs and stay.

`HistoryDB` is the blocking implementation. `History` is its face for the event loop: each call
runs on a worker thread, one at a time, so SQLite never blocks the loop.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import zlib
from collections.abc import Callable, Collection, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial, wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import anyio

from equity_daemon.errors import HistoryUnavailable, StartupError
from equity_daemon.model import EquityPoint, Snapshot, decimal_str_or_none
from equity_daemon.monitor import Event, Reference

SCHEMA_VERSION = 4
# `seq` is the order events were committed in (writers take turns: BEGIN IMMEDIATE), and the
# order the outbox delivers them in; `epoch` is only the wall clock, which can step back.
# AUTOINCREMENT: a number is never handed out twice, even if the newest event were deleted.
EVENTS_TABLE = """
CREATE TABLE {name} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    book TEXT NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    epoch REAL NOT NULL,
    doc BLOB NOT NULL
)"""
EVENTS_INDEX = "CREATE INDEX events_by_time ON events (epoch)"
# What a venue learnt slowly and should not learn again after a restart: token decimals, Aave
# reserves, a log-scanning cursor. Values are the venue's own JSON text.
VENUE_MEMORY_TABLE = """
CREATE TABLE venue_memory (
    venue TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (venue, key)
)"""
# `equity` is NULL when the snapshot's equity is unknown (`Snapshot.equity` None): never a zero
SNAPSHOTS_TABLE = """
CREATE TABLE {name} (
    book TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    at TEXT NOT NULL,
    epoch REAL NOT NULL,
    equity TEXT,
    complete INTEGER NOT NULL,
    doc BLOB NOT NULL,
    PRIMARY KEY (book, sequence)
)"""
SNAPSHOTS_INDEX = "CREATE INDEX snapshots_by_time ON snapshots (epoch)"
SCHEMA = (
    SNAPSHOTS_TABLE.format(name="snapshots"),
    SNAPSHOTS_INDEX,
    EVENTS_TABLE.format(name="events"),
    EVENTS_INDEX,
    """
CREATE TABLE monitor_references (
    book TEXT PRIMARY KEY,
    equity TEXT,
    sequence INTEGER,
    at TEXT,
    complete INTEGER
)""",
    """
CREATE TABLE outbox (
    event_id TEXT NOT NULL REFERENCES events (id),
    target TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    delivered REAL,
    last_error TEXT,
    refusals INTEGER NOT NULL DEFAULT 0,
    dead REAL,
    PRIMARY KEY (event_id, target)
)""",
    "CREATE INDEX outbox_pending ON outbox (target, delivered, next_attempt)",
    VENUE_MEMORY_TABLE,
)
# from each version to the next; foreign keys are off while they run (events is rebuilt)
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        # version 1 ordered the outbox by event time; rowid is the order events were written in
        EVENTS_TABLE.format(name="events_v2"),
        "INSERT INTO events_v2 (id, book, kind, at, epoch, doc)"
        " SELECT id, book, kind, at, epoch, doc FROM events ORDER BY rowid",
        "DROP TABLE events",
        "ALTER TABLE events_v2 RENAME TO events",
        EVENTS_INDEX,
        "ALTER TABLE outbox ADD COLUMN refusals INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE outbox ADD COLUMN dead REAL",
    ),
    2: (VENUE_MEMORY_TABLE,),
    # version 3 required an equity: an unknown one must be recorded as NULL, not as a number
    3: (
        SNAPSHOTS_TABLE.format(name="snapshots_v4"),
        "INSERT INTO snapshots_v4 (book, sequence, at, epoch, equity, complete, doc)"
        " SELECT book, sequence, at, epoch, equity, complete, doc FROM snapshots",
        "DROP TABLE snapshots",
        "ALTER TABLE snapshots_v4 RENAME TO snapshots",
        SNAPSHOTS_INDEX,
    ),
}
# a new outbox row, and a dead letter sent again, are due at once, whatever the clock says
DUE_AT_ONCE = 0.0
# one target's pending rows, in the order their events were committed
_PENDING_IN_ORDER = (
    " FROM outbox o JOIN events e ON e.id = o.event_id"
    " WHERE o.target = ? AND o.delivered IS NULL AND o.dead IS NULL ORDER BY e.seq"
)
BUSY_TIMEOUT_MS = 5000


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """An event waiting for one webhook target; `body` is the exact JSON to send.

    `attempts` counts every failed try; `refusals` the permanent refusals in a row (reset by any
    other failure), which decide when the event is dead-lettered.
    """

    event_id: str
    body: bytes
    attempts: int
    refusals: int = 0


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """An undelivered outbox row: one event for one webhook target, pending or dead."""

    target: str
    event_id: str
    dead: bool
    attempts: int
    last_error: str | None

    def state(self, configured: Collection[str]) -> str:
        """`dead`, `pending`, or `orphaned`: pending for a target no longer configured."""
        if self.dead:
            return "dead"
        return "pending" if self.target in configured else "orphaned"


def _upgrade(version: int) -> tuple[str, ...]:
    """The statements that bring a file of schema `version` to `SCHEMA_VERSION`."""
    if version == 0:  # a new file
        return SCHEMA
    return tuple(
        statement for step in range(version, SCHEMA_VERSION) for statement in MIGRATIONS[step]
    )


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("history times must be timezone-aware (UTC)")
    return value.astimezone(UTC)


def _point(at: str, equity: str | None, complete: int) -> EquityPoint:
    return EquityPoint(
        datetime.fromisoformat(at), None if equity is None else Decimal(equity), bool(complete)
    )


def _pack(document: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(document, separators=(",", ":")).encode())


def _unpack(blob: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(zlib.decompress(blob))
    return document


P = ParamSpec("P")
T = TypeVar("T")
# SQLite's "not now": locked past the busy timeout, disk full, read-only, I/O error. Exactly these
# classes: their subclasses (IntegrityError, ProgrammingError, ...) are bugs and stay as they are.
NOT_NOW = (sqlite3.OperationalError, sqlite3.DatabaseError)


def _may_be_unavailable(method: Callable[P, T]) -> Callable[P, T]:
    """Marks a method whose callers handle SQLite's "not now": it raises `HistoryUnavailable`."""

    @wraps(method)
    def translated(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if type(exc) not in NOT_NOW:
                raise
            # SQLite's own words ("database is locked"): short, and they name no path
            raise HistoryUnavailable(str(exc)) from exc

    return translated


def _hold_lock(path: Path) -> int:
    """Lock `<path>.lock` for this process and write its pid there; returns the descriptor.

    A non-blocking `flock`: the kernel lets go when the descriptor is closed or the process dies,
    kill -9 included, so a stale lock file never keeps a daemon from starting.

    Raises:
        StartupError: another process (or another open in this one) holds it.
    """
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StartupError(f"{path} is in use by another equity-daemon (pid {holder})") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class HistoryDB:
    """The blocking implementation; one connection, used by one thread at a time.

    Raises:
        StartupError: the file holds a schema newer than this code knows, or (`exclusive`)
            another daemon holds it.
        sqlite3.Error: the file is not a usable database.
        OSError: its folder cannot be created.
    """

    def __init__(
        self, path: Path, *, exclusive: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> None:
        """Open (or create) the database at `path`, creating its folder.

        Args:
            exclusive: hold `<path>.lock` until `close()`, for the one daemon that writes here.
            busy_timeout_ms: how long a write waits for another connection's before giving up.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        with ExitStack() as opened:
            if exclusive:
                # before the database is touched: a second daemon must not even migrate it
                opened.callback(os.close, _hold_lock(path))
            # calls arrive from worker threads, one at a time (History's limiter); autocommit
            # mode (isolation_level=None) so that our own BEGIN/COMMIT are the only transactions,
            # and a read sees what other connections (the CLI, another reader) have committed
            self._db = sqlite3.connect(
                path, timeout=busy_timeout_ms / 1000, check_same_thread=False, isolation_level=None
            )
            opened.callback(self._db.close)
            self._migrate(path)
            self._opened = opened.pop_all()

    def _migrate(self, path: Path) -> None:
        """Bring the file to `SCHEMA_VERSION`, in one transaction, unless it is there already."""
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        if self._version(path) < SCHEMA_VERSION:
            # foreign_keys cannot change inside a transaction; off, a migration can rebuild events
            db.execute("PRAGMA foreign_keys=OFF")
            db.execute("BEGIN IMMEDIATE")
            try:
                # read again under the write lock: another process may have migrated meanwhile
                version = self._version(path)
                for statement in _upgrade(version):
                    db.execute(statement)
                if db.execute("PRAGMA foreign_key_check").fetchall():
                    raise sqlite3.DatabaseError("the outbox names events that do not exist")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        db.execute("PRAGMA foreign_keys=ON")

    def _version(self, path: Path) -> int:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StartupError(f"{path} was written by a newer equity-daemon (schema {version})")
        return int(version)

    def close(self) -> None:
        """Close the database, then let go of the lock (if held)."""
        self._opened.close()

    @_may_be_unavailable
    def record_cycle(
        self,
        snapshot: Snapshot | None,
        reference: Reference,
        events: Sequence[Event],
        targets: Sequence[str] = (),
    ) -> None:
        """Write one cycle atomically: snapshot, reference, events and their outbox rows.

        Without a snapshot (recorded less often than events), the rest is written all the same.
        An event already stored (same id) is kept as it is, and so are its outbox rows.

        Raises:
            ValueError: a naive time, or a reference or event of another book.
            sqlite3.IntegrityError: the book already has a snapshot with this sequence.
            HistoryUnavailable: the database refuses the write now; nothing was written.
        """
        book = reference.book if snapshot is None else snapshot.book
        strays = {reference.book, *(event.book for event in events)} - {book}
        if strays:
            raise ValueError(f"a cycle of {book!r} cannot write for {sorted(strays)}")
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if snapshot is not None:
                self._insert_snapshot(snapshot)
            db.execute(
                "INSERT OR REPLACE INTO monitor_references (book, equity, sequence, at, complete)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    reference.book,
                    # str, not decimal_str: the reference must come back exactly as it was
                    None if reference.equity is None else str(reference.equity),
                    reference.sequence,
                    None if reference.at is None else _utc(reference.at).isoformat(),
                    None if reference.complete is None else int(reference.complete),
                ),
            )
            for event in events:
                event_at = _utc(event.at)
                db.execute(
                    "INSERT OR IGNORE INTO events (id, book, kind, at, epoch, doc)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        event.id,
                        event.book,
                        event.kind.value,
                        event_at.isoformat(),
                        event_at.timestamp(),
                        _pack(event.to_json()),
                    ),
                )
                db.executemany(
                    "INSERT OR IGNORE INTO outbox (event_id, target, next_attempt)"
                    " VALUES (?, ?, ?)",
                    [(event.id, target, DUE_AT_ONCE) for target in targets],
                )
            db.execute("COMMIT")
        except BaseException:
            # SQLite rolls back by itself on some errors (disk full, I/O); a second ROLLBACK
            # would then raise and hide the real error
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _insert_snapshot(self, snapshot: Snapshot) -> None:
        at = _utc(snapshot.at)
        self._db.execute(
            "INSERT INTO snapshots (book, sequence, at, epoch, equity, complete, doc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                snapshot.book,
                snapshot.sequence,
                at.isoformat(),
                at.timestamp(),
                decimal_str_or_none(snapshot.equity),
                int(snapshot.complete),
                _pack(snapshot.to_json()),
            ),
        )

    def load_reference(self, book: str) -> Reference:
        """The book's stored monitor reference, or a fresh one when none was stored."""
        row = self._db.execute(
            "SELECT equity, sequence, at, complete FROM monitor_references WHERE book = ?",
            (book,),
        ).fetchone()
        if row is None:
            return Reference(book)
        equity, sequence, at, complete = row
        return Reference(
            book=book,
            equity=None if equity is None else Decimal(equity),
            sequence=sequence,
            at=None if at is None else datetime.fromisoformat(at),
            complete=None if complete is None else bool(complete),
        )

    def last_sequence(self, book: str) -> int:
        """The book's highest stored sequence (0 before any), where a restart continues."""
        (last,) = self._db.execute(
            "SELECT COALESCE(MAX(sequence), 0) FROM snapshots WHERE book = ?", (book,)
        ).fetchone()
        return int(last)

    def snapshots(
        self, book: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """`Snapshot.to_json()` documents, oldest first; `since` and `until` are inclusive."""
        query, params = self._range("SELECT doc FROM snapshots", book, since, until)
        rows = self._db.execute(query + " ORDER BY epoch, rowid", params).fetchall()
        return [_unpack(doc) for (doc,) in rows]

    def equity_points(
        self, book: str, since: datetime, points: int | None = None
    ) -> list[EquityPoint]:
        """The book's recorded equity at or after `since`, oldest first, without reading the
        snapshot documents (a chart of a day is some thousand rows).

        With `points`, at most that many (a chart of a week stays a few hundred points): the
        span the rows cover is cut in `points` equal slices, and each gives the row that
        says the most of it: an unknown equity if it holds one (a gap is never thinned away),
        else an incomplete one, else its latest.
        """
        where, params = self._range(" FROM snapshots", book, since, None)
        first, last = self._db.execute("SELECT MIN(epoch), MAX(epoch)" + where, params).fetchone()
        if points is None or first is None or last == first:
            query = "SELECT at, equity, complete" + where + " ORDER BY epoch, rowid"
        else:
            # the last row's slice is the last one: it would start a slice of its own
            params = [first, (last - first) / points, points - 1, *params]
            query = (
                "SELECT at, equity, complete FROM ("
                " SELECT at, equity, complete, epoch, rowid AS row, ROW_NUMBER() OVER ("
                "  PARTITION BY MIN(CAST((epoch - ?) / ? AS INTEGER), ?)"
                "  ORDER BY equity IS NULL DESC, complete, epoch DESC, rowid DESC"
                f" ) AS nth{where}"
                ") WHERE nth = 1 ORDER BY epoch, row"
            )
        rows = self._db.execute(query, params).fetchall()
        return [_point(*row) for row in rows]

    def equity_baseline(self, book: str, at: datetime) -> EquityPoint | None:
        """The book's last complete, known equity recorded at or before `at` (what a change
        "over 24 h" starts from), or its first after `at` when its history starts later; None
        without any."""
        known = "SELECT at, equity, complete FROM snapshots WHERE book = ? AND complete = 1"
        known += " AND equity IS NOT NULL AND epoch"
        epoch = _utc(at).timestamp()
        row = (
            self._db.execute(
                known + " <= ? ORDER BY epoch DESC, rowid DESC LIMIT 1", (book, epoch)
            ).fetchone()
            or self._db.execute(
                known + " > ? ORDER BY epoch, rowid LIMIT 1", (book, epoch)
            ).fetchone()
        )
        return None if row is None else _point(*row)

    @_may_be_unavailable
    def recall(self, venue: str) -> dict[str, str]:
        """What `venue` remembered (`remember`), by key; empty for a venue never seen."""
        rows = self._db.execute(
            "SELECT key, value FROM venue_memory WHERE venue = ?", (venue,)
        ).fetchall()
        return dict(rows)

    @_may_be_unavailable
    def remember(self, venue: str, key: str, value: str, at: datetime) -> None:
        """Keep `value` under (`venue`, `key`) across restarts, replacing what was there."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO venue_memory (venue, key, value, updated)"
                " VALUES (?, ?, ?, ?)",
                (venue, key, value, _utc(at).timestamp()),
            )

    def events(
        self,
        since: datetime | None = None,
        book: str | None = None,
        limit: int | None = None,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        """`Event.to_json()` documents at or after `since` (of `book`, of `kind`: all when
        None), oldest first; at most `limit` of them: the first ones from `since`, or without
        `since` the latest ones."""
        query, params = self._range("SELECT doc FROM events", book, since, None, kind)
        if limit is None:
            rows = self._db.execute(query + " ORDER BY epoch, rowid", params).fetchall()
        elif since is None:
            query += " ORDER BY epoch DESC, rowid DESC LIMIT ?"
            rows = self._db.execute(query, [*params, limit]).fetchall()[::-1]
        else:
            rows = self._db.execute(
                query + " ORDER BY epoch, rowid LIMIT ?", [*params, limit]
            ).fetchall()
        return [_unpack(doc) for (doc,) in rows]

    @staticmethod
    def _range(
        select: str,
        book: str | None,
        since: datetime | None,
        until: datetime | None,
        kind: str | None = None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if book is not None:
            clauses.append("book = ?")
            params.append(book)
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        if since is not None:
            clauses.append("epoch >= ?")
            params.append(_utc(since).timestamp())
        if until is not None:
            clauses.append("epoch <= ?")
            params.append(_utc(until).timestamp())
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return select + where, params

    @_may_be_unavailable
    def prune(self, now: datetime, keep_all_for: timedelta) -> int:
        """Thin snapshots older than `keep_all_for` to the first of each book's UTC hour.

        "First" is by time, not by insertion order. A book's latest snapshot always stays, so its
        sequence numbers continue after a restart even when the daemon was down longer than
        `keep_all_for`. Events and references are never pruned.

        Returns:
            How many snapshots were deleted.
        """
        cutoff = (_utc(now) - keep_all_for).timestamp()
        # one statement, so it is atomic without an explicit transaction
        cursor = self._db.execute(
            "DELETE FROM snapshots WHERE rowid IN ("
            " SELECT rowid FROM ("
            "  SELECT rowid, book, sequence, ROW_NUMBER() OVER ("
            "   PARTITION BY book, CAST(epoch / 3600 AS INTEGER) ORDER BY epoch, sequence"
            "  ) AS nth FROM snapshots WHERE epoch < ?"
            " ) AS old WHERE nth > 1"
            " AND sequence < (SELECT MAX(sequence) FROM snapshots AS s WHERE s.book = old.book))",
            (cutoff,),
        )
        return cursor.rowcount

    # --- the outbox ---------------------------------------------------------------------

    @_may_be_unavailable
    def due_deliveries(self, target: str, now: datetime, limit: int) -> list[PendingDelivery]:
        """The first undelivered events for `target` in commit order, if the first of them is due.

        Order is kept: when the first pending event waits for its retry, the later ones wait too.
        """
        rows = self._db.execute(
            "SELECT o.next_attempt, o.event_id, e.doc, o.attempts, o.refusals"
            + _PENDING_IN_ORDER
            + " LIMIT ?",
            (target, limit),
        ).fetchall()
        if not rows or rows[0][0] > _utc(now).timestamp():
            return []
        return [
            PendingDelivery(event_id, zlib.decompress(doc), attempts, refusals)
            for _, event_id, doc, attempts, refusals in rows
        ]

    @_may_be_unavailable
    def next_delivery_at(self, target: str) -> datetime | None:
        """When the first pending event for `target` may be tried again (the rest wait for it)."""
        row = self._db.execute(
            "SELECT o.next_attempt" + _PENDING_IN_ORDER + " LIMIT 1", (target,)
        ).fetchone()
        return None if row is None else datetime.fromtimestamp(row[0], UTC)

    @_may_be_unavailable
    def outbox_backlog(self, target: str) -> int:
        """How many events wait for `target`; dead letters do not count, they wait for no one."""
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM outbox WHERE target = ? AND delivered IS NULL AND dead IS NULL",
            (target,),
        ).fetchone()
        return int(count)

    @_may_be_unavailable
    def mark_delivered(self, event_id: str, target: str, at: datetime) -> None:
        with self._db:
            self._db.execute(
                "UPDATE outbox SET delivered = ?, last_error = NULL"
                " WHERE event_id = ? AND target = ?",
                (_utc(at).timestamp(), event_id, target),
            )

    @_may_be_unavailable
    def mark_attempt_failed(
        self,
        event_id: str,
        target: str,
        attempts: int,
        retry_at: datetime,
        error: str,
        refusals: int = 0,
    ) -> None:
        """Count a failed try; the row stays pending until `retry_at`."""
        with self._db:
            self._db.execute(
                "UPDATE outbox SET attempts = ?, refusals = ?, next_attempt = ?, last_error = ?"
                " WHERE event_id = ? AND target = ?",
                (attempts, refusals, _utc(retry_at).timestamp(), error, event_id, target),
            )

    @_may_be_unavailable
    def mark_dead(
        self, event_id: str, target: str, attempts: int, at: datetime, error: str
    ) -> None:
        """Dead-letter the row: kept with its last error, no longer tried, no longer in the way."""
        with self._db:
            self._db.execute(
                "UPDATE outbox SET attempts = ?, dead = ?, last_error = ?"
                " WHERE event_id = ? AND target = ?",
                (attempts, _utc(at).timestamp(), error, event_id, target),
            )

    @_may_be_unavailable
    def undelivered(self) -> list[OutboxRow]:
        """Every row not delivered yet, pending or dead, by target and then in commit order."""
        rows = self._db.execute(
            "SELECT o.target, o.event_id, o.dead IS NOT NULL, o.attempts, o.last_error"
            " FROM outbox o JOIN events e ON e.id = o.event_id"
            " WHERE o.delivered IS NULL ORDER BY o.target, e.seq"
        ).fetchall()
        return [
            OutboxRow(target, event_id, bool(dead), attempts, error)
            for target, event_id, dead, attempts, error in rows
        ]

    @_may_be_unavailable
    def retry_dead(self, targets: Sequence[str], event_id: str | None = None) -> int:
        """Make the dead letters of `targets` (only `event_id`'s, if given) pending again.

        They are due at once, with their tries counted from zero; a running daemon's delivery loop
        finds them the next time it looks. Returns how many rows came back.
        """
        with self._db:
            cursor = self._db.execute(
                "UPDATE outbox SET dead = NULL, attempts = 0, refusals = 0, next_attempt = :due"
                " WHERE dead IS NOT NULL AND delivered IS NULL"
                " AND target IN (SELECT value FROM json_each(:targets))"
                " AND (:event IS NULL OR event_id = :event)",
                {"due": DUE_AT_ONCE, "targets": json.dumps(list(targets)), "event": event_id},
            )
        return cursor.rowcount

    @_may_be_unavailable
    def drop_undelivered(
        self, target: str, event_id: str | None = None, dead_only: bool = False
    ) -> int:
        """Delete `target`'s undelivered rows (only `event_id`'s, only dead ones, if asked).

        The events themselves stay in history. Returns how many rows were deleted.
        """
        with self._db:
            cursor = self._db.execute(
                "DELETE FROM outbox WHERE target = :target AND delivered IS NULL"
                " AND (:event IS NULL OR event_id = :event)"
                " AND (NOT :dead_only OR dead IS NOT NULL)",
                {"target": target, "event": event_id, "dead_only": dead_only},
            )
        return cursor.rowcount


class History:
    """`HistoryDB` for the event loop: every call on a worker thread, one at a time."""

    def __init__(self, db: HistoryDB) -> None:
        self._db = db
        self._limiter = anyio.CapacityLimiter(1)

    @classmethod
    async def open(
        cls, path: Path, *, exclusive: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> History:
        """Open (or create) the database at `path`, creating its folder.

        Only a daemon opens it `exclusive`ly (see `HistoryDB`); readers and the CLI need not.

        Raises:
            StartupError: the file or its folder cannot be used, holds a newer schema, or
                another daemon holds it.
        """
        opening = partial(HistoryDB, path, exclusive=exclusive, busy_timeout_ms=busy_timeout_ms)
        try:
            return cls(await anyio.to_thread.run_sync(opening))
        except (OSError, sqlite3.Error) as exc:
            raise StartupError(f"cannot open history {path}: {exc}") from None

    async def _run(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await anyio.to_thread.run_sync(partial(call, *args, **kwargs), limiter=self._limiter)

    async def record_cycle(
        self,
        snapshot: Snapshot | None,
        reference: Reference,
        events: Sequence[Event],
        targets: Sequence[str] = (),
    ) -> None:
        await self._run(self._db.record_cycle, snapshot, reference, events, targets)

    async def load_reference(self, book: str) -> Reference:
        return await self._run(self._db.load_reference, book)

    async def last_sequence(self, book: str) -> int:
        return await self._run(self._db.last_sequence, book)

    async def snapshots(
        self, book: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        return await self._run(self._db.snapshots, book, since, until)

    async def equity_points(
        self, book: str, since: datetime, points: int | None = None
    ) -> list[EquityPoint]:
        return await self._run(self._db.equity_points, book, since, points)

    async def equity_baseline(self, book: str, at: datetime) -> EquityPoint | None:
        return await self._run(self._db.equity_baseline, book, at)

    async def recall(self, venue: str) -> dict[str, str]:
        return await self._run(self._db.recall, venue)

    async def remember(self, venue: str, key: str, value: str, at: datetime) -> None:
        await self._run(self._db.remember, venue, key, value, at)

    async def events(
        self,
        since: datetime | None = None,
        book: str | None = None,
        limit: int | None = None,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        return await self._run(self._db.events, since, book, limit, kind)

    async def prune(self, now: datetime, keep_all_for: timedelta) -> int:
        return await self._run(self._db.prune, now, keep_all_for)

    async def due_deliveries(self, target: str, now: datetime, limit: int) -> list[PendingDelivery]:
        return await self._run(self._db.due_deliveries, target, now, limit)

    async def next_delivery_at(self, target: str) -> datetime | None:
        return await self._run(self._db.next_delivery_at, target)

    async def outbox_backlog(self, target: str) -> int:
        return await self._run(self._db.outbox_backlog, target)

    async def mark_delivered(self, event_id: str, target: str, at: datetime) -> None:
        await self._run(self._db.mark_delivered, event_id, target, at)

    async def mark_attempt_failed(
        self,
        event_id: str,
        target: str,
        attempts: int,
        retry_at: datetime,
        error: str,
        refusals: int = 0,
    ) -> None:
        await self._run(
            self._db.mark_attempt_failed, event_id, target, attempts, retry_at, error, refusals
        )

    async def mark_dead(
        self, event_id: str, target: str, attempts: int, at: datetime, error: str
    ) -> None:
        await self._run(self._db.mark_dead, event_id, target, attempts, at, error)

    async def undelivered(self) -> list[OutboxRow]:
        return await self._run(self._db.undelivered)

    async def retry_dead(self, targets: Sequence[str], event_id: str | None = None) -> int:
        return await self._run(self._db.retry_dead, targets, event_id)

    async def drop_undelivered(
        self, target: str, event_id: str | None = None, dead_only: bool = False
    ) -> int:
        return await self._run(self._db.drop_undelivered, target, event_id, dead_only)

    async def aclose(self) -> None:
        await self._run(self._db.close)
