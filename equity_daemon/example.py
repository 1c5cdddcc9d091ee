"""Built-in example books, valued without keys or network.

`basis_book` is the USDT share-class basis trade of the specification: wstETH held on-chain, the
same ETH exposure shorted as a perpetual on a CEX, USDT collateral in the futures account, and some
ETH waiting in an EtherFi withdrawal. Its equity barely moves with the ETH price.

`leveraged_staking_book` is the ETH share-class loop: wstETH supplied to Aave, WETH borrowed against
it. Its equity moves with the staking rate, not with the ETH price.

The `demo` venue holds the basis book and walks its market; the tests value both books to check
the arithmetic end to end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from equity_daemon.model import Asset, Position, PositionKind, ShareClass, VenueReport, VenueState
from equity_daemon.prices import Quote

WSTETH_HELD = Decimal(100)
PERP_ENTRY = Decimal(3000)
FUTURES_COLLATERAL = Decimal(150_000)
AAVE_SUPPLIED_WSTETH = Decimal(1000)
AAVE_BORROWED_WETH = Decimal(900)
QUOTE_MAX_AGE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Market:
    """The prices an example book is valued at."""

    eth_usdt: Decimal = Decimal(3000)
    steth_per_wsteth: Decimal = Decimal("1.2")
    steth_eth: Decimal = Decimal(1)
    funding_earned: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Book:
    name: str
    share_class: ShareClass
    venues: tuple[VenueState, ...]
    quotes: tuple[Quote, ...]


def _state(report: VenueReport) -> VenueState:
    return VenueState(latest=report, last_good=report)


def _quote(base: str, quote: str, rate: Decimal, source: str, at: datetime) -> Quote:
    return Quote(base, quote, rate, source, at, QUOTE_MAX_AGE)


def market_quotes(market: Market, at: datetime) -> tuple[Quote, ...]:
    """The conversion graph's edges at `market` prices, as each kind of source would give them."""
    return (
        _quote("ETH", "USDT", market.eth_usdt, "binance", at),
        _quote("wstETH", "stETH", market.steth_per_wsteth, "lido", at),
        _quote("stETH", "ETH", market.steth_eth, "chainlink", at),
        _quote("WETH", "ETH", Decimal(1), "fixed", at),
        _quote("aEthwstETH", "wstETH", Decimal(1), "fixed", at),
        _quote("variableDebtEthWETH", "WETH", Decimal(1), "fixed", at),
    )


def basis_positions(venue: str, market: Market) -> tuple[Position, ...]:
    """Long wstETH, short the same ETH as a perp; delta-neutral in USDT."""
    hedged_eth = WSTETH_HELD * market.steth_per_wsteth * market.steth_eth
    unrealized = hedged_eth * (PERP_ENTRY - market.eth_usdt)
    pnl: dict[str, str | Decimal] = {
        "unrealized_pnl": unrealized,
        "pnl_currency": "USDT",
        "entry_price": PERP_ENTRY,
        "mark_price": market.eth_usdt,
    }
    perp = "ETH/USDT:USDT:BOTH"
    return (
        Position(venue, "wallet", Asset("wstETH", "ethereum"), WSTETH_HELD),
        Position(venue, "wallet", Asset("USDT", "ethereum"), Decimal("2500.50")),
        Position(venue, "usdm", Asset("USDT"), FUTURES_COLLATERAL + market.funding_earned),
        Position(venue, "usdm", Asset("ETH"), -hedged_eth, PositionKind.HEDGE, pnl, perp),
        # the perpetual's uPnL: in equity, neither held nor owed
        Position(venue, "usdm", Asset("USDT"), unrealized, PositionKind.UNREALIZED_PNL, {}, perp),
        Position(venue, "etherfi", Asset("ETH"), Decimal(2), PositionKind.LOCKED),
    )


def leveraged_staking_positions(venue: str) -> tuple[Position, ...]:
    """wstETH supplied to Aave, WETH borrowed against it; for an ETH share class."""
    return (
        Position(venue, "aave", Asset("aEthwstETH", "ethereum"), AAVE_SUPPLIED_WSTETH),
        Position(
            venue,
            "aave",
            Asset("variableDebtEthWETH", "ethereum"),
            AAVE_BORROWED_WETH,
            PositionKind.DEBT,
        ),
    )


def book(
    name: str,
    share_class: ShareClass,
    positions: tuple[Position, ...],
    market: Market,
    at: datetime,
) -> Book:
    """A one-venue book at `market` prices, as of `at`."""
    report = VenueReport(venue=positions[0].venue, fetched_at=at, positions=positions)
    return Book(name, share_class, (_state(report),), market_quotes(market, at))


def basis_book(market: Market, at: datetime) -> Book:
    return book("basis", ShareClass.USDT, basis_positions("demo", market), market, at)


def leveraged_staking_book(market: Market, at: datetime) -> Book:
    return book("staking", ShareClass.ETH, leveraged_staking_positions("demo"), market, at)
