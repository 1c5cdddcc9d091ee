"""A child process for the kill -9 test: records cycles as fast as it can, saying which committed.

Usage: python -m tests.history_writer DB_PATH. It continues the sequence and the reference it
finds. Every cycle moves equity by 1 %, so every cycle after the very first also raises a
threshold event and moves the reference: three writes that must stay together.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

from equity_daemon.history import HistoryDB
from equity_daemon.monitor import ThresholdRule, observe
from tests.reports import make_snapshot


def main(path: Path) -> None:
    db = HistoryDB(path)
    reference = db.load_reference("basis")
    sequence = db.last_sequence("basis")
    while True:
        sequence += 1
        snap = make_snapshot(sequence=sequence, equity=Decimal(1000) * Decimal("1.01") ** sequence)
        reference, events = observe(reference, snap, ThresholdRule())
        db.record_cycle(snap, reference, events, targets=["pager"])
        # the parent trusts this line: it must come after the commit, never before
        sys.stdout.write(f"committed {sequence}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
