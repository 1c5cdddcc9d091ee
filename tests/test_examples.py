"""The configurations the repository ships pass the strictest check as they are: an example a
fund can start from (every kind of venue, no simulated money) and a complete mainnet chain
book, both against the sample secrets in config/secrets.example."""

from __future__ import annotations

from pathlib import Path

import pytest

from equity_daemon.cli import EXIT_OK, main
from equity_daemon.settings import ChainVenue, load_settings

REPO = Path(__file__).parents[1]
SAMPLE_SECRETS = "config/secrets.example"
EXAMPLES = ("config/example.toml", "config/mainnet-chain.toml")


@pytest.fixture
def in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the examples' commands run: the clone, with the sample secrets as credentials."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", SAMPLE_SECRETS)


@pytest.mark.parametrize("example", EXAMPLES)
@pytest.mark.usefixtures("in_the_repository")
def test_a_shipped_example_passes_check_config_strict_with_the_sample_secrets(
    example: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--config", example, "--strict"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert out.startswith("config ok: 1 book(s)")
    assert "warning" not in err
    # the command its header gives is the one run here
    header = (REPO / example).read_text()
    assert f"CREDENTIALS_DIRECTORY={SAMPLE_SECRETS}" in header
    assert f"equity-daemon check-config --config {example} --strict" in header


@pytest.mark.usefixtures("in_the_repository")
def test_the_example_holds_every_kind_of_venue_and_no_simulated_money() -> None:
    settings = load_settings(Path("config/example.toml"))
    (book,) = settings.books.values()
    kinds = {venue.kind for venue in book.venues}
    assert kinds == {"binance", "bybit", "okx", "chain", "manual"}  # no "demo"
    assert {market.kind for market in settings.markets.values()} == {"binance", "bybit", "okx"}
    assert settings.price_sources


@pytest.mark.usefixtures("in_the_repository")
def test_the_mainnet_chain_book_reads_aave_core_lido_etherfi_and_wallets() -> None:
    settings = load_settings(Path("config/mainnet-chain.toml"))
    (book,) = settings.books.values()
    (chain,) = book.venues
    assert isinstance(chain, ChainVenue)
    assert chain.chain_id == 1
    holdings = chain.holdings
    assert any("core" in h.aave for h in holdings)
    assert any({"stETH", "wstETH"} <= set(h.lido) for h in holdings)
    assert any({"eETH", "weETH"} <= set(h.etherfi) for h in holdings)
    assert all(h.wallet for h in holdings)
