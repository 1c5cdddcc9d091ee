"""The command line: once, history, --version, and the exit codes README documents."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.cli import EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, main
from equity_daemon.history import History, HistoryDB
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import load_settings
from tests.events import threshold_cycles
from tests.reports import NOW, Clock

DEMO = Path(__file__).parents[1] / "config" / "demo.toml"


def manual_config(tmp_path: Path, positions: str) -> Path:
    (tmp_path / "ops.toml").write_text(positions)
    config = tmp_path / "equity.toml"
    config.write_text(
        f"""
history_path = "{tmp_path / "history.sqlite3"}"
[books.ops]
share_class = "ETH"
[[books.ops.venues]]
kind = "manual"
name = "ops"
path = "{tmp_path / "ops.toml"}"
"""
    )
    return config


def test_once_prints_a_readable_table_of_the_demo_book(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["once", "--config", str(DEMO)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "book demo  #1" in out
    assert "complete" in out
    assert "equity                      512,500.50 USDT" in out
    assert "hedge      demo      ETH               -120 short" in out


def test_once_json_is_the_snapshot_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["once", "--format", "json", "--config", str(DEMO)]) == EXIT_OK
    (book,) = json.loads(capsys.readouterr().out)["books"]
    assert (book["book"], book["equity"], book["complete"]) == ("demo", "512500.5", True)
    # /snapshot's freshness too: age, the limit and whether it is stale (they were missing)
    assert book["age_seconds"] >= 0
    assert (book["stale_after_seconds"], book["stale"]) == (120, False)
    daemon = Daemon(load_settings(DEMO))
    with capture_logs():
        anyio.run(daemon.preview)
    (served,) = daemon.snapshots()
    assert served.keys() == book.keys()


def test_once_exits_3_and_names_the_problem_when_incomplete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = manual_config(tmp_path, '[[positions]]\nasset = "PEPE"\namount = "1e9"\n')
    assert main(["once", "--config", str(config)]) == EXIT_INCOMPLETE
    out = capsys.readouterr().out
    assert "INCOMPLETE" in out
    assert "problem: unpriced PEPE: no fresh price path to ETH (held on ops)" in out


def test_once_says_unknown_and_exits_3_for_a_venue_that_has_not_answered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = manual_config(tmp_path, "")
    (tmp_path / "ops.toml").unlink()  # the venue cannot be read: nothing is known of it
    assert main(["once", "--config", str(config)]) == EXIT_INCOMPLETE
    out = capsys.readouterr().out
    assert "INCOMPLETE, EQUITY UNKNOWN" in out
    assert "  equity                         unknown ETH\n" in out
    assert "    unknown: ops has not reported since the daemon started\n" in out
    assert "0.000000" not in out
    assert main(["once", "--format", "json", "--config", str(config)]) == EXIT_INCOMPLETE
    (book,) = json.loads(capsys.readouterr().out)["books"]
    assert (book["equity"], book["equity_is_partial"], book["unreported"]) == (None, True, ["ops"])
    assert book["equity_by_venue"] == {"ops": None}


def test_once_records_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = manual_config(tmp_path, '[[positions]]\nasset = "ETH"\namount = "2"\n')
    assert main(["once", "--config", str(config)]) == EXIT_OK
    assert not (tmp_path / "history.sqlite3").exists()


def test_the_config_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EQUITY_DAEMON_CONFIG", str(DEMO))
    assert main(["check-config"]) == EXIT_OK
    assert capsys.readouterr().out == "config ok: 1 book(s), 1 venue(s)\n"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("equity-daemon 0.")


def test_history_needs_times_with_an_offset(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["history", "--config", str(DEMO), "--since", "2026-11-25T00:00"])
    assert stop.value.code == EXIT_USAGE
    assert "needs a UTC offset" in capsys.readouterr().err


def test_history_exports_csv_and_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = manual_config(tmp_path, '[[positions]]\nasset = "ETH"\namount = "2.5"\n')
    settings = load_settings(config)

    async def three_cycles() -> None:
        clock = Clock()
        daemon = Daemon(settings, clock)
        history = await History.open(settings.history_path)
        await daemon.fetch_all_once()
        for _ in range(3):
            await daemon.cycle(history)
            clock.now += timedelta(minutes=1)  # one recorded snapshot per interval
        await history.aclose()

    with capture_logs():
        anyio.run(three_cycles)
    assert main(["history", "--config", str(config)]) == EXIT_OK
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "book,sequence,at,share_class,equity,total_assets,total_debt,complete"
    assert [row.split(",")[1] for row in rows[1:]] == ["1", "2", "3"]
    assert rows[1].split(",")[4] == "2.5"

    args = ["history", "--config", str(config), "--format", "jsonl", "--since", "2000-01-01T00:00Z"]
    assert main([*args, "--book", "ops", "--until", "2999-01-01T00:00+00:00"]) == EXIT_OK
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [doc["sequence"] for doc in docs] == [1, 2, 3]
    assert docs[0]["equity"] == "2.5"


def test_history_of_a_book_that_does_not_exist_exits_2_naming_the_books(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = manual_config(tmp_path, '[[positions]]\nasset = "ETH"\namount = "2.5"\n')
    assert main(["history", "--config", str(config), "--book", "nope"]) == EXIT_USAGE
    assert capsys.readouterr() == ("", "history: no book named 'nope' (books: ops)\n")
    assert main(["history", "--config", str(config), "--book", "ops"]) == EXIT_OK  # just empty


def test_a_taken_port_is_one_clear_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("EQUITY_DAEMON_HTTP__PORT", str(taken.getsockname()[1]))
        monkeypatch.setenv("EQUITY_DAEMON_HISTORY_PATH", str(tmp_path / "h.sqlite3"))
        assert main(["run", "--config", str(DEMO)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cannot start: cannot listen on 127.0.0.1:")
    assert "Address already in use" in err
    assert "Traceback" not in err


def test_an_unusable_history_is_one_clear_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("EQUITY_DAEMON_HISTORY_PATH", str(tmp_path / "file" / "h.sqlite3"))
    assert main(["history", "--config", str(DEMO)]) == 1
    assert capsys.readouterr().err.startswith(f"cannot start: cannot open history {tmp_path}")


def outbox_world(tmp_path: Path) -> tuple[Path, HistoryDB]:
    """Webhook `pager` is configured, `old` was: three events went to both. For `pager`, e-1 is a
    dead letter, e-2 was delivered and e-3 is pending; e-2 is a dead letter of `old` too."""
    config = manual_config(tmp_path, '[[positions]]\nasset = "ETH"\namount = "1"\n')
    with config.open("a") as text:
        text.write('[[books.ops.webhooks]]\nname = "pager"\nurl = "http://127.0.0.1:9/hook"\n')
    db = HistoryDB(tmp_path / "history.sqlite3")
    for cycle in threshold_cycles(3):
        db.record_cycle(*cycle, targets=["pager", "old"])
    db.mark_dead("e-1", "pager", 5, NOW, "HTTP 422")
    db.mark_delivered("e-2", "pager", NOW)
    db.mark_dead("e-2", "old", 5, NOW, "HTTP 404")
    return config, db


def outbox(config: Path, *args: str) -> list[str]:
    return ["outbox", args[0], "--config", str(config), *args[1:]]


def test_outbox_list_shows_pending_dead_and_orphaned_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, db = outbox_world(tmp_path)
    db.close()
    assert main(outbox(config, "list")) == EXIT_OK
    assert capsys.readouterr().out == (
        "TARGET  STATE     EVENTS\n"
        "old     dead      1\n"
        "old     orphaned  2\n"
        "pager   dead      1\n"
        "pager   pending   1\n"
        "\n"
        "TARGET  STATE     EVENT  ATTEMPTS  LAST ERROR\n"
        "old     orphaned  e-1    0         -\n"
        "old     dead      e-2    5         HTTP 404\n"
        "old     orphaned  e-3    0         -\n"
        "pager   dead      e-1    5         HTTP 422\n"
        "pager   pending   e-3    0         -\n"
    )
    assert main(outbox(config, "list", "--target", "pager", "--format", "jsonl")) == EXIT_OK
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [
        {"target": "pager", "state": "dead", "event_id": "e-1", "attempts": 5,
         "last_error": "HTTP 422"},
        {"target": "pager", "state": "pending", "event_id": "e-3", "attempts": 0,
         "last_error": None},
    ]  # fmt: skip


def test_outbox_retry_sends_dead_letters_again_but_not_to_an_unconfigured_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, db = outbox_world(tmp_path)
    assert main(outbox(config, "retry", "--target", "old")) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == (
        "outbox: 'old' is no longer a configured webhook: there is no URL to send its events to;"
        " configure it again, or drop them (outbox drop --target old)\n"
    )
    assert main(outbox(config, "retry", "--event", "e-2")) == EXIT_USAGE  # dead only for `old`
    assert capsys.readouterr().err == "outbox: no dead letter 'e-2' for a configured webhook\n"
    assert main(outbox(config, "retry", "--target", "nobody")) == EXIT_USAGE
    assert capsys.readouterr().err == (
        "outbox: no outbox target named 'nobody' (known: old, pager)\n"
    )

    assert main(outbox(config, "retry")) == EXIT_OK
    out, err = capsys.readouterr()
    assert out == "1 dead letter(s) pending again\n"
    assert err == (
        "outbox: 1 dead letter(s) of 'old' left as they are: it is no longer a configured"
        " webhook, so they cannot be sent\n"
    )
    # e-1 is first in line again, due at once, its tries counted from zero
    due = db.due_deliveries("pager", NOW - timedelta(days=365), limit=5)
    assert [(d.event_id, d.attempts) for d in due] == [("e-1", 0), ("e-3", 0)]
    assert db.outbox_backlog("pager") == 2
    db.close()


def test_an_apprise_destinations_rows_are_listed_and_retried_like_a_webhooks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = manual_config(tmp_path, '[[positions]]\nasset = "ETH"\namount = "1"\n')
    with config.open("a") as text:
        text.write('[[books.ops.apprise]]\nname = "chat"\nurl = "ntfy://127.0.0.1:9/alerts"\n')
    db = HistoryDB(tmp_path / "history.sqlite3")
    for cycle in threshold_cycles(2):
        db.record_cycle(*cycle, targets=["chat"])
    db.mark_dead("e-1", "chat", 12, NOW, "apprise failure")
    assert main(outbox(config, "list", "--target", "chat")) == EXIT_OK
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "chat    dead     e-1    12        apprise failure",
        "chat    pending  e-2    0         -",
    ]
    assert main(outbox(config, "retry", "--target", "chat")) == EXIT_OK
    assert capsys.readouterr().out == "1 dead letter(s) pending again\n"
    assert db.outbox_backlog("chat") == 2
    db.close()


def test_outbox_drop_deletes_rows_never_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, db = outbox_world(tmp_path)
    assert main(outbox(config, "drop", "--target", "old", "--dead-only")) == EXIT_OK
    assert capsys.readouterr().out == "1 row(s) of 'old' dropped; the events stay in history\n"
    assert main(outbox(config, "drop", "--target", "old", "--event", "e-2")) == EXIT_USAGE
    assert capsys.readouterr().err == "outbox: no undelivered event 'e-2' for 'old'\n"
    assert main(outbox(config, "drop", "--target", "old", "--event", "e-3")) == EXIT_OK
    assert main(outbox(config, "drop", "--target", "pager", "--dead-only")) == EXIT_OK
    capsys.readouterr()
    assert [(row.target, row.event_id) for row in db.undelivered()] == [
        ("old", "e-1"),
        ("pager", "e-3"),
    ]
    assert main(outbox(config, "drop", "--target", "old")) == EXIT_OK
    assert main(outbox(config, "drop", "--target", "pager")) == EXIT_OK
    capsys.readouterr()
    assert main(outbox(config, "list")) == EXIT_OK
    assert capsys.readouterr().out == "nothing undelivered\n"
    assert [event["id"] for event in db.events()] == ["e-1", "e-2", "e-3"]
    db.close()
    with pytest.raises(SystemExit) as stop:
        main(outbox(config, "drop"))  # which target's rows, it must be told
    assert stop.value.code == EXIT_USAGE


def test_outbox_commands_exit_1_when_history_cannot_be_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("EQUITY_DAEMON_HISTORY_PATH", str(tmp_path / "file" / "h.sqlite3"))
    for action in ("list", "retry"):
        assert main(["outbox", action, "--config", str(DEMO)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"cannot start: cannot open history {tmp_path}")
        assert len(err.splitlines()) == 1
