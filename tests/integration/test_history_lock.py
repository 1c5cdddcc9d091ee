"""Two `equity-daemon run` on one history file: the second refuses to start, in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.processes import DaemonProcess, free_port


def test_a_second_daemon_on_the_same_history_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "ops.toml").write_text('[[positions]]\nasset = "USDT"\namount = "100"\n')
    history = tmp_path / "history.sqlite3"
    config = tmp_path / "equity.toml"
    config.write_text(
        f"""
history_path = "{history}"
[books.ops]
share_class = "USDT"
venues = [{{kind = "manual", name = "ops", path = "{tmp_path / "ops.toml"}"}}]
"""
    )
    first = DaemonProcess(config, free_port(), tmp_path / "first.log")
    try:
        first.start()
        assert first.process is not None
        second = subprocess.run(
            [sys.executable, "-m", "equity_daemon", "run", "--config", str(config)],
            env={**os.environ, "EQUITY_DAEMON_HTTP__PORT": str(free_port())},
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert second.returncode == 1
        assert second.stderr.decode() == (
            f"cannot start: {history} is in use by another equity-daemon"
            f" (pid {first.process.pid})\n"
        )
        assert first.answers()  # the first one runs on, untouched
        first.kill()  # even kill -9 lets go of the lock: the next start is not blocked
        first.start()
        assert first.terminate()[0] == 0
    finally:
        first.kill()
