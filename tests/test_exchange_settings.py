"""Exchange venue settings: kinds, account types per exchange, secrets (inline, environment,
`_file`) that never show, sandbox and base_url; and the canary across a daemon whose exchange
refuses the key."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from equity_daemon import settings as settings_module
from equity_daemon.history import History
from equity_daemon.runtime.compose import make_venue
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import ExchangeVenue, Settings, load_settings
from equity_daemon.validation import describe_errors
from equity_daemon.venues.exchange import ExchangeVenue as ExchangeVenueImpl
from equity_daemon.venues.fake_exchange import Fault, Holding, fake_exchange
from tests.reports import Clock

CANARY = "CANARY-7f3a9c"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("EQUITY_DAEMON_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)
    monkeypatch.setattr(settings_module, "DOCKER_SECRETS", tmp_path / "no-docker-secrets")


def venue(kind: str = "binance", **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "kind": kind,
        "name": "cex",
        "api_key": f"{CANARY}-key",
        "secret": f"{CANARY}-secret",
        "accounts": ["usdm"]
        if kind == "binance"
        else ["unified" if kind == "bybit" else "trading"],
    }
    if kind == "okx":
        found["password"] = f"{CANARY}-pass"
    return found | extra


def book(*venues: dict[str, Any]) -> dict[str, Any]:
    return {"books": {"basis": {"share_class": "USDT", "venues": list(venues)}}}


def config_error(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate(data)
    assert CANARY not in str(caught.value)
    return describe_errors(caught.value)


@pytest.mark.parametrize(
    ("kind", "accounts"),
    [
        ("binance", ["spot", "cross_margin", "isolated_margin", "usdm"]),
        ("binance", ["spot", "isolated_margin", "portfolio_margin", "funding"]),
        ("binance", ["funding"]),
        ("bybit", ["unified", "funding"]),
        ("okx", ["trading", "funding"]),
    ],
)
def test_each_exchange_takes_its_own_account_types(kind: str, accounts: list[str]) -> None:
    settings = Settings.model_validate(book(venue(kind, accounts=accounts)))
    (config,) = settings.books["basis"].venues
    assert isinstance(config, ExchangeVenue)
    assert config.accounts == tuple(accounts)
    built = make_venue(config, Clock())
    assert isinstance(built, ExchangeVenueImpl)
    assert built.accounts == tuple(accounts)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"accounts": ["spot"], "kind": "bybit"}, "bybit has no account type 'spot'"),
        ({"accounts": []}, "name at least one of"),
        ({"accounts": ["usdm", "usdm"]}, "lists usdm more than once"),
        ({"kind": "okx", "accounts": ["trading"]}, "need their passphrase"),
        ({"password": "x"}, "binance keys have no passphrase"),
        ({"base_url": "ftp://proxy"}, "URL scheme should be 'http' or 'https'"),
        ({"base_url": f"http://u:{CANARY}@proxy/"}, "must not carry credentials"),
        ({"base_url": "http://proxy/?key=1"}, "must not have a query"),
    ],
)
def test_a_bad_exchange_venue_is_refused_without_echoing_a_secret(
    changes: dict[str, Any], problem: str
) -> None:
    data = venue(**changes)
    if changes.get("kind") == "okx" and "password" not in changes:
        data.pop("password", None)
    problems = config_error(book(data))
    assert any(problem in line for line in problems), problems
    assert all(CANARY not in line for line in problems)


@pytest.mark.parametrize(
    "accounts",
    [
        ["portfolio_margin", "usdm"],
        ["cross_margin", "portfolio_margin"],
        ["spot", "cross_margin", "usdm", "portfolio_margin"],
        ["portfolio_margin", "coinm"],
    ],
)
def test_portfolio_margin_beside_the_wallets_it_already_reads_is_refused(
    accounts: list[str],
) -> None:
    # a portfolio-margin account's cross-margin, USDⓈ-M and COIN-M wallets are what
    # /papi/v1/balance returns: listing them on the same key would count that money twice
    (problem,) = config_error(book(venue(accounts=accounts)))
    also = ", ".join(a for a in accounts if a in ("cross_margin", "usdm", "coinm"))
    assert problem.startswith(
        f"books.basis.venues[0].binance: accounts: {also} beside portfolio_margin: "
        "a portfolio-margin account's cross-margin, USDⓈ-M and COIN-M wallets are the ones "
        "portfolio_margin reads (/papi/v1/balance crossMarginAsset, umWalletBalance, "
        "cmWalletBalance), so the same money would count twice"
    ), problem


def test_secrets_come_from_files_and_the_environment_and_never_print(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "okx_secret").write_text(f"{CANARY}-from-file\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    data = venue("okx", secret_file="okx_secret", sandbox=True, base_url="http://127.0.0.1:9/")
    del data["secret"]
    monkeypatch.setenv(
        "EQUITY_DAEMON_BOOKS",
        '{"basis": {"share_class": "USDT", "venues": [' + json.dumps(data) + "]}}",
    )
    settings = Settings()  # type: ignore[call-arg]
    (config,) = settings.books["basis"].venues
    assert isinstance(config, ExchangeVenue)
    assert config.secret.get_secret_value() == f"{CANARY}-from-file"
    assert config.password is not None
    assert config.sandbox
    for text in (repr(settings), str(settings), settings.model_dump_json(), repr(config)):
        assert CANARY not in text
    built = make_venue(config, Clock())
    assert CANARY not in repr(built)
    assert CANARY not in repr(vars(built))


@pytest.mark.anyio
async def test_a_refused_key_shows_no_secret_in_logs_snapshot_or_metrics(tmp_path: Path) -> None:
    async with fake_exchange("bybit") as fake:
        fake.set_holding("unified", "USDT", Holding(balance=Decimal(5)))
        fake.fail("/v5/account/wallet-balance", Fault.AUTH, times=5)
        settings = Settings.model_validate(
            book(venue("bybit", base_url=fake.base_url, rate_limit=False, timeout_seconds=2))
        )
        daemon = Daemon(settings, Clock())
        history = await History.open(tmp_path / "h.sqlite3")
        try:
            with capture_logs() as logs:
                await daemon.fetch_all_once()
                await daemon.cycle(history)
        finally:
            await history.aclose()
            await daemon.aclose()
    snap = daemon.latest()
    assert snap is not None
    (summary,) = snap.venues
    assert summary.status == "failed"
    assert summary.error is not None
    assert "auth refused" in summary.error
    shown = repr(logs) + repr(snap.to_json()) + daemon.metrics()[0].decode()
    assert CANARY not in shown


def test_the_example_configs_exchange_venue_reads_its_key_from_the_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Path(__file__).parent.parent
    for sample in (repo / "config" / "secrets.example").iterdir():
        (tmp_path / sample.name).write_text(f"{CANARY}-{sample.name}\n")
    (tmp_path / "webhook_url").write_text("https://hooks.example/x\n")  # checked as a URL
    (tmp_path / "apprise_url").write_text("ntfy://ntfy.example/topic\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.chdir(repo)
    settings = load_settings(Path("config/example.toml"))
    config = next(v for v in settings.books["basis"].venues if v.name == "bybit-main")
    assert isinstance(config, ExchangeVenue)
    assert config.accounts == ("unified", "funding")
    assert config.api_key.get_secret_value() == f"{CANARY}-bybit_key"
