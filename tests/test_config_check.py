"""check-config finds what will go wrong at run time: assets with no price path to the share
class, totals that cannot be reconciled, sources that cannot quote their edge."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from equity_daemon.cli import EXIT_OK, EXIT_USAGE, main
from equity_daemon.venues import capabilities
from equity_daemon.venues.protocols import aave

HOLDER = "0x0000000000000000000000000000000000000001"
CHAIN_VENUE = f"""
[[books.staking.venues]]
kind = "chain"
name = "ethereum"
chain_id = 1
rpc = ["https://rpc.example/key"]
[[books.staking.venues.holdings]]
address = "{HOLDER}"
wallet = ["ETH", "USDT"]
lido = ["stETH", "wstETH"]
etherfi = ["weETH"]
"""


def edge(base: str, quote: str, source: str) -> str:
    how = f"fixed = {source}" if source[0].isdigit() else f'sources = ["{source}"]'
    return f'[[books.staking.prices]]\nbase = "{base}"\nquote = "{quote}"\n{how}\n'


def write(tmp_path: Path, *parts: str, share_class: str = "USDT") -> Path:
    path = tmp_path / "equity.toml"
    text = f'[markets.bybit]\nkind = "bybit"\n[books.staking]\nshare_class = "{share_class}"\n'
    path.write_text(text + "".join(parts))
    return path


def manual_venue(tmp_path: Path, content: str | None) -> str:
    """A manual venue `treasury` reading a file holding `content` (None: no file)."""
    positions = tmp_path / "treasury.toml"
    if content is not None:
        positions.write_text(content)
    return f'[[books.staking.venues]]\nkind = "manual"\nname = "treasury"\npath = "{positions}"\n'


def check(path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str, str]:
    code = main(["check-config", "--config", str(path), *flags])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_chain_book_with_only_a_wsteth_edge_is_warned_of_every_asset_it_cannot_price(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # said `config ok` and nothing else: the gaps showed only at run time
    path = write(tmp_path, CHAIN_VENUE, edge("wstETH", "stETH", "ethereum"))
    code, out, err = check(path, capsys)
    assert (code, out) == (EXIT_OK, "config ok: 1 book(s), 1 venue(s)\n")
    assert err.splitlines() == [
        "warning: books.staking: ETH (on ethereum) has no price path to USDT: the book would be "
        "incomplete",
        "warning: books.staking: stETH (on ethereum) has no price path to USDT: the book would be "
        "incomplete",
        "warning: books.staking: weETH (on ethereum) has no price path to USDT: the book would be "
        "incomplete (ethereum quotes weETH/eETH)",
        "warning: books.staking: wstETH (on ethereum) has no price path to USDT: the book would be "
        "incomplete",
    ]

    code, out, err = check(path, capsys, "--strict")
    assert (code, out) == (EXIT_USAGE, "")
    assert err.splitlines()[0] == (
        "config error: books.staking: ETH (on ethereum) has no price path to USDT: the book "
        "would be incomplete"
    )
    assert len(err.splitlines()) == 4


def test_a_chain_book_with_every_edge_it_needs_has_no_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feeds = 'feeds = [{ base = "stETH", quote = "ETH" }]\n'
    venue = CHAIN_VENUE.replace("rpc = ", feeds + "rpc = ")
    path = write(
        tmp_path,
        venue,
        edge("ETH", "USDT", "bybit"),
        edge("wstETH", "stETH", "ethereum"),
        edge("stETH", "ETH", "ethereum"),
        edge("weETH", "eETH", "ethereum"),
        edge("eETH", "ETH", "1"),
    )
    assert check(path, capsys, "--strict") == (EXIT_OK, "config ok: 1 book(s), 1 venue(s)\n", "")


def test_an_aave_total_in_usd_needs_a_usd_edge_and_aave_reserves_are_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    venue = CHAIN_VENUE.replace('etherfi = ["weETH"]', 'aave = ["core"]')
    path = write(tmp_path, venue, edge("ETH", "USDT", "bybit"), edge("stETH", "ETH", "1"))
    path.write_text(path.read_text() + edge("wstETH", "stETH", "ethereum"))
    code, _, err = check(path, capsys)
    assert code == EXIT_OK
    assert err.splitlines() == [
        f"warning: books.staking: ethereum aave-core:{HOLDER}: its own total is in USD, which has "
        "no price path to USDT: it cannot be reconciled (add an edge from USD: "
        '{ base = "USD", quote = "USDT", fixed = 1 }, or a chain venue\'s ETH/USD feed)',
        "note: books.staking: ethereum holds whichever reserves of Aave core it supplies or "
        "borrows: only run time shows which; the book prices ETH, USDT, stETH, wstETH",
    ]
    path.write_text(path.read_text() + edge("USD", "USDT", "1"))
    code, _, err = check(path, capsys, "--strict")
    assert code == EXIT_OK
    assert err.startswith("note: books.staking: ethereum holds whichever reserves")


def test_exchange_totals_name_their_currency_and_the_coins_are_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    venue = """
[[books.staking.venues]]
kind = "binance"
name = "binance-main"
api_key = "k"
secret = "s"
accounts = ["spot", "cross_margin", "usdm"]
"""
    path = write(tmp_path, venue, edge("ETH", "USDT", "bybit"), edge("USD", "USDT", "1"))
    code, _, err = check(path, capsys)
    assert code == EXIT_OK
    assert err.splitlines() == [
        "warning: books.staking: binance-main cross_margin: its own total is in BTC, which has no "
        "price path to USDT: it cannot be reconciled (add an edge from BTC: a BTC ticker from a "
        "markets entry)",
        "note: books.staking: binance-main may hold any coin (and USD legs of inverse contracts): "
        "only run time shows which; the book prices ETH, USD, USDT",
    ]


def test_a_source_asked_for_a_pair_it_does_not_quote_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the chain venue reads wstETH/stETH; asked for the other direction it fails every cycle
    path = write(
        tmp_path,
        CHAIN_VENUE.replace('lido = ["stETH", "wstETH"]\netherfi = ["weETH"]\n', ""),
        edge("ETH", "USDT", "bybit"),
        edge("stETH", "wstETH", "ethereum"),
    )
    code, _, err = check(path, capsys)
    assert code == EXIT_OK
    assert err.splitlines() == [
        "warning: books.staking.prices[1]: stETH/wstETH: ethereum cannot quote it (it quotes "
        "weETH/eETH, wstETH/stETH): it fails every cycle",
        "warning: books.staking.prices[1]: stETH/wstETH: none of its sources can quote it: the "
        "edge never has a price",
    ]


def test_a_manual_file_is_checked_as_it_is_now(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    venue = manual_venue(
        tmp_path,
        '[[positions]]\nasset = "GHO"\namount = "10"\n'
        '[[positions]]\nasset = "PEPE"\namount = "1e9"\n'
        '[[quotes]]\nbase = "GHO"\nquote = "USDT"\nrate = "0.998"\n'
        '[[reported]]\naccount = "main"\namount = "10"\ncurrency = "EUR"\n',
    )
    path = write(tmp_path, venue, edge("GHO", "USDT", "treasury"))
    code, _, err = check(path, capsys)
    assert code == EXIT_OK
    assert err.splitlines() == [
        "warning: books.staking: PEPE (on treasury) has no price path to USDT: the book would be "
        "incomplete",
        "warning: books.staking: treasury main: its own total is in EUR, which has no price path "
        "to USDT: it cannot be reconciled (add an edge from EUR)",
    ]


def test_ignored_assets_and_builtin_edges_are_no_gaps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    venue = manual_venue(
        tmp_path,
        "positions = ["
        '{asset = "WETH", amount = "1"}, {asset = "aEthLidoWETH", amount = "2"},'
        '{asset = "variableDebtEthWETH", amount = "1", kind = "debt"},'
        '{asset = "SHIB", amount = "9"}'
        "]\n",
    )
    path = write(
        tmp_path, venue.replace("[[", 'ignore_assets = ["SHIB"]\n[[', 1), share_class="ETH"
    )
    assert check(path, capsys, "--strict") == (EXIT_OK, "config ok: 1 book(s), 1 venue(s)\n", "")


def test_a_manual_file_that_cannot_be_read_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "treasury.toml"
    code, _, err = check(write(tmp_path, manual_venue(tmp_path, None)), capsys)
    assert code == EXIT_OK
    assert err == (
        f"warning: books.staking.venues[0]: treasury: cannot read {missing} (No such file or "
        "directory): the venue fails until it can\n"
    )


def test_no_config_file_says_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("EQUITY_DAEMON_"):
            monkeypatch.delenv(name)
    assert main(["check-config"]) == EXIT_USAGE
    # said "config error: books: Field required"
    assert capsys.readouterr().err == (
        "config error: no configuration: give --config FILE or set EQUITY_DAEMON_CONFIG\n"
    )


def test_the_aave_total_currency_is_the_aave_reader_s() -> None:
    assert capabilities.AAVE_BASE_CURRENCY == aave.BASE_CURRENCY


@pytest.mark.parametrize("command", ["--version", "check-config", "once"])
def test_a_manual_book_loads_no_exchange_or_chain_machinery(tmp_path: Path, command: str) -> None:
    # `--version` took 1.9 s and `check-config` 1.5 s, most of it importing ccxt and web3
    positions = tmp_path / "ops.toml"
    positions.write_text('positions = [{asset = "ETH", amount = "2"}]\n')
    config = tmp_path / "equity.toml"
    config.write_text(
        f'history_path = "{tmp_path / "h.sqlite3"}"\n[books.ops]\nshare_class = "ETH"\n'
        f'[[books.ops.venues]]\nkind = "manual"\nname = "ops"\npath = "{positions}"\n'
    )
    args = [command] if command == "--version" else [command, "--config", str(config)]
    script = (
        "import sys\n"
        "from equity_daemon.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'ccxt', 'web3', 'eth_abi'})\n"
        "print(loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines()[-1] == "[]"
