"""The commands that run venues or open the history: `run`, `once`, `history`, `outbox`.

`cli.py` imports this module only when one of them runs, so `--version` and `check-config` load
none of what they need (aiohttp, ccxt, web3: a second and more).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter

import anyio

from equity_daemon import logs
from equity_daemon.cli import EXIT_FAILURE, EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE
from equity_daemon.errors import HistoryUnavailable, StartupError
from equity_daemon.history import History, OutboxRow
from equity_daemon.render import snapshot_table
from equity_daemon.runtime.supervisor import Daemon, run_daemon
from equity_daemon.settings import Settings


def run_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run `args.command` (`run`, `once`, `history` or `outbox`); its exit code."""
    # `once`, `history` and `outbox` print their result on stdout: their log lines go to stderr
    logs.configure(settings.log_level, settings.log_format, to_stderr=args.command != "run")
    try:
        if args.command == "run":
            anyio.run(run_daemon, settings)
            return EXIT_OK
        if args.command == "once":
            return anyio.run(_once, settings, args.format)
        if args.command == "outbox":
            return anyio.run(_outbox, settings, args)
        return anyio.run(_history, settings, args)
    except (StartupError, BaseExceptionGroup) as exc:
        failures = _startup_errors(exc)
        if not failures:
            raise
        for failure in failures:
            sys.stderr.write(f"cannot start: {failure}\n")
        return EXIT_FAILURE


def _startup_errors(exc: BaseException) -> list[StartupError]:
    """The startup errors `exc` consists of, or none if it holds anything else (a bug)."""
    if isinstance(exc, StartupError):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        found = [_startup_errors(inner) for inner in exc.exceptions]
        return [e for group in found for e in group] if all(found) else []
    return []


async def _once(settings: Settings, output_format: str) -> int:
    daemon = Daemon(settings)
    snapshots = await daemon.preview()
    if output_format == "json":  # the /snapshot document, freshness included
        text = json.dumps({"books": daemon.snapshots()}, indent=2)
    else:
        text = "\n\n".join(snapshot_table(snap) for snap in snapshots)
    sys.stdout.write(text + "\n")
    return EXIT_OK if all(snap.complete for snap in snapshots) else EXIT_INCOMPLETE


CSV_COLUMNS = (
    "book",
    "sequence",
    "at",
    "share_class",
    "equity",
    "total_assets",
    "total_debt",
    "complete",
)


async def _history(settings: Settings, args: argparse.Namespace) -> int:
    history = await History.open(settings.history_path)
    try:
        rows = await history.snapshots(args.book, args.since, args.until)
    finally:
        await history.aclose()
    if args.book is not None and args.book not in settings.books and not rows:
        books = ", ".join(settings.books)
        sys.stderr.write(f"history: no book named {args.book!r} (books: {books})\n")
        return EXIT_USAGE
    if args.format == "jsonl":
        sys.stdout.writelines(json.dumps(row) + "\n" for row in rows)
        return EXIT_OK
    writer = csv.DictWriter(sys.stdout, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return EXIT_OK


async def _outbox(settings: Settings, args: argparse.Namespace) -> int:
    configured = [name for book in settings.books.values() for name in book.outbox_targets]
    history = await History.open(settings.history_path)
    try:
        rows = await history.undelivered()
        known = {*configured, *(row.target for row in rows)}
        if args.target is not None and args.target not in known:
            names = ", ".join(sorted(known)) or "none"
            return _refuse(f"no outbox target named {args.target!r} (known: {names})")
        if args.action == "list":
            shown = [row for row in rows if args.target in (None, row.target)]
            return _outbox_list(shown, configured, args.format)
        if args.action == "retry":
            return await _outbox_retry(history, rows, configured, args)
        return await _outbox_drop(history, rows, args)
    except HistoryUnavailable as exc:
        sys.stderr.write(f"history unavailable: {exc.reason}; try again\n")
        return EXIT_FAILURE
    finally:
        await history.aclose()


def _refuse(message: str) -> int:
    sys.stderr.write(f"outbox: {message}\n")
    return EXIT_USAGE


def _outbox_list(rows: list[OutboxRow], configured: list[str], output_format: str) -> int:
    if output_format == "jsonl":
        sys.stdout.writelines(
            json.dumps(
                {
                    "target": row.target,
                    "state": row.state(configured),
                    "event_id": row.event_id,
                    "attempts": row.attempts,
                    "last_error": row.last_error,
                }
            )
            + "\n"
            for row in rows
        )
        return EXIT_OK
    if not rows:
        sys.stdout.write("nothing undelivered\n")
        return EXIT_OK
    counts = Counter((row.target, row.state(configured)) for row in rows)
    summary = [(target, state, str(n)) for (target, state), n in sorted(counts.items())]
    events = [
        (row.target, row.state(configured), row.event_id, str(row.attempts), row.last_error or "-")
        for row in rows
    ]
    sys.stdout.write(
        _columns([("TARGET", "STATE", "EVENTS"), *summary])
        + "\n"
        + _columns([("TARGET", "STATE", "EVENT", "ATTEMPTS", "LAST ERROR"), *events])
    )
    return EXIT_OK


def _columns(lines: list[tuple[str, ...]]) -> str:
    """Left-aligned columns two spaces apart, one line each."""
    widths = [max(len(cell) for cell in column) for column in zip(*lines, strict=True)]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        + "\n"
        for line in lines
    )


async def _outbox_retry(
    history: History, rows: list[OutboxRow], configured: list[str], args: argparse.Namespace
) -> int:
    if args.target is not None and args.target not in configured:
        return _refuse(
            f"{args.target!r} is no longer a configured webhook: there is no URL to send its"
            f" events to; configure it again, or drop them (outbox drop --target {args.target})"
        )
    targets = configured if args.target is None else [args.target]
    dead = [row for row in rows if row.dead and args.event in (None, row.event_id)]
    if args.event is not None and not any(row.target in targets for row in dead):
        return _refuse(f"no dead letter {args.event!r} for a configured webhook")
    retried = await history.retry_dead(targets, args.event)
    sys.stdout.write(f"{retried} dead letter(s) pending again\n")
    if args.target is None:  # "retry everything" cannot include these: say so
        stranded = Counter(row.target for row in dead if row.target not in configured)
        for target, count in sorted(stranded.items()):
            sys.stderr.write(
                f"outbox: {count} dead letter(s) of {target!r} left as they are: it is no longer"
                " a configured webhook, so they cannot be sent\n"
            )
    return EXIT_OK


async def _outbox_drop(history: History, rows: list[OutboxRow], args: argparse.Namespace) -> int:
    if args.event is not None and not any(
        row.target == args.target
        and row.event_id == args.event
        and (row.dead or not args.dead_only)
        for row in rows
    ):
        what = "dead letter" if args.dead_only else "undelivered event"
        return _refuse(f"no {what} {args.event!r} for {args.target!r}")
    dropped = await history.drop_undelivered(args.target, args.event, args.dead_only)
    sys.stdout.write(f"{dropped} row(s) of {args.target!r} dropped; the events stay in history\n")
    return EXIT_OK
