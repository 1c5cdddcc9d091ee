"""A real daemon restarted while its only venue, a chain on anvil, cannot be reached.

The chain venue reads the fund's Aave position (412 WETH supplied, 267.5 owed: 144.5 ETH)
through the project's RPC proxy, which answers 503 while the outage lasts. Restarted during it,
the daemon does not know the equity and says so everywhere — `/snapshot`, `/metrics`, `once`,
the status page, the history — with no zero and no event; once the venue answers, the true
figure is back, still without an event.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chain import Anvil, require_anvil
from tests.integration.processes import DaemonProcess, Receiver, free_port, wait_for
from tests.integration.test_prometheus import anvil_world, staking_book
from tests.rpc_proxy import RpcProxy

pytestmark = pytest.mark.timeout(180)  # two daemon starts, anvil, a venue's retry backoff
SECRET = "webhook-signing-secret"
TRUE_EQUITY = "144.5"  # ETH: 412 WETH supplied (400 x 1.03), 267.5 owed (250 x 1.07)


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[tuple[DaemonProcess, RpcProxy, Receiver, Path]]:
    anvil = Anvil(require_anvil())
    receiver = Receiver(free_port(), SECRET)
    try:
        url, world = anvil_world(anvil)
        with RpcProxy(url) as proxy:
            config = tmp_path / "equity.toml"
            config.write_text(
                f"""
interval_seconds = 1
debounce_seconds = 0.1
history_path = "{tmp_path / "history.sqlite3"}"
"""
                + staking_book(proxy.url, world)
                + f"""
[[books.staking.webhooks]]
name = "pager"
url = "http://127.0.0.1:{receiver.port}/hook"
secret = "{SECRET}"
max_backoff_seconds = 1
"""
            )
            daemon = DaemonProcess(config, free_port(), tmp_path / "daemon.log")
            try:
                yield daemon, proxy, receiver, config
            finally:
                daemon.kill()
    finally:
        receiver.stop()
        anvil.close()


def staking(daemon: DaemonProcess) -> dict[str, Any] | None:
    books = daemon.get("/snapshot").json()["books"]
    return next((doc for doc in books if doc["book"] == "staking"), None)


def equity_samples(exposition: str) -> dict[str, float]:
    """Every equity gauge of the book (equity, assets, debt, by venue, by asset) by series."""
    names = ("equity", "assets", "debt", "venue_equity", "asset_equity")
    pattern = re.compile(rf'^equity_daemon_(?:{"|".join(names)})\{{[^}}]*book="staking"[^}}]*\}} ')
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if pattern.match(line)
    }


def once(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "equity_daemon", "once", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=config.parent,
    )


def test_a_restart_while_the_chain_venue_is_down_shows_no_zero_and_no_event_then_the_truth(
    outage: tuple[DaemonProcess, RpcProxy, Receiver, Path],
) -> None:
    daemon, proxy, receiver, config = outage
    receiver.start()
    daemon.start()
    wait_for(lambda: (staking(daemon) or {}).get("complete") is True, 30, "a complete book")
    before = staking(daemon)
    assert before is not None
    assert before["equity"] == TRUE_EQUITY
    assert daemon.terminate()[0] == 0

    proxy.mode, proxy.status = "http_error", 503  # the endpoint is down
    daemon.start()
    wait_for(lambda: (staking(daemon) or {}).get("sequence", 0) > before["sequence"], 20, "a cycle")

    down = staking(daemon)
    assert down is not None
    assert (down["equity"], down["total_assets"], down["total_debt"]) == (None, None, None)
    assert (down["complete"], down["equity_is_partial"], down["unreported"]) == (
        False,
        True,
        ["anvil"],
    )
    assert down["equity_unknown_because"] == ["anvil has not reported since the daemon started"]
    assert [p["kind"] for p in down["problems"]] == ["unreported_venue"]
    assert down["equity_by_venue"] == {"anvil": None}
    assert set(down["equity_by_asset"].values()) <= {None}

    samples = equity_samples(daemon.get("/metrics").text)
    assert 'equity_daemon_equity{book="staking",currency="ETH"}' in samples
    assert samples, "no equity gauge of the book"
    assert all(math.isnan(value) for value in samples.values()), samples
    assert 'equity_daemon_equity_unknown{book="staking"} 1.0' in daemon.get("/metrics").text

    table = once(config)
    assert table.returncode == 3, table.stderr
    assert "  equity                         unknown ETH\n" in table.stdout
    assert "unknown: anvil has not reported since the daemon started" in table.stdout
    assert "0.000000" not in table.stdout
    document = once(config, "--format", "json")
    assert document.returncode == 3
    assert '"equity": null' in document.stdout

    page = daemon.get("/").text
    assert '<div class="equity unknown">Equity unknown</div>' in page
    assert "anvil has not reported since the daemon started" in page
    assert not re.search(r"<title>[^<]*\b0\.0000", page)

    proxy.mode = "forward"  # the endpoint answers again
    wait_for(lambda: (staking(daemon) or {}).get("complete") is True, 60, "the venue to answer")
    after = staking(daemon)
    assert after is not None
    assert after["equity"] == TRUE_EQUITY
    metrics = daemon.get("/metrics").text
    assert f'equity_daemon_equity{{book="staking",currency="ETH"}} {TRUE_EQUITY}' in metrics
    assert "144.5000" in daemon.get("/").text

    assert daemon.get("/events").json()["events"] == []  # no incomplete, recovered or threshold
    assert daemon.terminate()[0] == 0
    assert receiver.received == []

    exported = subprocess.run(
        [sys.executable, "-m", "equity_daemon", "history", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    equities = [row.split(",")[4] for row in exported[1:]]
    assert (equities[0], equities[-1]) == (TRUE_EQUITY, TRUE_EQUITY)
    assert "" in equities  # the unknown snapshot: an empty cell
    assert "0" not in equities
