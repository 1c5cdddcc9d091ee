"""The status page in a real browser: headless Chromium against a real daemon process, and
against the HTTP API serving the three states a reader must tell apart (`tests.pages`).

Screenshots (phone and desktop, light and dark) and the rendered DOM are written to
`$EQUITY_TEST_ARTIFACTS` (a pytest temporary directory when unset), to be looked at.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.http import Api, serve
from tests.integration.browser import FLAGS, chromium_page
from tests.integration.processes import DaemonProcess, free_port, wait_for
from tests.pages import ShowcaseSource
from tests.reports import NOW
from tests.tools import require_tool

HOSTILE_ASSET = "<img src=x onerror=alert(1)>"
HOSTILE_ACCOUNT = "<script>alert(\"x\")</script> & 'co'"
PHONE, DESKTOP = 390, 1280

# the demo book, stepping every 0.5 s and alerting at 0.02 %, so that a few seconds give a chart
# with several points and threshold alerts on it; beside it a manual book that never moves, whose
# alert band is known to the cent
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
TREASURY = """
[books.treasury]
share_class = "USDT"
threshold_percent = 0.1
venues = [{{kind = "manual", name = "vault", path = "{path}", interval_seconds = 0.5}}]
"""

# what a reader looks at on a phone: every figure of the events table's change column whole
CHANGES = """[...document.querySelectorAll('td[data-label="Change"]')].map((cell) => {
  const box = cell.getBoundingClientRect();
  return {text: cell.textContent, left: box.left, right: box.right,
          shown: box.width > 0 && cell.scrollWidth <= cell.clientWidth};
})"""
BACKGROUND = "getComputedStyle(document.body).backgroundColor"
SHOWN = "document.body.innerText"
LINK = "document.querySelector('#book-demo nav.ranges a[href]').getAttribute('href')"


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
    # a profile of its own: never one another run (or person) is using
    command = [chromium, *FLAGS, f"--user-data-dir={profile}", *args, url]
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


def text_of(dom: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DaemonProcess]:
    treasury = tmp_path / "treasury.toml"
    treasury.write_text('[[positions]]\nasset = "USDT"\namount = "250000"\n')
    yield from run_daemon(tmp_path, DEMO + TREASURY.format(path=treasury))


def test_the_status_page_renders_the_demo_book_with_a_chart_and_its_alert_band(
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
    books = {doc["book"]: doc for doc in demo.get("/snapshot").json()["books"]}
    # the demo book's equity (it moved a little since the page was taken)
    assert float(shown.group(1).replace(",", "")) == pytest.approx(
        float(books["demo"]["equity"]), rel=0.01
    )
    assert ">complete<" in dom
    assert "Excluded from equity" in dom
    assert ">hedge<" in dom
    assert ">short<" in dom
    assert len(chart_points(dom)) >= 3
    assert 'class="threshold"' in dom
    assert '<rect class="band"' in dom
    assert "Recent events" in dom
    assert "Since the alert at " in text_of(dom)

    # the book that never moves: its band, as /snapshot gives it, to the cent
    assert books["treasury"]["alert_band"] | {"reference_at": None} == {
        "reference": "250000",
        "reference_at": None,
        "threshold_percent": "0.1",
        "threshold_floor": "0",
        "distance": "250",
        "low": "249750",
        "high": "250250",
    }
    text = text_of(dom)
    assert "Next alert 250.00 away (0.100 %)" in text
    assert (
        "Next alert below 249,750.00 or above 250,250.00: "
        "reference 250,000.00 ± 250.00 (0.1 %)." in text
    )
    assert "no alert yet" in text

    async def look() -> None:
        async with chromium_page(chromium, tmp_path / "cdp") as page:
            await page.open(demo.url("/"), DESKTOP)
            assert "EQUITY, LAST 24 H" in await page.evaluate(SHOWN)  # its heading's capitals
            # the range is a link: following it shows the last hour
            link = await page.evaluate(LINK)
            assert link == "?range=1h#book-demo"
            await page.open(demo.url("/" + link), PHONE)
            assert "EQUITY, LAST 1 H" in await page.evaluate(SHOWN)
            for width in (PHONE, DESKTOP):
                for dark in (False, True):
                    await page.open(demo.url("/"), width, dark=dark)
                    measured = await page.measure()
                    assert measured["cut"] == [], (width, dark, measured["cut"])
                    await page.screenshot(artifacts / shot_name("demo", width, dark))

    anyio.run(look)


def shot_name(what: str, width: int, dark: bool) -> str:
    return f"status-page-{what}-{width}-{'dark' if dark else 'light'}.png"


@pytest.fixture
async def showcase() -> AsyncIterator[str]:
    """The three books of `tests.pages` served by the real HTTP API, its clock at NOW."""
    with capture_logs():
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve, Api(ShowcaseSource(), None, NOW.timestamp), "127.0.0.1", 0)
            yield f"http://127.0.0.1:{port}/"
            tg.cancel_scope.cancel()


@pytest.mark.anyio
@pytest.mark.parametrize("width", [PHONE, DESKTOP])
async def test_no_table_is_cut_off_at_phone_or_desktop_width_in_light_or_dark(
    showcase: str, chromium: str, artifacts: Path, tmp_path: Path, width: int
) -> None:
    backgrounds = set()
    async with chromium_page(chromium, tmp_path / "chromium") as page:
        for dark in (False, True):
            for shown in ("7d", "24h"):
                await page.open(f"{showcase}?range={shown}", width, dark=dark)
                measured = await page.measure()
                # nothing reaches past the window or scrolls sideways in its box
                assert measured["cut"] == [], (shown, dark, measured["cut"])
                assert measured["document"] == measured["width"] == width
            changes = [c for c in await page.evaluate(CHANGES) if c["text"]]  # a move's
            assert [change["text"] for change in changes] == [
                "+525.65 (+0.103 %)",
                "+549.34 (+0.107 %)",
            ]
            for change in changes:
                assert change["shown"], change
                assert 0 <= change["left"] <= change["right"] <= width, change
            backgrounds.add(await page.evaluate(BACKGROUND))
            await page.screenshot(artifacts / shot_name("states", width, dark))
    assert len(backgrounds) == 2  # the system's dark mode darkens the page


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
