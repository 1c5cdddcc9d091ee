"""A real daemon process, a real webhook receiver, an operator editing a file.

Book `ops` is a manual venue with a signed webhook; book `demo` is the simulated basis book, so
both built-in venue kinds run in the same process.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import DaemonProcess, Receiver, free_port, wait_for

SECRET = "webhook-signing-secret"
DEMO_BOOK = """
[books.demo]
share_class = "USDT"
venues = [{kind = "demo", name = "demo", interval_seconds = 0.5, seed = 1}]
prices = [
    {base = "ETH", quote = "USDT", sources = ["demo"]},
    {base = "wstETH", quote = "stETH", sources = ["demo"]},
    {base = "stETH", quote = "ETH", sources = ["demo"]},
]
"""


def positions(usdt: str) -> str:
    return f'[[positions]]\naccount = "treasury"\nasset = "USDT"\namount = "{usdt}"\n'


def edit(path: Path, text: str) -> None:
    """Write a new version; bump mtime so a same-size edit within one tick is still seen."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[DaemonProcess, Receiver, Path]]:
    receiver = Receiver(free_port(), SECRET)
    book = tmp_path / "ops.toml"
    edit(book, positions("100000"))
    config = tmp_path / "equity.toml"
    config.write_text(
        f"""
interval_seconds = 1
debounce_seconds = 0.1
history_path = "history.sqlite3"

[books.ops]
share_class = "USDT"
threshold_percent = 0.1

[[books.ops.venues]]
kind = "manual"
name = "ops"
path = "{book}"
interval_seconds = 0.2
max_age_seconds = 2

[[books.ops.webhooks]]
name = "pager"
url = "http://127.0.0.1:{receiver.port}/hook"
secret = "{SECRET}"
max_backoff_seconds = 1

"""
        + DEMO_BOOK
    )
    daemon = DaemonProcess(config, free_port(), tmp_path / "daemon.log")
    try:
        yield daemon, receiver, book
    finally:
        daemon.kill()
        receiver.stop()


def cycles(daemon: DaemonProcess) -> float:
    for line in daemon.get("/metrics").text.splitlines():
        if line.startswith("equity_daemon_cycles_total "):
            return float(line.split()[1])
    raise AssertionError("no cycle counter in /metrics")


def ready(daemon: DaemonProcess) -> bool:
    return daemon.get("/readyz").status_code == 200


def test_an_edit_past_the_threshold_delivers_exactly_one_signed_webhook(
    world: tuple[DaemonProcess, Receiver, Path],
) -> None:
    daemon, receiver, book = world
    receiver.start()
    daemon.start()
    wait_for(lambda: ready(daemon), 10, "readiness")
    edit(book, positions("100050"))  # 0.05 %: below the threshold
    edit(book, positions("100200"))  # 0.2 % from the reference: one alert
    wait_for(lambda: len(receiver.received) >= 1, 10, "the webhook")
    seen_at = cycles(daemon)
    wait_for(lambda: cycles(daemon) >= seen_at + 3, 10, "three more cycles")  # no second alert
    (event,) = receiver.received
    assert (event["kind"], event["reference"], event["equity"]) == ("threshold", "100000", "100200")
    assert event["snapshot"]["book"] == "ops"
    assert receiver.bad_signatures == 0
    code, took = daemon.terminate()
    assert code == 0
    assert took < 5
    assert len(receiver.received) == 1


def test_a_receiver_that_was_down_gets_every_event_even_across_a_restart(
    world: tuple[DaemonProcess, Receiver, Path],
) -> None:
    daemon, receiver, book = world
    daemon.start()
    wait_for(lambda: ready(daemon), 10, "readiness")
    edit(book, positions("101000"))
    wait_for(lambda: "webhook_failed" in daemon.log.read_text(), 10, "a failed delivery")
    code, _ = daemon.terminate()
    assert code == 0

    edit(book, positions("102000"))  # a move while the daemon is down
    daemon.start()
    receiver.start()
    wait_for(lambda: len(receiver.received) >= 2, 15, "both events")
    first, second = receiver.received
    assert (first["reference"], first["equity"]) == ("100000", "101000")
    assert (second["reference"], second["equity"]) == ("101000", "102000")
    assert first["id"] != second["id"]
    assert daemon.terminate()[0] == 0


def test_readyz_flips_when_a_venue_goes_stale_and_back(
    world: tuple[DaemonProcess, Receiver, Path],
) -> None:
    daemon, receiver, book = world
    receiver.start()
    daemon.start()
    wait_for(lambda: ready(daemon), 10, "readiness")
    book.unlink()
    wait_for(lambda: not ready(daemon), 10, "readiness to drop")
    reasons = daemon.get("/readyz").json()["reasons"]
    assert any("ops: incomplete (failed_venue ops)" in reason for reason in reasons)
    wait_for(lambda: any(e["kind"] == "incomplete" for e in receiver.received), 10, "alert")
    edit(book, positions("100000"))
    wait_for(lambda: ready(daemon), 10, "readiness to return")
    wait_for(lambda: any(e["kind"] == "recovered" for e in receiver.received), 10, "recovery")
    assert [e["kind"] for e in receiver.received] == ["incomplete", "recovered"]
    assert daemon.terminate()[0] == 0


def test_systemd_hears_ready_watchdog_and_stopping(
    world: tuple[DaemonProcess, Receiver, Path], tmp_path: Path
) -> None:
    daemon, _, book = world
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(address))
        systemd.settimeout(10)
        daemon.start(NOTIFY_SOCKET=str(address))
        assert systemd.recv(64) == b"READY=1"
        edit(book, positions("100001"))  # a change makes a cycle at once
        assert systemd.recv(64) == b"WATCHDOG=1"
        code, took = daemon.terminate(signal.SIGINT)  # Ctrl-C stops it as cleanly as SIGTERM
        assert code == 0
        assert took < 5
        messages = []
        while (message := systemd.recv(64)) != b"STOPPING=1":
            messages.append(message)
        assert set(messages) <= {b"WATCHDOG=1"}
