"""Settings from `EQUITY_DAEMON_*` variables, laid over the file: into list items too."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from equity_daemon.cli import EXIT_OK, EXIT_USAGE, main
from equity_daemon.settings import ChainVenue, ExchangeVenue, load_settings

BOOK = """
[books.basis]
share_class = "USDT"
[[books.basis.venues]]
kind = "bybit"
name = "bybit-main"
accounts = ["unified"]
{exchange_secrets}
[[books.basis.venues]]
kind = "chain"
name = "ethereum"
chain_id = 1
[[books.basis.venues.holdings]]
address = "0x0000000000000000000000000000000000000001"
wallet = ["ETH"]
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("EQUITY_DAEMON_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


def config(tmp_path: Path, exchange_secrets: str = "") -> Path:
    path = tmp_path / "equity.toml"
    path.write_text(BOOK.format(exchange_secrets=exchange_secrets))
    return path


def test_exchange_keys_and_rpc_urls_come_from_the_environment_as_the_readme_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # refused before: "books.basis.venues: Input should be a valid tuple"
    monkeypatch.setenv("EQUITY_DAEMON_BOOKS__BASIS__VENUES__0__API_KEY", "key-from-env")
    monkeypatch.setenv("EQUITY_DAEMON_BOOKS__BASIS__VENUES__0__SECRET", "secret-from-env")
    monkeypatch.setenv("EQUITY_DAEMON_BOOKS__BASIS__VENUES__1__RPC", '["https://a.example/k"]')
    assert main(["check-config", "--config", str(config(tmp_path))]) == EXIT_OK
    assert "key-from-env" not in capsys.readouterr().out

    exchange, chain = load_settings(config(tmp_path)).books["basis"].venues
    assert isinstance(exchange, ExchangeVenue)
    assert isinstance(chain, ChainVenue)
    assert exchange.api_key.get_secret_value() == "key-from-env"
    assert exchange.secret.get_secret_value() == "secret-from-env"
    assert (exchange.name, exchange.accounts) == ("bybit-main", ("unified",))  # from the file
    assert [url.get_secret_value() for url in chain.rpc] == ["https://a.example/k"]


def test_one_item_of_a_list_can_be_set_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(tmp_path, 'api_key = "k"\nsecret = "s"')
    text = path.read_text().replace(
        "chain_id = 1", 'chain_id = 1\nrpc = ["https://a", "https://b"]'
    )
    path.write_text(text)
    monkeypatch.setenv("EQUITY_DAEMON_BOOKS__BASIS__VENUES__1__RPC__1", "https://c")
    monkeypatch.setenv("EQUITY_DAEMON_BOOKS__BASIS__VENUES__1__RPC__2", "https://d")  # appended
    chain = load_settings(path).books["basis"].venues[1]
    assert isinstance(chain, ChainVenue)
    assert [url.get_secret_value() for url in chain.rpc] == ["https://a", "https://c", "https://d"]


def test_a_secret_from_the_environment_replaces_the_file_s_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(tmp_path, 'api_key_file = "missing"\nsecret = "s"')
    monkeypatch.setenv("EQUITY_DAEMON_BOOKS__BASIS__VENUES__0__API_KEY", "key-from-env")
    monkeypatch.setenv("EQUITY_DAEMON_BOOKS__BASIS__VENUES__1__RPC__0", "https://a")
    exchange = load_settings(path).books["basis"].venues[0]
    assert isinstance(exchange, ExchangeVenue)
    assert exchange.api_key.get_secret_value() == "key-from-env"


def test_an_index_past_the_end_of_a_list_names_the_variable_not_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EQUITY_DAEMON_BOOKS__BASIS__VENUES__5__API_KEY", "canary-value")
    assert main(["check-config", "--config", str(config(tmp_path))]) == EXIT_USAGE
    assert capsys.readouterr().err == (
        "config error: environment: EQUITY_DAEMON_BOOKS__BASIS__VENUES__5__API_KEY: '5' is no "
        "item of a list of 2 (use 0 to 1, or 2 to add one)\n"
    )


def test_numbers_in_environment_json_are_exact_decimals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(tmp_path, 'api_key = "k"\nsecret = "s"')
    monkeypatch.setenv("EQUITY_DAEMON_BOOKS__BASIS__VENUES__1__RPC__0", "https://a")
    monkeypatch.setenv(
        "EQUITY_DAEMON_BOOKS__BASIS__PRICES", '[{"base": "ETH", "quote": "USDT", "fixed": 3000.1}]'
    )
    monkeypatch.setenv("EQUITY_DAEMON_BOOKS__BASIS__PRICES__0__MAX_AGE_SECONDS", "60")
    (edge,) = load_settings(path).books["basis"].prices
    assert (edge.fixed, edge.max_age_seconds) == (Decimal("3000.1"), 60)


def test_a_json_table_merges_into_the_file_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(tmp_path, 'api_key = "k"\nsecret = "s"')
    path.write_text(path.read_text() + '[http]\nhost = "127.0.0.2"\n')
    monkeypatch.setenv("EQUITY_DAEMON_BOOKS__BASIS__VENUES__1__RPC__0", "https://a")
    monkeypatch.setenv("EQUITY_DAEMON_HTTP", '{"port": 9800}')
    settings = load_settings(path)
    assert (settings.http.host, settings.http.port) == ("127.0.0.2", 9800)
