"""A canary in every secret field never shows up anywhere a person or a program can read.

The secret fields are the webhook `url` and `secret` and `http.bearer_token`, given directly or
through `<field>_file`. The places looked at: log lines, the Prometheus exposition, every HTTP
answer (with and without the token), `once --format json`, the history database, `repr`/`str`/
JSON of the settings, and the text of configuration errors.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import anyio
import httpx
import pytest
import structlog

from equity_daemon import logs
from equity_daemon import settings as settings_module
from equity_daemon.cli import EXIT_INCOMPLETE, EXIT_USAGE, main
from equity_daemon.errors import ConfigError
from equity_daemon.history import History
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import load_settings
from equity_daemon.validation import describe_errors

CANARY = "CANARY-7f3a9c"
ROUTES = ("/", "/metrics", "/healthz", "/readyz", "/snapshot", "/events", "/nope")


def closed_port() -> int:
    """A loopback port nothing listens on: bound once to pick it, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def hook_url() -> str:
    return f"http://127.0.0.1:{closed_port()}/hook/{CANARY}?key={CANARY}"


def config(tmp_path: Path, url: str | None = None) -> Path:
    """A complete `basis` book (demo venue, every price edge) and an `ops` book that is
    incomplete from the start (one manual file is missing, the other holds an asset nothing
    prices), so the first cycle raises an event and its webhook delivery fails on a closed port.
    The canary is in every secret field."""
    (tmp_path / "signing").write_text(f"{CANARY}-from-file\n")
    (tmp_path / "ops.toml").write_text('[[positions]]\nasset = "PEPE"\namount = "1e9"\n')
    url = url or hook_url()
    path = tmp_path / "equity.toml"
    path.write_text(
        f"""
history_path = "{tmp_path / "h.sqlite3"}"
log_level = "debug"
log_format = "json"
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
url = "{url}"
secret = "{CANARY}-signing"
[books.ops]
share_class = "USDT"
venues = [
    {{kind = "manual", name = "ops", path = "{tmp_path / "missing.toml"}"}},
    {{kind = "manual", name = "ops-pepe", path = "{tmp_path / "ops.toml"}"}},
]
[[books.ops.webhooks]]
name = "ops-pager"
url = "{url}"
secret_file = "{tmp_path / "signing"}"
"""
    )
    return path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("EQUITY_DAEMON_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)
    monkeypatch.setattr(settings_module, "DOCKER_SECRETS", tmp_path / "no-docker-secrets")


@pytest.fixture(autouse=True)
def reset_logging() -> Iterator[None]:
    """Tests here configure structlog (JSON on stdout, or stderr for `once`); undo it."""
    yield
    structlog.reset_defaults()


def test_the_canary_is_really_in_the_settings(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path))
    basis, ops = settings.books["basis"].webhooks[0], settings.books["ops"].webhooks[0]
    assert CANARY in basis.url.get_secret_value()
    assert basis.secret is not None
    assert basis.secret.get_secret_value() == f"{CANARY}-signing"
    assert ops.secret is not None
    assert ops.secret.get_secret_value() == f"{CANARY}-from-file"
    assert settings.http.bearer_token is not None
    assert settings.http.bearer_token.get_secret_value() == f"{CANARY}-token"


def test_settings_print_without_secrets(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path))
    for text in (
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        repr(settings.model_dump()),
        repr(settings.books["basis"].webhooks[0]),
        repr(settings.http),
    ):
        assert CANARY not in text


@pytest.mark.anyio
async def test_the_running_daemon_shows_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(config(tmp_path))
    # here, not in a fixture: capsys swaps stdout between setup and call, and the logger
    # keeps the stream it was given (conftest makes it uncached, so it sees this one)
    logs.configure("debug", "json")
    daemon = Daemon(settings)
    history = await History.open(tmp_path / "h.sqlite3")
    answers: dict[tuple[str, str], httpx.Response] = {}
    logged = ""
    try:
        async with anyio.create_task_group() as tg:
            port: int = await tg.start(partial(daemon.run, history, handle_signals=False))
            # the `ops` book's incomplete event goes to a closed port: wait for the failure
            with anyio.move_on_after(3):
                while "webhook_failed" not in logged:
                    await anyio.sleep(0.02)
                    logged += capsys.readouterr().out
            tokens = {
                "none": {},
                "good": {"Authorization": f"Bearer {CANARY}-token"},
                "wrong": {"Authorization": f"Bearer {CANARY}-guess"},
            }
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, trust_env=False) as client:
                for route in ROUTES:
                    for token, headers in tokens.items():
                        answers[route, token] = await client.get(route, headers=headers)
            exposition = daemon.metrics()[0].decode()
            tg.cancel_scope.cancel()
    finally:
        await history.aclose()
    logged += capsys.readouterr().out

    # the run did what the test relies on
    records = [json.loads(line) for line in logged.splitlines()]
    assert {"equity_event", "webhook_failed", "cycle"} <= {r["event"] for r in records}
    assert answers["/snapshot", "none"].status_code == 401
    assert answers["/snapshot", "wrong"].status_code == 401
    assert answers["/snapshot", "good"].status_code == 200
    assert answers["/snapshot", "good"].json()["books"][0]["complete"] is True
    assert answers["/events", "good"].json()["events"]
    assert "equity_daemon_equity{" in exposition

    assert CANARY not in logged
    assert CANARY not in exposition
    for (route, token), answer in answers.items():
        where = f"{route} ({token} token)"
        assert CANARY not in answer.text, where
        assert all(CANARY not in value for value in answer.headers.values()), where
    stored = [path async for path in anyio.Path(tmp_path).glob("h.sqlite3*")]
    assert stored
    for path in stored:
        assert CANARY.encode() not in await path.read_bytes(), path.name


def test_once_json_shows_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["once", "--format", "json", "--config", str(config(tmp_path))])
    captured = capsys.readouterr()
    assert code == EXIT_INCOMPLETE  # the `ops` book cannot read a file nor price an asset
    books = {book["book"]: book for book in json.loads(captured.out)["books"]}
    assert books["basis"]["complete"] is True
    assert captured.err  # debug log lines went to stderr
    assert CANARY not in captured.out
    assert CANARY not in captured.err


@pytest.mark.parametrize(
    "bad_url",
    [
        f"gopher://127.0.0.1/{CANARY}",
        f"ftp://ops:{CANARY}@files.example.org/",
        f"http://[{CANARY}",
        f"http://{CANARY}@/hook",
        CANARY,
    ],
)
def test_a_rejected_webhook_url_is_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad_url: str
) -> None:
    assert main(["check-config", "--config", str(config(tmp_path, bad_url))]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "config error: books.basis.webhooks[0].url: must be an http:// or https:// URL",
        "config error: books.ops.webhooks[0].url: must be an http:// or https:// URL",
    ]


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        pytest.param(
            f'bearer_token = "{CANARY}-token"',
            f'bearer_token = ["{CANARY}"]',
            "http.bearer_token: Input should be a valid string",
            id="secret-as-list",
        ),
        pytest.param(
            f'secret = "{CANARY}-signing"',
            f'secret = {{value = "{CANARY}"}}',
            "books.basis.webhooks[0].secret: Input should be a valid string",
            id="secret-as-table",
        ),
        pytest.param(
            f'bearer_token = "{CANARY}-token"',
            f'bearer_tokn = "{CANARY}-token"',
            "http.bearer_tokn: Extra inputs are not permitted",
            id="misspelt-secret-key",
        ),
        pytest.param(
            "port = 0",
            f'port = "{CANARY}"',
            "http.port: Input should be a valid integer",
            id="canary-in-a-number",
        ),
        pytest.param(
            f'bearer_token = "{CANARY}-token"',
            f'bearer_token = "{CANARY}',
            "invalid TOML: ",
            id="unterminated-secret",
        ),
    ],
)
def test_a_bad_secret_field_is_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, line: str
) -> None:
    path = config(tmp_path)
    path.write_text(path.read_text().replace(old, new))
    assert main(["check-config", "--config", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert line in err
    assert CANARY not in err


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EQUITY_DAEMON_HTTP", f'{{"bearer_token": "{CANARY}",'),
        ("EQUITY_DAEMON_HTTP__PORT", CANARY),
        ("EQUITY_DAEMON_HTTP__BEARER_TOKEN", f'["{CANARY}"]'),
    ],
)
def test_a_bad_secret_in_the_environment_is_not_echoed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("EQUITY_DAEMON_BOOKS__BASIS__WEBHOOKS", f'[{{"url": "ftp://{CANARY}"}}]')
    assert main(["check-config", "--config", str(config(tmp_path))]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("config error: ")
    assert CANARY not in err


def test_a_secret_file_that_is_not_text_is_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path)
    (tmp_path / "signing").write_bytes(CANARY.encode() + b"\xfe\xff")
    assert main(["check-config", "--config", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == (
        f"config error: books.ops.webhooks[0]: secret_file: secret "
        f"'{tmp_path / 'signing'}' is not UTF-8 text\n"
    )


def test_config_errors_and_validation_errors_carry_no_secret(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from equity_daemon.settings import WebhookSettings

    path = config(tmp_path, f"ftp://{CANARY}")
    with pytest.raises(ConfigError) as config_error:
        load_settings(path)
    assert CANARY not in str(config_error.value)
    assert CANARY not in repr(config_error.value)
    with pytest.raises(ValidationError) as caught:
        WebhookSettings.model_validate({"name": "pager", "url": f"ftp://{CANARY}"})
    assert CANARY not in str(caught.value)
    assert CANARY not in repr(caught.value)
    assert all(CANARY not in line for line in describe_errors(caught.value))
