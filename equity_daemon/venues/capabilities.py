"""What a configured venue can produce, known before it runs (`equity-daemon check-config`).

One function per venue kind, in `BY_KIND`; each says, from the venue's settings alone (a manual
venue's file is read as it is now):

| field        | meaning                                                                      |
|--------------|------------------------------------------------------------------------------|
| `assets`     | symbols it can report: each needs a price path to the book's share class     |
| `open_ended` | what else it may report that only run time shows (an exchange's coins)       |
| `totals`     | its own totals (reconciled only if their currency has a price path)          |
| `quotes`     | the edges (base, quote) it quotes when named as a source; None: any pair     |
| `edges`      | edges it prices itself at run time, needing no configuration                 |
| `problems`   | what stops it from reading at all, as far as can be seen now                 |

Nothing here imports ccxt or web3: the check must stay fast for a manual-only book.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from equity_daemon.errors import VenueDataError
from equity_daemon.example import Market, basis_positions
from equity_daemon.settings import ChainVenue, DemoVenue, ExchangeVenue, ManualVenue
from equity_daemon.venues import demo, manual
from equity_daemon.venues.exchanges import binance, bybit, okx
from equity_daemon.venues.registry import registry_for

# What each exchange's account types report as their own total (`<exchange>.TOTAL_CURRENCIES`).
EXCHANGE_TOTALS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "binance": binance.TOTAL_CURRENCIES,
    "bybit": bybit.TOTAL_CURRENCIES,
    "okx": okx.TOTAL_CURRENCIES,
}
AAVE_BASE_CURRENCY = "USD"  # `protocols.aave.BASE_CURRENCY` (Ethereum's; a test keeps them equal)
ETHER = "ETH"


@dataclass(frozen=True, slots=True)
class Total:
    """A total the venue reports for `account`, in one of `currencies` (known at run time)."""

    account: str
    currencies: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one venue can produce; see the module's table."""

    assets: frozenset[str] = frozenset()
    open_ended: str | None = None
    totals: tuple[Total, ...] = ()
    quotes: frozenset[tuple[str, str]] | None = frozenset()
    edges: frozenset[tuple[str, str]] = frozenset()
    problems: tuple[str, ...] = ()


def demo_capabilities(config: DemoVenue) -> Capabilities:
    return Capabilities(
        assets=frozenset(line.asset.symbol for line in basis_positions(config.name, Market())),
        quotes=frozenset(demo.market_rates(Market())),
    )


def manual_capabilities(config: ManualVenue) -> Capabilities:
    """The file as it is now: it is read again at every fetch, so this is today's content."""
    try:
        raw = config.path.read_bytes()
    except OSError as exc:
        problem = f"cannot read {config.path} ({exc.strerror}): the venue fails until it can"
        return Capabilities(quotes=None, problems=(problem,))
    venue = manual.ManualVenue(config.name, config.path, lambda: datetime.now(UTC))
    try:
        content = venue.parse(raw)
    except VenueDataError as exc:
        return Capabilities(quotes=None, problems=(f"{exc.reason}: the venue fails until fixed",))
    assets = {line.asset for line in content.positions}
    assets |= {line.pnl_currency for line in content.positions if line.pnl_currency}
    return Capabilities(
        assets=frozenset(assets),
        totals=tuple(Total(total.account, (total.currency,)) for total in content.reported),
        quotes=frozenset((rate.base, rate.quote) for rate in content.quotes),
    )


def exchange_capabilities(config: ExchangeVenue) -> Capabilities:
    """An exchange account may hold any coin: only its totals' currencies are known."""
    totals = EXCHANGE_TOTALS[config.kind]
    return Capabilities(
        open_ended="may hold any coin (and USD legs of inverse contracts)",
        totals=tuple(
            Total(account, totals[account]) for account in config.accounts if account in totals
        ),
        quotes=None,  # any spot pair the exchange lists
    )


def chain_capabilities(config: ChainVenue) -> Capabilities:
    """The holdings' configured tokens, Aave's reserves (found at run time), the rates read in
    the venue's multicall."""
    tokens = {**registry_for(config.chain_id).tokens, **config.tokens}
    assets: set[str] = set()
    markets: set[str] = set()
    totals: list[Total] = []
    for holding in config.holdings:
        assets |= {*holding.wallet, *holding.lido, *holding.etherfi, *holding.vaults}
        withdrawals = (
            holding.etherfi_requests,
            holding.etherfi_scan_from_block,
            holding.etherfi_withdrawal_nfts,
            holding.etherfi_priority_queues,
        )
        if any(what not in (None, ()) for what in withdrawals):
            assets.add(ETHER)  # pending requests are locked ETH
        for market in holding.aave:
            markets.add(market)
            totals.append(Total(f"aave-{market}:{holding.address}", (AAVE_BASE_CURRENCY,)))
    quotes = {(vault.symbol, vault.asset) for vault in config.vaults}
    quotes |= {(feed.base, feed.quote) for feed in config.feeds}
    if "wstETH" in tokens:
        quotes.add(("wstETH", "stETH"))  # stEthPerToken, read whether held or not
    if "weETH" in tokens:
        quotes.add(("weETH", "eETH"))  # getRate
    open_ended = None
    if markets:
        names = ", ".join(sorted(markets))
        open_ended = f"holds whichever reserves of Aave {names} it supplies or borrows"
    return Capabilities(
        assets=frozenset(assets),
        open_ended=open_ended,
        totals=tuple(totals),
        quotes=frozenset(quotes),
    )


# One function per venue kind; a new kind (or what a kind adds, such as the edges of its
# contracts) is added here.
BY_KIND: Mapping[type, Callable[[Any], Capabilities]] = {
    DemoVenue: demo_capabilities,
    ManualVenue: manual_capabilities,
    ExchangeVenue: exchange_capabilities,
    ChainVenue: chain_capabilities,
}


def capabilities(config: DemoVenue | ManualVenue | ExchangeVenue | ChainVenue) -> Capabilities:
    return BY_KIND[type(config)](config)
