"""The `equity-daemon` command line.

    equity-daemon run           --config FILE   run until SIGTERM/SIGINT
    equity-daemon once          --config FILE   fetch and value every book once; record nothing
    equity-daemon check-config  --config FILE   validate the configuration, and report what
                                                will go wrong at run time (--strict: fail)
    equity-daemon history       --config FILE   export stored snapshots as CSV or JSON lines
    equity-daemon outbox list   --config FILE   events not delivered yet
    equity-daemon outbox retry  --config FILE   send dead-lettered events again
    equity-daemon outbox drop   --config FILE   forget a target's undelivered events
    equity-daemon --version

The configuration file can also come from `$EQUITY_DAEMON_CONFIG`. This module imports only what
parsing the command line needs: a command's machinery is imported when it runs (`commands.py`),
so `--version` and `check-config` never load aiohttp, ccxt or web3.

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
2 bad usage or configuration (for `check-config --strict`, a warning too; for `outbox`: an
unknown target or event, or a retry of a target that is not configured; one line on stderr),
3 `once` produced at least one incomplete snapshot.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from equity_daemon import __version__

if TYPE_CHECKING:
    from equity_daemon.config_check import Finding
    from equity_daemon.settings import Settings

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
NO_CONFIG = "no configuration: give --config FILE or set EQUITY_DAEMON_CONFIG"


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
    check = commands.add_parser(
        "check-config",
        parents=[config],
        help="validate the configuration and report what will go wrong at run time",
    )
    check.add_argument("--strict", action="store_true", help="a warning is an error (exit 2)")
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
    # Imported once a command is known, each where it is needed: pydantic is a fifth of a
    # second that `--version` does without, aiohttp, ccxt and web3 a second that
    # `check-config` does without.
    from equity_daemon.errors import ConfigError
    from equity_daemon.settings import load_settings

    if args.config is None and not _books_in_environment():
        return _config_errors([NO_CONFIG])
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        return _config_errors(exc.problems)
    if args.command == "check-config":
        from equity_daemon.config_check import check

        return _report(check(settings), settings, strict=args.strict)
    from equity_daemon.commands import run_command

    return run_command(settings, args)


def _books_in_environment() -> bool:
    """Whether the environment alone may hold a configuration (`EQUITY_DAEMON_BOOKS…`)."""
    return any(name.upper().startswith("EQUITY_DAEMON_BOOKS") for name in os.environ)


def _config_errors(problems: Sequence[str]) -> int:
    for problem in problems:
        sys.stderr.write(f"config error: {problem}\n")
    return EXIT_USAGE


def _report(findings: Sequence[Finding], settings: Settings, *, strict: bool) -> int:
    """`config ok` and the findings on stderr; with `strict`, a warning fails the check."""
    warnings = [finding for finding in findings if finding.warning]
    if strict and warnings:
        return _config_errors([f"{finding.where}: {finding.message}" for finding in warnings])
    venues = sum(len(book.venues) for book in settings.books.values())
    sys.stdout.write(f"config ok: {len(settings.books)} book(s), {venues} venue(s)\n")
    for finding in findings:
        label = "warning" if finding.warning else "note"
        sys.stderr.write(f"{label}: {finding.where}: {finding.message}\n")
    return EXIT_OK
