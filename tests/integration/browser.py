"""Headless Chromium driven over the DevTools protocol: open a page at a window width, in the
light or dark scheme, measure what a reader would see of it, take a full-page screenshot.

The status page runs no script (its CSP forbids them): the measuring script runs from DevTools
(`Runtime.evaluate`), which no page policy stops, on the page as Chromium laid it out.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)
START_TIMEOUT = 30.0
LOAD_TIMEOUT = 30.0
PHONE_BELOW = 640  # a window narrower than this is a phone's: touch, and the viewport meta

# Everything a reader cannot see whole at this width: an element reaching past either side of the
# window, or a box whose content scrolls sideways (a table cut off at its edge); and the width
# of the document. Each element is named by its tag, classes and `data-label` (a table column).
MEASURE = """(() => {
  const width = document.documentElement.clientWidth;
  const name = (el) => {
    const classes = typeof el.className === "string" && el.className
      ? "." + el.className.trim().split(/\\s+/).join(".") : "";
    const label = el.dataset && el.dataset.label ? `[${el.dataset.label}]` : "";
    return el.tagName.toLowerCase() + classes + label;
  };
  const cut = [];
  for (const el of document.querySelectorAll("body *")) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && (box.right > width + 0.5 || box.left < -0.5)) {
      cut.push(`${name(el)} reaches ${Math.round(box.left)}..${Math.round(box.right)}`);
    }
    if (getComputedStyle(el).overflowX !== "visible" && el.scrollWidth > el.clientWidth + 1) {
      cut.push(`${name(el)} scrolls: ${el.scrollWidth} in ${el.clientWidth}`);
    }
  }
  return {width, document: document.documentElement.scrollWidth, cut};
})()"""


class Page:
    """One browser tab, on a DevTools websocket."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._next_id = 0
        self._events: list[str] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a DevTools method; its result (events that arrive meanwhile are kept)."""
        self._next_id += 1
        await self._socket.send_str(
            json.dumps({"id": self._next_id, "method": method, "params": params})
        )
        while True:
            message = await self._receive()
            if message.get("id") == self._next_id:
                assert "error" not in message, (method, message["error"])
                result: dict[str, Any] = message["result"]
                return result

    async def _receive(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await self._socket.receive_str())
        if "method" in message:
            self._events.append(message["method"])
        return message

    async def open(self, url: str, width: int, *, dark: bool = False, height: int = 900) -> None:
        """Show `url` in a window `width` CSS pixels wide, in the dark or light scheme."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=width < PHONE_BELOW,
        )
        scheme = "dark" if dark else "light"
        await self.send(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": scheme}],
        )
        await self.send("Page.enable")
        self._events.clear()
        await self.send("Page.navigate", url=url)
        with anyio.fail_after(LOAD_TIMEOUT):
            while "Page.loadEventFired" not in self._events:
                await self._receive()

    async def evaluate(self, expression: str) -> Any:
        reply = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in reply, reply["exceptionDetails"]
        return reply["result"].get("value")

    async def measure(self) -> dict[str, Any]:
        """The window's width, the document's, and what sticks out or scrolls (`MEASURE`)."""
        measured: dict[str, Any] = await self.evaluate(MEASURE)
        return measured

    async def screenshot(self, path: Path) -> None:
        """The whole page, as tall as it is, as a PNG."""
        size = (await self.send("Page.getLayoutMetrics"))["cssContentSize"]
        shot = await self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        await anyio.Path(path).write_bytes(base64.b64decode(shot["data"]))


@asynccontextmanager
async def chromium_page(chromium: str, profile: Path) -> AsyncIterator[Page]:
    """A headless Chromium of its own (a fresh profile, a free DevTools port) and one tab."""
    folder = anyio.Path(profile)
    await folder.mkdir(parents=True, exist_ok=True)
    active = folder / "DevToolsActivePort"  # Chromium writes its port here once listening
    await active.unlink(missing_ok=True)
    command = [chromium, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0"]
    async with await anyio.open_process(
        [*command, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as process:
        try:
            with anyio.fail_after(START_TIMEOUT):
                while not await active.exists() or len((await active.read_text()).split()) < 2:
                    assert process.returncode is None, "chromium exited before listening"
                    await anyio.sleep(0.05)
            port = (await active.read_text()).split()[0]
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as reply:
                    targets = await reply.json()
                (tab,) = [target for target in targets if target["type"] == "page"]
                url = tab["webSocketDebuggerUrl"]
                async with session.ws_connect(url, max_msg_size=0) as socket:
                    yield Page(socket)
        finally:
            process.terminate()
            with anyio.move_on_after(10, shield=True):
                await process.wait()
            if process.returncode is None:
                process.kill()
