"""The strategy's two ways in: `EquityTracker` in-process and `EquityClient` over HTTP."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from blockbuster import blockbuster_ctx
from structlog.testing import capture_logs

from equity_daemon.api import EquityTracker, IncompleteEquity, StaleEquity
from equity_daemon.client import EquityClient
from equity_daemon.history import History
from equity_daemon.http import Api, serve
from equity_daemon.monitor import Event
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import Settings
from tests.reports import Clock

pytestmark = pytest.mark.anyio

DEMO_PRICES = [
    {"base": "ETH", "quote": "USDT", "sources": ["demo"]},
    {"base": "wstETH", "quote": "stETH", "sources": ["demo"]},
    {"base": "stETH", "quote": "ETH", "sources": ["demo"]},
]


def settings(tmp_path: Path) -> Settings:
    basis = {
        "share_class": "USDT",
        "venues": [{"kind": "demo", "name": "demo", "interval_seconds": 60, "seed": 1}],
        "prices": DEMO_PRICES,
    }
    ops = {
        "share_class": "USDT",
        "venues": [{"kind": "manual", "name": "ops", "path": str(tmp_path / "missing.toml")}],
    }
    return Settings.model_validate(
        {
            "books": {"basis": basis, "ops": ops},
            "http": {"port": 0, "bearer_token": "t0ken"},
            "history_path": tmp_path / "history.sqlite3",
        }
    )


async def test_the_tracker_reads_the_latest_snapshot_and_the_client_the_same_over_http(
    tmp_path: Path,
) -> None:
    events: list[Event] = []

    async def on_event(event: Event) -> None:
        events.append(event)

    with capture_logs():
        async with anyio.create_task_group() as tg:
            tracker = await EquityTracker.start(tg, settings(tmp_path), [on_event])
            tracker.add_callback(events.append)  # later additions work too
            equity = tracker.equity("basis")
            assert equity == Decimal("512500.5")
            assert tracker.by_venue("basis") == {"demo": equity}
            assert set(tracker.by_asset("basis")) == {"USDT", "wstETH"}
            latest = tracker.latest("basis")
            assert latest is not None
            assert latest.sequence == 1

            with pytest.raises(IncompleteEquity, match="equity of ops is not known: ops: "):
                tracker.equity("ops")
            with pytest.raises(LookupError, match="several books"):
                tracker.latest()
            with pytest.raises(LookupError, match="no book named 'nope'"):
                tracker.latest("nope")

            port = tracker.port
            async with EquityClient(f"http://127.0.0.1:{port}", token="t0ken") as client:
                assert await client.equity("basis") == equity
                with pytest.raises(IncompleteEquity):
                    await client.equity("ops")
                with pytest.raises(IncompleteEquity, match="no snapshot yet"):
                    await client.equity("elsewhere")
                # ops has not reported since the start, within its max age: unknown, no event
                assert await client.events() == []
                assert await client.events(since="2999-01-01T00:00:00+00:00") == []
                (ops,) = [doc for doc in await client.snapshots() if doc["book"] == "ops"]
                assert (ops["equity"], ops["unreported"]) == (None, ["ops"])
            tg.cancel_scope.cancel()
    assert events == []


async def test_a_single_book_needs_no_name(tmp_path: Path) -> None:
    config = settings(tmp_path)
    single = config.model_copy(update={"books": {"basis": config.books["basis"]}})
    with capture_logs():
        async with anyio.create_task_group() as tg:
            tracker = await EquityTracker.start(tg, single)
            assert tracker.equity() == Decimal("512500.5")
            tg.cancel_scope.cancel()


async def test_the_running_daemon_never_blocks_its_event_loop(tmp_path: Path) -> None:
    """SQLite, files and sockets all go through threads or anyio: blockbuster would say."""
    config = settings(tmp_path)
    (tmp_path / "missing.toml").write_text('[[positions]]\nasset = "USDT"\namount = "5"\n')
    ops = config.books["ops"].model_copy(update={"venue_max_age_seconds": 60.0})
    config = config.model_copy(update={"books": {**config.books, "ops": ops}})
    with capture_logs(), blockbuster_ctx():
        async with anyio.create_task_group() as tg:
            tracker = await EquityTracker.start(tg, config)
            async with EquityClient(f"http://127.0.0.1:{tracker.port}", token="t0ken") as client:
                assert await client.equity("ops") == 5
                assert await client.events() == []
            tg.cancel_scope.cancel()


async def test_a_snapshot_older_than_its_max_age_is_stale_equity_in_process_and_over_http(
    tmp_path: Path,
) -> None:
    clock = Clock()
    config = settings(tmp_path)
    single = config.model_copy(update={"books": {"basis": config.books["basis"]}})
    daemon = Daemon(single, clock)
    history = await History.open(tmp_path / "h.sqlite3")
    await daemon.fetch_all_once()
    with capture_logs():
        await daemon.cycle(history)
    tracker = EquityTracker(daemon, port=0)
    assert tracker.equity() == Decimal("512500.5")
    clock.now += timedelta(seconds=120)  # 2 × interval: still usable
    assert tracker.by_venue() == {"demo": Decimal("512500.5")}
    clock.now += timedelta(days=1)  # the calculator loop stopped a day ago
    for read in (tracker.equity, tracker.by_venue, tracker.by_asset):
        with pytest.raises(StaleEquity, match="equity of basis is 86520s old"):
            read()

    api = Api(daemon, None)
    with capture_logs():
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve, api, "127.0.0.1", 0)
            async with EquityClient(f"http://127.0.0.1:{port}") as client:
                (doc,) = await client.snapshots()
                assert (doc["stale"], doc["age_seconds"]) == (True, 86520.0)
                for call in (client.equity, client.by_venue, client.by_asset):
                    with pytest.raises(StaleEquity, match="limit 120s"):
                        await call("basis")
            tg.cancel_scope.cancel()
    await history.aclose()


async def test_an_embedded_daemon_whose_cycles_fail_never_ends_the_hosts_task_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Daemon, *args: object) -> None:
        raise RuntimeError("bug in a cycle")

    config = settings(tmp_path)
    config = config.model_copy(update={"interval_seconds": 0.05})
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tracker = await EquityTracker.start(tg, config)
            monkeypatch.setattr(Daemon, "cycle", broken)
            await anyio.sleep(0.3)  # several failing cycles
            assert tracker.latest("basis") is not None
            tg.cancel_scope.cancel()
    failures = [entry for entry in logs if entry["event"] == "cycle_failed"]
    assert len(failures) == 1
