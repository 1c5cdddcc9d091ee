"""The daemon's cycle, readiness and health, driven directly with an injected clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from equity_daemon.history import History
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import Settings
from tests.reports import NOW, Clock

pytestmark = pytest.mark.anyio


def daemon_for(tmp_path: Path, clock: Clock) -> Daemon:
    (tmp_path / "ops.toml").write_text('[[positions]]\nasset = "USDT"\namount = "1000"\n')
    settings = Settings.model_validate(
        {
            "interval_seconds": 60,
            "books": {
                "ops": {
                    "share_class": "USDT",
                    "venues": [{"kind": "manual", "name": "ops", "path": tmp_path / "ops.toml"}],
                    "webhooks": [{"name": "pager", "url": "http://127.0.0.1:9/hook"}],
                }
            },
        }
    )
    return Daemon(settings, clock)


async def test_a_threshold_event_is_logged_recorded_and_queued_for_the_webhook(
    tmp_path: Path,
) -> None:
    clock = Clock()
    daemon = daemon_for(tmp_path, clock)
    history = await History.open(tmp_path / "h.sqlite3")
    await daemon.fetch_all_once()
    await daemon.cycle(history)
    (tmp_path / "ops.toml").write_text('[[positions]]\nasset = "USDT"\namount = "1002"\n')
    await daemon.fetch_all_once()
    with capture_logs() as logs:
        (event,) = await daemon.cycle(history)
    logged = [entry for entry in logs if entry["event"] == "equity_event"]
    assert [(e["kind"], e["reference"], e["equity"]) for e in logged] == [
        ("threshold", "1000", "1002")
    ]
    assert logged[0]["event_id"] == event.id
    assert await history.outbox_backlog("pager") == 1
    assert [e["id"] for e in await history.events()] == [event.id]
    await history.aclose()


async def test_ready_needs_a_complete_and_fresh_snapshot_of_every_book(tmp_path: Path) -> None:
    clock = Clock()
    daemon = daemon_for(tmp_path, clock)
    assert daemon.ready() == (False, ["ops: no snapshot yet"])
    assert daemon.healthy() == (True, "starting")
    history = await History.open(tmp_path / "h.sqlite3")
    await daemon.fetch_all_once()
    with capture_logs():
        await daemon.cycle(history)
    assert daemon.ready() == (True, [])
    assert daemon.healthy() == (True, "ok")

    clock.now = NOW + timedelta(seconds=121)
    assert daemon.ready() == (False, ["ops: snapshot is 121s old"])
    clock.now = NOW + timedelta(seconds=211)
    assert daemon.healthy() == (False, "calculator loop silent for 211s")

    (tmp_path / "ops.toml").unlink()
    clock.now = NOW + timedelta(minutes=10)
    await daemon.fetch_all_once()
    with capture_logs():
        await daemon.cycle(history)
    ready, reasons = daemon.ready()
    assert not ready
    assert reasons == ["ops: incomplete (failed_venue ops)"]
    await history.aclose()


async def test_preview_values_without_history(tmp_path: Path) -> None:
    daemon = daemon_for(tmp_path, Clock())
    (snap,) = await daemon.preview()
    assert snap.complete
    assert await daemon.events(None) == []
    with pytest.raises(LookupError):
        daemon.latest("nope")
