"""The `equity-daemon` command line.

    equity-daemon run           --config FILE   run until SIGTERM/SIGINT
    equity-daemon once          --config FILE   fetch and value every book once; record nothing
    equity-daemon check-config  --config FILE   validate the configuration and exit
    equity-daemon history       --config FILE   export stored snapshots as CSV or JSON lines
    equity-daemon --version

The configuration file can also come from `$EQUITY_DAEMON_CONFIG`.

Exit codes: 0 success (for `once`: every snapshot complete), 1 cannot start (port taken, history
unwritable) or an unexpected failure, 2 bad usage or configuration, 3 `once` produced at least one
incomplete snapshot.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import anyio

from equity_daemon import __version__, logs
from equity_daemon.errors import ConfigError, StartupError
from equity_daemon.history import History
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
    # `once` and `history` print their result on stdout: their log lines go to stderr
    logs.configure(settings.log_level, settings.log_format, to_stderr=args.command != "run")
    try:
        if args.command == "run":
            anyio.run(run_daemon, settings)
            return EXIT_OK
        if args.command == "once":
            return anyio.run(_once, settings, args.format)
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
