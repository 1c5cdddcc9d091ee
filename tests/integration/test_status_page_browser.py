"""The status page in a real browser: headless Chromium against a real daemon process.

Screenshots (desktop and phone) and the rendered DOM are written to `$EQUITY_TEST_ARTIFACTS`
(a pytest temporary directory when unset), to be looked at.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import DaemonProcess, free_port, wait_for
from tests.tools import require_tool

HOSTILE_ASSET = "<img src=x onerror=alert(1)>"
HOSTILE_ACCOUNT = "<script>alert(\"x\")</script> & 'co'"

# the demo book, stepping every 0.5 s and alerting at 0.02 %, so that a few seconds give a chart
# with several points and threshold alerts on it
DEMO = """
interval_seconds = 1
debounce_seconds = 0.1
history_path = "history.sqlite3"

[books.demo]
share_class = "USDT"
threshold_percent = 0.02
venues = [{kind = "demo", name = "demo", interval_seconds = 0.5, seed = 7}]
prices = [
    {base = "ETH", quote = "USDT", sources = ["demo"]},
    {base = "wstETH", quote = "stETH", sources = ["demo"]},
    {base = "stETH", quote = "ETH", sources = ["demo"]},
]
"""


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    configured = os.environ.get("EQUITY_TEST_ARTIFACTS")
    folder = Path(configured) if configured else tmp_path / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def chromium() -> str:
    return require_tool("chromium", "chromium")


def run_daemon(tmp_path: Path, config: str) -> Iterator[DaemonProcess]:
    path = tmp_path / "equity.toml"
    path.write_text(config)
    daemon = DaemonProcess(path, free_port(), tmp_path / "daemon.log")
    try:
        daemon.start()
        yield daemon
        assert daemon.terminate()[0] == 0
    finally:
        daemon.kill()


def browse(chromium: str, profile: Path, url: str, *args: str) -> str:
    """Run headless Chromium once on `url`; its standard output."""
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",  # never a profile another run (or person) is using
        *args,
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def cycles(daemon: DaemonProcess) -> float:
    for line in daemon.get("/metrics").text.splitlines():
        if line.startswith("equity_daemon_cycles_total "):
            return float(line.split()[1])
    return 0.0


def chart_points(dom: str) -> list[str]:
    match = re.search(r'<polyline class="equity" points="([^"]*)"', dom)
    assert match is not None, "no equity line in the chart"
    return match.group(1).split()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DaemonProcess]:
    yield from run_daemon(tmp_path, DEMO)


def test_the_status_page_renders_the_demo_book_with_a_chart(
    demo: DaemonProcess, chromium: str, artifacts: Path, tmp_path: Path
) -> None:
    wait_for(lambda: cycles(demo) >= 8, 20, "eight cycles")
    wait_for(lambda: bool(demo.get("/events").json()["events"]), 20, "a threshold alert")
    profile = tmp_path / "chromium"
    dom = browse(chromium, profile, demo.url("/"), "--dump-dom")
    (artifacts / "status-page.html").write_text(dom)
    assert "<title>equity-daemon · demo " in dom
    shown = re.search(r'<div class="equity">([\d,]+\.\d\d) <span class="unit">USDT</span>', dom)
    assert shown is not None, "no equity in USDT on the page"
    latest = float(demo.get("/snapshot").json()["books"][0]["equity"])
    # the demo book's equity (it moved a little since the page was taken)
    assert float(shown.group(1).replace(",", "")) == pytest.approx(latest, rel=0.01)
    assert ">complete<" in dom
    assert "Excluded from equity" in dom
    assert ">hedge<" in dom
    assert ">short<" in dom
    assert len(chart_points(dom)) >= 3
    assert 'class="threshold"' in dom
    assert "Recent events" in dom

    for name, size in (("status-page.png", "1100,1700"), ("status-page-phone.png", "390,2600")):
        shot = artifacts / name
        shot.unlink(missing_ok=True)
        browse(chromium, profile, demo.url("/"), f"--screenshot={shot}", f"--window-size={size}")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[DaemonProcess]:
    positions = tmp_path / "ops.toml"
    positions.write_text(
        "[[positions]]\n"
        f"account = {toml_string(HOSTILE_ACCOUNT)}\n"
        f"asset = {toml_string(HOSTILE_ASSET)}\n"
        'amount = "5"\n'
        "[[positions]]\n"
        'asset = "USDT"\n'
        'amount = "1000"\n'
    )
    config = f"""
interval_seconds = 1
history_path = "history.sqlite3"

[books.ops]
share_class = "USDT"

[[books.ops.venues]]
kind = "manual"
name = "ops"
path = {toml_string(str(positions))}
interval_seconds = 0.5
"""
    yield from run_daemon(tmp_path, config)


def toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def test_markup_in_venue_data_shows_as_text(
    hostile: DaemonProcess, chromium: str, artifacts: Path, tmp_path: Path
) -> None:
    wait_for(lambda: cycles(hostile) >= 1, 20, "a cycle")
    dom = browse(chromium, tmp_path / "chromium", hostile.url("/"), "--dump-dom")
    (artifacts / "status-page-hostile.html").write_text(dom)
    assert "unpriced" in dom  # the asset has no price: the book names it
    assert "<img" not in dom  # the browser built no element from it
    assert "<script" not in dom
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom  # it is shown, as text
    assert "&lt;script&gt;alert(\"x\")&lt;/script&gt; &amp; 'co'" in dom
