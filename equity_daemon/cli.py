"""The `equity-daemon` command line.

    equity-daemon run           --config FILE   run until SIGTERM/SIGINT
    equity-daemon once          --config FILE   fetch and value every book once; record nothing
    equity-daemon check-config  --config FILE   validate the configuration and exit
    equity-daemon history       --config FILE   export stored snapshots as CSV or JSON lines
    equity-daemon outbox list   --config FILE   events not delivered yet
    equity-daemon outbox retry  --config FILE   send dead-lettered events again
    equity-daemon outbox drop   --config FILE   forget a target's undelivered events
    equity-daemon --version

The configuration file can also come from `$EQUITY_DAEMON_CONFIG`.

The outbox holds one row per event and target (a webhook or an Apprise destination) until it is
delivered. An undelivered row is in one of three states:

    pending    waiting for its (next) try
    dead       refused for good by the receiver, no longer tried (a dead letter)
    orphaned   pending for a target that is no longer in the configuration: nothing sends it

`outbox list [--target T] [--format table|jsonl]` prints one line per target and state with its
count, then one line per event. `outbox retry [--target T] [--event ID]` makes dead letters
pending again (tries counted from zero, due at once); a target that is no longer configured
cannot be retried (there is no URL to send to): configure it again, or drop its rows.
`outbox drop --target T [--event ID] [--dead-only]` deletes undelivered rows; the events
themselves stay in history.

The outbox commands work while a daemon runs on the same history file: the daemon's delivery
loop reads the database each time it looks, so it sends a retried event at its next wake-up
(at most a minute when it has nothing else to send, or its target's next retry).

Exit codes: 0 success (for `once`: every snapshot complete), 1 cannot start (port taken, history
unwritable, in use by another daemon, unreadable for `history`/`outbox`) or an unexpected failure,
2 bad usage or configuration (for `outbox`: an unknown target or event, or a retry of a target that
is not configured; one line on stderr), 3 `once` produced at least one incomplete snapshot.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import anyio

from equity_daemon import __version__, logs
from equity_daemon.errors import ConfigError, HistoryUnavailable, StartupError
from equity_daemon.history import History, OutboxRow
from equity_daemon.render import snapshot_table
from equity_daemon.runtime.supervisor import Daemon, run_daemon
from equity_daemon.settings import Settings, load_settings

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. 2026-11-25T00:00Z")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="equity-daemon",
        description="A fund's equity (assets minus debt, in the share-class currency).",
    )
    parser.add_argument("--version", action="version", version=f"equity-daemon {__version__}")
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("EQUITY_DAEMON_CONFIG"),
        help="TOML configuration file (default: $EQUITY_DAEMON_CONFIG)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", parents=[config], help="run the daemon until SIGTERM/SIGINT")
    once = commands.add_parser("once", parents=[config], help="value every book once and print")
    once.add_argument("--format", choices=("table", "json"), default="table")
    commands.add_parser("check-config", parents=[config], help="validate the configuration")
    history = commands.add_parser("history", parents=[config], help="export stored snapshots")
    history.add_argument("--book", help="only this book")
    history.add_argument("--since", type=_time, help="from this time (ISO 8601 with offset)")
    history.add_argument("--until", type=_time, help="up to this time (ISO 8601 with offset)")
    history.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    outbox = commands.add_parser("outbox", help="list, retry or drop undelivered events")
    actions = outbox.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[config], help="undelivered events by target")
    listing.add_argument("--target", help="only this target")
    listing.add_argument("--format", choices=("table", "jsonl"), default="table")
    retry = actions.add_parser("retry", parents=[config], help="send dead letters again")
    retry.add_argument("--target", help="only this target")
    retry.add_argument("--event", help="only this event id")
    drop = actions.add_parser("drop", parents=[config], help="forget undelivered events")
    drop.add_argument("--target", required=True, help="the target whose rows go")
    drop.add_argument("--event", help="only this event id")
    drop.add_argument("--dead-only", action="store_true", help="only dead letters")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"config error: {problem}\n")
        return EXIT_USAGE
    if args.command == "check-config":
        venues = sum(len(book.venues) for book in settings.books.values())
        sys.stdout.write(f"config ok: {len(settings.books)} book(s), {venues} venue(s)\n")
        return EXIT_OK
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
    snapshots = await Daemon(settings).preview()
    if output_format == "json":
        text = json.dumps({"books": [snap.to_json() for snap in snapshots]}, indent=2)
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
            return _refuse(f"no webhook target named {args.target!r} (known: {names})")
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
