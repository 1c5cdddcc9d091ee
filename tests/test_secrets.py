"""A canary in every secret field never shows up anywhere a person or a program can read."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest
import structlog

from equity_daemon import logs
from equity_daemon.cli import main
from equity_daemon.history import History
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import load_settings

CANARY = "CANARY-7f3a9c"


def config(tmp_path: Path, hook_url: str = f"http://127.0.0.1:9/hook/{CANARY}") -> Path:
    path = tmp_path / "equity.toml"
    path.write_text(
        f"""
history_path = "{tmp_path / "history.sqlite3"}"
[http]
port = 0
bearer_token = "{CANARY}-token"
[books.basis]
share_class = "USDT"
venues = [{{kind = "demo", name = "demo", seed = 1}}]
prices = [
    {{base = "ETH", quote = "USDT", sources = ["demo"]}},
    {{base = "wstETH", quote = "stETH", sources = ["demo"]}},
    {{base = "stETH", quote = "ETH", sources = ["demo"]}},
]
[[books.basis.webhooks]]
name = "pager"
url = "{hook_url}"
secret = "{CANARY}-signing"
max_backoff_seconds = 1
[books.ops]
share_class = "USDT"
venues = [{{kind = "manual", name = "ops", path = "{tmp_path / "missing.toml"}"}}]
venue_max_age_seconds = 0.001
[[books.ops.webhooks]]
name = "ops-pager"
url = "{hook_url}"
secret = "{CANARY}-signing"
max_backoff_seconds = 1
"""
    )
    return path


@pytest.mark.anyio
async def test_no_log_line_metric_or_http_answer_carries_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(config(tmp_path))
    assert CANARY not in repr(settings)
    assert CANARY not in str(settings)
    logs.configure("debug", "json")
    daemon = Daemon(settings)
    history = await History.open(settings.history_path)
    answers: list[str] = []
    async with anyio.create_task_group() as tg:
        port = await tg.start(daemon.run, history)
        base = f"http://127.0.0.1:{port}"
        # the incomplete `ops` book raised an event; its delivery fails on a closed port
        logged = ""
        with anyio.fail_after(10):
            while "webhook_failed" not in logged:
                await anyio.sleep(0.05)
                logged += capsys.readouterr().out
        async with httpx.AsyncClient(base_url=base) as client:
            for path in ("/", "/metrics", "/healthz", "/readyz", "/snapshot", "/events", "/nope"):
                answers.append((await client.get(path)).text)
                good = {"Authorization": f"Bearer {CANARY}-token"}
                answers.append((await client.get(path, headers=good)).text)
        tg.cancel_scope.cancel()
    await history.aclose()
    logged += capsys.readouterr().out
    structlog.reset_defaults()
    assert '"event": "equity_event"' in logged
    assert CANARY not in logged
    assert CANARY not in daemon.metrics()[0].decode()
    assert all(CANARY not in answer for answer in answers)
    assert any('"equity"' in answer for answer in answers)  # the token did open /snapshot


def test_once_json_carries_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["once", "--format", "json", "--config", str(config(tmp_path))])
    captured = capsys.readouterr()
    assert json.loads(captured.out)["books"]
    assert CANARY not in captured.out + captured.err


@pytest.mark.parametrize("bad_url", [f"gopher://{CANARY}", f"http://[{CANARY}", f"{CANARY}"])
def test_a_rejected_secret_is_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad_url: str
) -> None:
    assert main(["check-config", "--config", str(config(tmp_path, bad_url))]) == 2
    err = capsys.readouterr().err
    assert "url: must be an http:// or https:// URL" in err
    assert CANARY not in err


def test_a_wrongly_typed_secret_is_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path)
    path.write_text(
        path.read_text().replace(f'bearer_token = "{CANARY}-token"', "bearer_token = 7")
    )
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "http.bearer_token: Input should be a valid string" in err
    assert "7" not in err.replace("http.bearer_token", "")


def test_exceptions_from_validation_carry_no_secret(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from equity_daemon.settings import WebhookSettings

    with pytest.raises(ValidationError) as caught:
        WebhookSettings(name="pager", url=f"ftp://{CANARY}")  # type: ignore[arg-type]
    assert CANARY not in str(caught.value)
    assert CANARY not in repr(caught.value)
