"""The systemd unit passes systemd's own checks (the Docker image: integration/test_image.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from prometheus_client import generate_latest

from tests.test_metrics import basis_view, scrape_registry
from tests.tools import require_tool

UNIT = Path(__file__).parents[1] / "deploy" / "equity-daemon.service"


def systemd_analyze() -> str:
    return require_tool("systemd-analyze", "systemd")


def local_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this interpreter, so `verify` can find the binary."""
    text = re.sub(
        r"^ExecStart=\S+",
        f"ExecStart={sys.executable} -m equity_daemon",
        UNIT.read_text(),
        flags=re.M,
    )
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    return copy


def test_the_unit_verifies(tmp_path: Path) -> None:
    done = subprocess.run(
        [systemd_analyze(), "verify", str(local_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")


def test_the_unit_is_hardened(tmp_path: Path) -> None:
    done = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", str(local_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    exposure = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert exposure is not None, done.stdout + done.stderr
    assert float(exposure.group(1)) <= 2.5


def test_the_unit_is_a_notify_service_with_a_watchdog() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "LoadCredential="):
        assert line in text


RULES = UNIT.parent / "prometheus"


def test_the_alerting_rules_pass_their_promtool_tests() -> None:
    promtool = require_tool("promtool", "prometheus")
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run(
            [promtool, *args], cwd=RULES, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_only_use_metrics_the_daemon_exports() -> None:
    exposition = generate_latest(scrape_registry([basis_view()], {"pager": 1}).registry).decode()
    used = set(re.findall(r"equity_daemon_[a-z_]+", (RULES / "alerts.yml").read_text()))
    assert used
    assert {name for name in used if f"\n{name}{{" not in exposition} == set()
