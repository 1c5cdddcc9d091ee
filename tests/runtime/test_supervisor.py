"""The daemon's cycle, readiness and health, driven directly with an injected clock."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from structlog.testing import capture_logs

from equity_daemon import notify
from equity_daemon.errors import HistoryUnavailable
from equity_daemon.history import History
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import Settings
from equity_daemon.venues.demo import DemoVenue
from tests.integration.processes import Receiver, free_port
from tests.reports import NOW, Clock
from tests.test_notify import eventually

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


async def test_each_snapshot_document_says_where_the_next_alert_fires(tmp_path: Path) -> None:
    clock = Clock()
    daemon = daemon_for(tmp_path, clock)
    history = await History.open(tmp_path / "h.sqlite3")
    with capture_logs():
        for equity in ("1000", "1000.5", "1002"):  # sets the reference, stays, alerts
            (tmp_path / "ops.toml").write_text(
                f'[[positions]]\nasset = "USDT"\namount = "{equity}"\n'
            )
            await daemon.fetch_all_once()
            await daemon.cycle(history)
            clock.now += timedelta(minutes=1)
    (doc,) = daemon.snapshots()
    assert doc["alert_band"] == {
        "reference": "1002",  # the alert's equity
        "reference_at": (NOW + timedelta(minutes=2)).isoformat(),
        "threshold_percent": "0.1",
        "threshold_floor": "0",
        "distance": "1.002",
        "low": "1000.998",
        "high": "1003.002",
    }
    await history.aclose()


async def test_a_quiet_cycle_logs_at_debug_and_a_change_at_info(tmp_path: Path) -> None:
    clock = Clock()
    daemon = daemon_for(tmp_path, clock)
    history = await History.open(tmp_path / "h.sqlite3")
    await daemon.fetch_all_once()

    async def cycle_levels() -> list[str]:
        with capture_logs() as logs:
            await daemon.cycle(history)
        clock.now += timedelta(seconds=60)
        return [entry["log_level"] for entry in logs if entry["event"] == "cycle"]

    assert await cycle_levels() == ["info"]  # the first
    assert await cycle_levels() == ["debug"]  # nothing changed: every minute, all day long
    (tmp_path / "ops.toml").write_text('[[positions]]\nasset = "PEPE"\namount = "1"\n')
    await daemon.fetch_all_once()
    assert await cycle_levels() == ["info"]  # incomplete now (PEPE has no price)
    assert await cycle_levels() == ["debug"]
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
    assert await daemon.equity_history("ops", NOW) == []
    with pytest.raises(LookupError):
        daemon.latest("nope")


async def test_equity_history_reads_the_recorded_snapshots_of_one_book(tmp_path: Path) -> None:
    clock = Clock()
    daemon = daemon_for(tmp_path, clock)
    history = await History.open(tmp_path / "h.sqlite3")
    daemon.history = history  # as run() does
    await daemon.fetch_all_once()
    with capture_logs():
        await daemon.cycle(history)
        (tmp_path / "ops.toml").unlink()
        clock.now = NOW + timedelta(minutes=10)
        await daemon.fetch_all_once()
        await daemon.cycle(history)
    points = await daemon.equity_history("ops", NOW - timedelta(hours=24))
    assert [(p.at, p.equity, p.complete) for p in points] == [
        (NOW, Decimal(1000), True),
        (NOW + timedelta(minutes=10), Decimal(1000), False),  # the last good report, incomplete
    ]
    assert len(await daemon.equity_history("ops", NOW + timedelta(minutes=1))) == 1
    assert await daemon.equity_history("elsewhere", NOW) == []
    await history.aclose()


def two_books(tmp_path: Path, clock: Clock, **ops: object) -> Daemon:
    for name in ("ops", "carry"):
        (tmp_path / f"{name}.toml").write_text('[[positions]]\nasset = "USDT"\namount = "1000"\n')
    book = {"share_class": "USDT", "webhooks": [{"name": "pager", "url": "http://127.0.0.1:9/h"}]}
    settings = Settings.model_validate(
        {
            "interval_seconds": 60,
            "books": {
                name: {
                    **book,
                    "webhooks": [{"name": f"{name}-pager", "url": "http://127.0.0.1:9/h"}],
                    "venues": [{"kind": "manual", "name": name, "path": tmp_path / f"{name}.toml"}],
                    **(ops if name == "ops" else {}),
                }
                for name in ("ops", "carry")
            },
        }
    )
    return Daemon(settings, clock)


async def running(tmp_path: Path, **ops: object) -> tuple[Clock, Daemon, History]:
    """Two books after their first cycle."""
    clock = Clock()
    daemon = two_books(tmp_path, clock, **ops)
    history = await History.open(tmp_path / "h.sqlite3")
    await daemon.fetch_all_once()
    with capture_logs():
        await daemon.cycle(history)
    return clock, daemon, history


def set_amount(tmp_path: Path, name: str, amount: str) -> None:
    (tmp_path / f"{name}.toml").write_text(f'[[positions]]\nasset = "USDT"\namount = "{amount}"\n')


async def test_a_cycle_that_raises_makes_its_book_incomplete_and_the_other_books_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, daemon, history = await running(tmp_path)
    ops = daemon.books[0]

    def broken(*args: object) -> None:
        raise ArithmeticError("a bug in the arithmetic")

    monkeypatch.setattr(ops.tracker, "judge", broken)
    with capture_logs() as logs:
        events = await daemon.cycle(history)
        await daemon.cycle(history)
    assert [(e.book, e.kind.value) for e in events] == [("ops", "incomplete")]
    snap = daemon.latest("ops")
    assert snap is not None
    assert snap.equity == 1000  # the last figures, never a drop
    (problem,) = snap.problems
    assert (problem.kind.value, problem.subject) == ("cycle_failed", "ops")
    assert "ArithmeticError: a bug in the arithmetic" in problem.detail
    carry = daemon.latest("carry")
    assert carry is not None
    assert (carry.complete, carry.sequence) == (True, 3)
    failures = [entry for entry in logs if entry["event"] == "cycle_failed"]
    assert len(failures) == 1  # with its traceback once, not once per cycle
    assert "exc_info" in failures[0]
    errors = daemon.instruments.registry.get_sample_value
    assert errors("equity_daemon_cycle_errors_total", {"book": "ops", "stage": "calculate"}) == 2
    assert "ops: cycle failing (ArithmeticError: a bug in the arithmetic)" in daemon.ready()[1]
    await history.aclose()


class RefusingHistory(History):
    """A history whose writes fail while `refusing` (a backup holds the lock, the disk is full)."""

    refusing = False

    async def record_cycle(self, *args: Any, **kwargs: Any) -> None:
        if self.refusing:
            raise HistoryUnavailable("database is locked")
        await super().record_cycle(*args, **kwargs)


async def test_history_unavailable_keeps_computing_and_writes_the_events_in_order_later(
    tmp_path: Path,
) -> None:
    clock = Clock()
    daemon = two_books(tmp_path, clock)
    history = RefusingHistory((await History.open(tmp_path / "h.sqlite3"))._db)
    await daemon.fetch_all_once()
    with capture_logs():
        await daemon.cycle(history)

    history.refusing = True
    raised = []
    with capture_logs() as logs:
        for amount in ("1100", "1200"):
            set_amount(tmp_path, "ops", amount)
            await daemon.fetch_all_once()
            raised += await daemon.cycle(history)
    assert [e.kind.value for e in raised] == ["threshold", "threshold"]
    assert daemon.latest("ops").equity == 1200  # type: ignore[union-attr]  # still computing
    assert daemon.ready() == (False, ["history unavailable: database is locked"])
    assert [e["event"] for e in logs].count("history_unavailable") == 1
    assert daemon._book_views()[0].unwritten_events == 2
    assert await history.outbox_backlog("ops-pager") == 0

    history.refusing = False
    with capture_logs():
        await daemon.cycle(history)  # nothing new happens: the kept events are written now
    stored = await history.events()
    assert [e["id"] for e in stored] == [e.id for e in raised]  # same ids, same order
    assert await history.outbox_backlog("ops-pager") == 2
    assert daemon.ready() == (True, [])
    assert (await history.load_reference("ops")).equity == 1200
    await history.aclose()


async def test_snapshots_are_recorded_once_per_record_interval_unless_something_happens(
    tmp_path: Path,
) -> None:
    clock = Clock()
    daemon = two_books(tmp_path, clock, record_interval_seconds=30)
    history = await History.open(tmp_path / "h.sqlite3")
    with capture_logs():
        for step in range(12):  # a change every 5 s, each below the threshold
            set_amount(tmp_path, "ops", f"1000.{step:02d}")
            await daemon.fetch_all_once()
            await daemon.cycle(history)
            clock.now += timedelta(seconds=5)
        assert daemon.latest("ops").equity == Decimal("1000.11")  # type: ignore[union-attr]
        recorded = [s["sequence"] for s in await history.snapshots("ops")]
        assert recorded == [1, 7]
        set_amount(tmp_path, "ops", "2000")  # an event is always recorded with its snapshot
        await daemon.fetch_all_once()
        await daemon.cycle(history)
        (tmp_path / "ops.toml").unlink()  # so is a change of completeness
        clock.now += timedelta(minutes=10)
        await daemon.fetch_all_once()
        await daemon.cycle(history)
    recorded = [s["sequence"] for s in await history.snapshots("ops")]
    assert recorded == [1, 7, 13, 14]
    await history.aclose()


@pytest.mark.parametrize("step", [timedelta(hours=1), -timedelta(hours=1)])
async def test_a_wall_clock_step_neither_marks_venues_stale_nor_fires_incomplete(
    tmp_path: Path, step: timedelta
) -> None:
    clock, daemon, history = await running(tmp_path)
    with capture_logs():
        clock.now += timedelta(seconds=10)
        clock.step(step)
        events = await daemon.cycle(history)
    assert events == []
    snap = daemon.latest("ops")
    assert snap is not None
    assert snap.complete
    assert snap.venues[0].age == timedelta(seconds=10)
    assert daemon.ready() == (True, [])
    assert daemon.healthy() == (True, "ok")
    await history.aclose()


async def test_a_quote_only_change_in_a_file_venue_wakes_the_calculator(tmp_path: Path) -> None:
    clock = Clock()
    daemon = two_books(tmp_path, clock)
    text = '[[positions]]\nasset = "USDT"\namount = "1"\n[[quotes]]\nbase = "GHO"\nquote = "USDT"\n'
    (tmp_path / "ops.toml").write_text(text + 'rate = "1"\n')
    await daemon.fetch_all_once()
    assert daemon.store.changed._event.is_set()
    await daemon.store.changed.wait()
    (tmp_path / "ops.toml").write_text(text + 'rate = "0.9"\n')
    await daemon.fetch_all_once()
    assert daemon.store.changed._event.is_set()


async def test_the_demo_book_under_default_settings_fires_no_threshold_in_an_hour_without_funding(
    tmp_path: Path,
) -> None:
    """A delta-neutral book: a price older than the positions it values would be a false alert."""
    clock = Clock()
    settings = Settings.model_validate(
        {
            "books": {
                "demo": {
                    "share_class": "USDT",
                    "venues": [{"kind": "demo", "name": "demo", "seed": 7, "funding_per_step": 0}],
                    "prices": [
                        {"base": "ETH", "quote": "USDT", "sources": ["demo"]},
                        {"base": "wstETH", "quote": "stETH", "sources": ["demo"]},
                        {"base": "stETH", "quote": "ETH", "sources": ["demo"]},
                    ],
                }
            },
            "history_path": tmp_path / "h.sqlite3",
        }
    )
    daemon = Daemon(settings, clock)
    (venue,) = daemon.books[0].venues
    assert isinstance(venue, DemoVenue)
    history = await History.open(settings.history_path)
    events = []
    with capture_logs():
        await daemon.fetch_all_once()
        await daemon.cycle(history)
        for step in range(720):  # an hour of 5 s steps; the calculator runs on each push
            venue.step()
            daemon.store.update(await venue.fetch())
            clock.now += timedelta(seconds=5)
            if step % 3 == 0:  # and on its own tick, whenever that falls
                clock.now += timedelta(seconds=1)
            events += await daemon.cycle(history)
    assert venue.market.eth_usdt != Decimal(3000)
    assert [e.kind.value for e in events] == []
    await history.aclose()


async def test_a_failing_quote_is_named_in_the_snapshot(tmp_path: Path) -> None:
    _, daemon, history = await running(
        tmp_path, prices=[{"base": "GHO", "quote": "USDT", "sources": ["ops"]}]
    )
    snap = daemon.latest("ops")
    assert snap is not None
    assert [(f.edge, f.source, f.reason) for f in snap.quote_failures] == [
        ("GHO/USDT", "ops", "LookupError: ops.toml has no rate for GHO/USDT")
    ]
    assert snap.complete  # nothing held in GHO: a failed source alone is no gap
    await history.aclose()


async def test_a_history_locked_by_another_connection_is_reported_and_caught_up(
    tmp_path: Path,
) -> None:
    """A backup or an operator's `sqlite3` shell holds the lock past the busy timeout."""
    clock = Clock()
    daemon = two_books(tmp_path, clock)
    path = tmp_path / "h.sqlite3"
    history = await History.open(path, busy_timeout_ms=50)
    await daemon.fetch_all_once()
    with capture_logs():
        await daemon.cycle(history)
    shell = sqlite3.connect(path, isolation_level=None)
    shell.execute("BEGIN EXCLUSIVE")
    set_amount(tmp_path, "ops", "1500")
    await daemon.fetch_all_once()
    with capture_logs():
        (event,) = await daemon.cycle(history)
    assert daemon.ready() == (False, ["history unavailable: database is locked"])
    assert daemon.latest("ops").equity == 1500  # type: ignore[union-attr]
    shell.execute("ROLLBACK")
    shell.close()
    with capture_logs():
        assert await daemon.cycle(history) == []
    assert [e["id"] for e in await history.events()] == [event.id]
    assert daemon.ready() == (True, [])
    await history.aclose()


def test_a_file_venue_is_polled_without_backoff_and_a_remote_one_with(tmp_path: Path) -> None:
    daemon = two_books(tmp_path, Clock())
    assert [poller.policy.backoff for poller in daemon.pollers] == [False, False]
    demo = Settings.model_validate(
        {"books": {"d": {"share_class": "USDT", "venues": [{"kind": "demo", "name": "d"}]}}}
    )
    assert [poller.policy.backoff for poller in Daemon(demo, Clock()).pollers] == [True]


async def test_a_change_after_a_quiet_spell_is_computed_at_once_and_a_burst_is_paced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push must reach the webhook in milliseconds, not after a fixed debounce; the pushes of
    a burst that follows it are computed together, no sooner than `debounce_seconds` later."""
    clock = Clock()
    daemon = two_books(tmp_path, clock)
    daemon.settings = daemon.settings.model_copy(update={"debounce_seconds": 1.0})
    history = await History.open(tmp_path / "h.sqlite3")
    cycles: list[float] = []

    async def counted(history: object, tg: object) -> None:
        cycles.append(anyio.current_time())

    monkeypatch.setattr(daemon, "_cycle_guarded", counted)
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon._calculate_forever, history, tg)
        await anyio.sleep(0.05)
        pushed = anyio.current_time()
        daemon.store.changed.pull()
        await anyio.sleep(0.2)
        assert len(cycles) == 1
        assert cycles[0] - pushed < 0.1  # at once
        for _ in range(5):  # a burst right after it
            daemon.store.changed.pull()
            await anyio.sleep(0.05)
        await anyio.sleep(1.2)
        tg.cancel_scope.cancel()
    assert len(cycles) == 2  # the burst is one more cycle...
    assert cycles[1] - cycles[0] >= 1.0  # ...once the window has passed
    await history.aclose()


def equity(daemon: Daemon) -> Decimal | None:
    latest = daemon.latest()
    return None if latest is None else latest.equity


async def test_events_held_through_a_history_outage_reach_the_webhook_once_they_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A threshold event raised while a backup holds the database is kept in memory; the cycle
    that writes it once the lock is gone wakes the delivery loop, which otherwise would look
    again only at its idle look (60 s). Here the idle look is an hour: only the wake-up can
    deliver it while the test waits."""
    monkeypatch.setattr(notify, "IDLE_LOOK", 3600.0, raising=False)
    receiver = Receiver(free_port(), "s3")
    receiver.start()
    path = tmp_path / "h.sqlite3"
    set_amount(tmp_path, "ops", "1000")
    venue = {
        "kind": "manual",
        "name": "ops",
        "path": tmp_path / "ops.toml",
        "interval_seconds": 0.1,
    }
    hook = {"name": "pager", "url": f"http://127.0.0.1:{receiver.port}/hook", "secret": "s3"}
    settings = Settings.model_validate(
        {
            "books": {"ops": {"share_class": "USDT", "venues": [venue], "webhooks": [hook]}},
            "http": {"port": 0},
            "history_path": path,
        }
    )
    daemon = Daemon(settings, Clock())
    history = await History.open(path, busy_timeout_ms=50)
    shell = sqlite3.connect(path, isolation_level=None)
    try:
        with capture_logs():
            async with anyio.create_task_group() as tg:
                await tg.start(partial(daemon.run, history, handle_signals=False))
                shell.execute("BEGIN EXCLUSIVE")  # a backup, or an operator's sqlite3 shell
                set_amount(tmp_path, "ops", "1500")
                # the cycle that raised it is over (its snapshot is the latest): the write failed
                await eventually(lambda: equity(daemon) == 1500, "the cycle of the move", 10)
                assert len(daemon.books[0].unwritten) == 1
                assert daemon.ready()[1] == ["history unavailable: database is locked"]
                shell.execute("ROLLBACK")
                assert receiver.received == []
                set_amount(tmp_path, "ops", "1500.5")  # a cycle, and no new event in it
                await eventually(lambda: bool(receiver.received), "the held event's delivery", 10)
                tg.cancel_scope.cancel()
    finally:
        shell.close()
        receiver.stop()
    (delivered,) = receiver.received
    assert (delivered["kind"], delivered["equity"]) == ("threshold", "1500")
    assert [e["id"] for e in await history.events()] == [delivered["id"]]
    assert daemon.ready()[0]
    await history.aclose()


@pytest.mark.parametrize(("open_metrics", "status"), [(False, 401), (True, 200)])
async def test_a_daemon_with_a_token_asks_for_it_on_metrics_unless_they_are_open(
    tmp_path: Path, open_metrics: bool, status: int
) -> None:
    (tmp_path / "ops.toml").write_text('[[positions]]\nasset = "USDT"\namount = "1000"\n')
    venue = {"kind": "manual", "name": "ops", "path": tmp_path / "ops.toml"}
    http = {"port": 0, "bearer_token": "s3cret", "open_metrics": open_metrics}
    settings = Settings.model_validate(
        {"books": {"ops": {"share_class": "USDT", "venues": [venue]}}, "http": http}
    )
    daemon = Daemon(settings, Clock())
    history = await History.open(tmp_path / "h.sqlite3")
    with capture_logs():
        async with anyio.create_task_group() as tg:
            port = await tg.start(partial(daemon.run, history, handle_signals=False))
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.get("/metrics")).status_code == status
                authorised = await client.get(
                    "/metrics", headers={"Authorization": "Bearer s3cret"}
                )
                assert "equity_daemon_equity{" in authorised.text
                assert (await client.get("/snapshot")).status_code == 401
            tg.cancel_scope.cancel()
    await history.aclose()
