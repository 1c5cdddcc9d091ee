"""Operations glue: sd_notify datagrams and the Docker health check."""

from __future__ import annotations

import socket
from datetime import datetime
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon import healthcheck, systemd
from equity_daemon.http import Api, serve
from equity_daemon.model import EquityPoint


def test_notify_does_nothing_without_a_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_notify_sends_a_datagram_to_the_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert systemd.notify("READY=1") is True
        assert server.recv(64) == b"READY=1"


def test_notify_understands_the_abstract_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"equity-daemon-test-{id(monkeypatch)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        systemd.notify("WATCHDOG=1")
        assert server.recv(64) == b"WATCHDOG=1"


class Healthy:
    def metrics(self) -> tuple[bytes, str]:
        return b"", "text/plain"

    def healthy(self) -> tuple[bool, str]:
        return True, "ok"

    def ready(self) -> tuple[bool, list[str]]:
        return True, []

    def snapshots(self) -> list[dict[str, object]]:
        return []

    def exchange_bans(self) -> dict[str, datetime]:
        return {}

    def book_names(self) -> list[str]:
        return []

    async def events(
        self,
        since: object,
        book: str | None = None,
        limit: int | None = None,
        kind: str | None = None,
    ) -> list[dict[str, object]]:
        return []

    async def equity_history(
        self, book: str, since: object, points: int | None = None
    ) -> list[EquityPoint]:
        return []

    async def equity_baseline(self, book: str, at: object) -> EquityPoint | None:
        return None


@pytest.mark.anyio
async def test_the_health_check_asks_healthz() -> None:
    with capture_logs():
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve, Api(Healthy(), None), "127.0.0.1", 0)
            assert await anyio.to_thread.run_sync(healthcheck.check, port)
            tg.cancel_scope.cancel()
    assert await anyio.to_thread.run_sync(healthcheck.check, port, 0.5) is False


def test_the_health_check_command_fails_when_nothing_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("EQUITY_DAEMON_HTTP__PORT", str(port))
    assert healthcheck.main() == 1


def test_the_healthcheck_probes_the_port_of_the_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "equity.toml"
    config.write_text("[http]\nport = 9800\n")
    monkeypatch.delenv("EQUITY_DAEMON_HTTP__PORT", raising=False)
    monkeypatch.setenv("EQUITY_DAEMON_CONFIG", str(config))
    assert healthcheck.configured_port() == 9800
    monkeypatch.setenv("EQUITY_DAEMON_HTTP__PORT", "9801")  # the environment wins, as in the daemon
    assert healthcheck.configured_port() == 9801
    monkeypatch.delenv("EQUITY_DAEMON_HTTP__PORT")
    config.write_text("not toml [")
    assert healthcheck.configured_port() == healthcheck.DEFAULT_PORT
