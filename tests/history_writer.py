"""A child process for the kill -9 test: records cycles as fast as it can, saying which committed.

Usage: python -m tests.history_writer DB_PATH. Every cycle moves equity by 1 %, so every cycle
also raises a threshold event and moves the reference: three writes that must stay together.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from equity_daemon.history import HistoryDB
from equity_daemon.monitor import ThresholdRule, observe
from tests.reports import NOW, book_at


def main(path: Path) -> None:
    db = HistoryDB(path)
    reference = db.load_reference("basis")
    sequence = db.last_sequence("basis")
    while True:
        sequence += 1
        equity = Decimal(1000) * Decimal("1.01") ** sequence
        snap = replace(
            book_at(str(equity), sequence=sequence), at=NOW + timedelta(seconds=sequence)
        )
        reference, events = observe(reference, snap, ThresholdRule())
        db.record_cycle(snap, reference, events, targets=["pager"])
        sys.stdout.write(f"committed {sequence}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
