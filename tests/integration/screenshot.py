"""The README's picture of the status page: the demo book, stepping every 0.5 s and alerting at
0.3 %, after three minutes, in headless Chromium at 1280 px (light).

    .venv/bin/python -m tests.integration.screenshot docs/status-page.png [--minutes 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import anyio

from tests.integration.browser import chromium_page
from tests.integration.processes import DaemonProcess, free_port

DEMO = Path(__file__).parents[2] / "config" / "demo.toml"
WIDTH = 1280


def demo_config(folder: Path) -> Path:
    """config/demo.toml, faster: a cycle a second, the market stepping every 0.5 s, 0.3 %."""
    text = DEMO.read_text()
    for old, new in [
        ("interval_seconds = 60", "interval_seconds = 1"),
        ("interval_seconds = 5", "interval_seconds = 0.5"),
        ("threshold_percent = 0.1", "threshold_percent = 0.3"),
        ('history_path = "equity-demo.sqlite3"', f'history_path = "{folder / "h.sqlite3"}"'),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    config = folder / "demo.toml"
    config.write_text(text)
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("picture", type=Path)
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    assert chromium is not None, "chromium is not installed"
    with tempfile.TemporaryDirectory() as folder:
        daemon = DaemonProcess(demo_config(Path(folder)), free_port(), Path(folder) / "log")
        daemon.start()
        try:
            time.sleep(args.minutes * 60)

            async def shoot() -> None:
                async with chromium_page(chromium, Path(folder) / "chromium") as page:
                    await page.open(daemon.url("/"), WIDTH)
                    await page.screenshot(args.picture)

            anyio.run(shoot)
        finally:
            daemon.terminate()


if __name__ == "__main__":
    main()
