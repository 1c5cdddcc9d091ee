"""Configuration: every kind of bad input exits 2 with the field path; good input is exact."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from equity_daemon.cli import EXIT_OK, EXIT_USAGE, main
from equity_daemon.settings import load_settings

DEMO = Path(__file__).parents[1] / "config" / "demo.toml"

BOOK = """
[books.basis]
share_class = "USDT"
threshold_percent = 0.1
venues = [{kind = "demo", name = "demo"}]
"""
MANUAL = "{kind = 'manual', name = 'ops'}"
UNKNOWN_KIND = "{kind = 'ftx', name = 'gone'}"


def with_venue(extra: str) -> str:
    return BOOK.replace(
        '{kind = "demo", name = "demo"}', '{kind = "demo", name = "demo"}, ' + extra
    )


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "equity.toml"
    path.write_text(text)
    code = main(["check-config", "--config", str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[books.basis\n", "invalid TOML: "),
        (BOOK + "colour = 'red'\n", "books.basis.colour: Extra inputs are not permitted"),
        ("colour = 1\n" + BOOK, "colour: Extra inputs are not permitted"),
        (BOOK + "[http]\nport = 'eighty'\n", "http.port: Input should be a valid integer"),
        (BOOK.replace('"USDT"', '"BTC"'), "books.basis.share_class: Input should be 'USDT' or"),
        (
            with_venue(MANUAL),
            "books.basis.venues[1].manual.path: Field required",
        ),
        (
            with_venue(UNKNOWN_KIND),
            "books.basis.venues[1]: Input tag 'ftx' found using 'kind' does not match",
        ),
        (
            "[books.basis]\nshare_class = 'USDT'\nvenues = []\n",
            "books.basis.venues: Tuple should have at least 1 item",
        ),
        ("interval_seconds = 60\n", "books: Field required"),
        (
            BOOK + "[[books.basis.webhooks]]\nname = 'pager'\nurl_file = 'nope'\n",
            "books.basis.webhooks[0]: url_file: cannot read secret 'nope'",
        ),
        (
            BOOK + "[[books.basis.webhooks]]\nname = 'pager'\n",
            "books.basis.webhooks[0].url: Field required",
        ),
        (
            BOOK + "[books.other]\nshare_class = 'ETH'\n[[books.other.venues]]\nkind = 'demo'\n"
            "name = 'demo'\n",
            "venue 'demo' appears twice (books 'basis' and 'other')",
        ),
        (
            BOOK + "[[books.basis.prices]]\nbase = 'ETH'\nquote = 'USDT'\nsources = ['binance']\n",
            "books.basis.prices ETH/USDT: unknown source venue(s) binance",
        ),
        (
            BOOK + "[[books.basis.prices]]\nbase = 'ETH'\nquote = 'USDT'\nsources = ['demo']\n"
            "fixed = 3000\n",
            "books.basis.prices[0]: give either sources (venue names) or fixed",
        ),
        (
            BOOK.replace('name = "demo"', 'name = "Demo Venue"'),
            "books.basis.venues[0].demo.name: String should match pattern",
        ),
    ],
)
def test_each_problem_is_one_line_naming_its_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    code, err = check(tmp_path, text, capsys)
    assert code == EXIT_USAGE
    lines = err.splitlines()
    assert any(line.startswith("config error: ") and problem in line for line in lines), err
    assert "Traceback" not in err


def test_several_problems_give_several_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = check(tmp_path, BOOK + "a = 1\nb = 2\n", capsys)
    assert code == EXIT_USAGE
    assert err.splitlines() == [
        "config error: books.basis.a: Extra inputs are not permitted",
        "config error: books.basis.b: Extra inputs are not permitted",
    ]


def test_a_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(tmp_path / "nope.toml")]) == EXIT_USAGE
    assert capsys.readouterr().err == f"config error: {tmp_path / 'nope.toml'}: no such file\n"


def test_an_unreadable_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(tmp_path)]) == EXIT_USAGE  # a directory
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text", ["[books.basis\n", BOOK + "[[books.basis.webhooks]]\nname = 'x'\nurl = 'gopher://x'\n"]
)
def test_a_real_process_exits_2_without_a_traceback(tmp_path: Path, text: str) -> None:
    path = tmp_path / "equity.toml"
    path.write_text(text)
    for command in ("check-config", "run", "once"):
        done = subprocess.run(
            [sys.executable, "-m", "equity_daemon", command, "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == EXIT_USAGE
        assert done.stderr.startswith("config error: ")
        assert "Traceback" not in done.stderr
        assert done.stdout == ""


def test_the_demo_config_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(DEMO)]) == EXIT_OK
    assert capsys.readouterr().out.startswith("config ok")


def test_toml_numbers_are_exact_decimals(tmp_path: Path) -> None:
    path = tmp_path / "equity.toml"
    path.write_text(BOOK + "threshold_floor = 0.3\n")
    book = load_settings(path).books["basis"]
    assert book.threshold_percent == Decimal("0.1")
    assert book.threshold_floor == Decimal("0.3")


def test_the_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "equity.toml"
    path.write_text(BOOK)
    monkeypatch.setenv("EQUITY_DAEMON_BOOKS__BASIS__THRESHOLD_PERCENT", "0.5")
    monkeypatch.setenv("EQUITY_DAEMON_HTTP__PORT", "9999")
    settings = load_settings(path)
    assert settings.books["basis"].threshold_percent == Decimal("0.5")
    assert settings.books["basis"].venues[0].name == "demo"  # the rest of the book stays
    assert settings.http.port == 9999


def test_a_bad_environment_value_is_named_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EQUITY_DAEMON_INTERVAL_SECONDS", "soon")
    code, err = check(tmp_path, BOOK, capsys)
    assert code == EXIT_USAGE
    assert "config error: interval_seconds: Input should be a valid number" in err


WEBHOOK = BOOK + "[[books.basis.webhooks]]\nname = 'pager'\nurl = 'http://127.0.0.1/h'\n"


def test_secrets_come_from_systemd_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "hook_secret").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    path = tmp_path / "equity.toml"
    path.write_text(WEBHOOK + "secret_file = 'hook_secret'\n")
    (hook,) = load_settings(path).books["basis"].webhooks
    assert hook.secret is not None
    assert hook.secret.get_secret_value() == "from-systemd"


def test_secrets_come_from_docker_secrets_and_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    secrets = tmp_path / "run-secrets"
    secrets.mkdir()
    (secrets / "http_token").write_text("from-docker")
    (tmp_path / "hook").write_text("from-a-path")
    monkeypatch.setattr("equity_daemon.settings.DOCKER_SECRETS", secrets)
    path = tmp_path / "equity.toml"
    path.write_text(
        WEBHOOK
        + f"secret_file = '{tmp_path / 'hook'}'\n"
        + "[http]\nbearer_token_file = 'http_token'\n"
    )
    settings = load_settings(path)
    assert settings.http.bearer_token is not None
    assert settings.http.bearer_token.get_secret_value() == "from-docker"
    assert settings.books["basis"].webhooks[0].secret.get_secret_value() == "from-a-path"  # type: ignore[union-attr]


def test_a_secret_file_must_be_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, WEBHOOK + "secret_file = ''\n", capsys)
    assert code == EXIT_USAGE
    assert "secret_file must be a file path or a credential name" in err
