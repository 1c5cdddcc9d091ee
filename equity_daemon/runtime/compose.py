"""Making the running parts from their settings: venues, price sources, markets, rate limits.

Each venue kind's machinery is imported when a venue of that kind is made, in plain sight
below: a book of manual venues never loads web3 (0.7 s) or ccxt (0.5 s), and an exchange book
never loads web3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from equity_daemon.clock import Clock
from equity_daemon.model import VenueState
from equity_daemon.oracle import Edge, QuoteSource
from equity_daemon.settings import (
    ChainVenue,
    DemoVenue,
    ExchangeVenue,
    ManualVenue,
    MarketSettings,
    PriceApiSettings,
    Settings,
)
from equity_daemon.venues.base import Venue

if TYPE_CHECKING:
    from equity_daemon.venues.contract_marks import Contract
    from equity_daemon.venues.exchange_budget import BudgetListener, RequestBudget
    from equity_daemon.venues.market_data import ExchangeMarket


class ExchangeHosts(Protocol):
    """**Protocol**: every exchange host's rate limit and ban (`exchange_budget.Budgets`)."""

    @property
    def exchanges(self) -> list[str]: ...

    def for_host(
        self, exchange_id: str, *, sandbox: bool = False, base_url: str | None = None
    ) -> RequestBudget: ...

    def bans(self) -> dict[str, datetime]: ...

    def weight_since_last_call(self) -> dict[str, float]: ...


class NoExchanges:
    """The hosts of a daemon that calls no exchange: nothing spent, nothing banned."""

    @property
    def exchanges(self) -> list[str]:
        return []

    def for_host(
        self, exchange_id: str, *, sandbox: bool = False, base_url: str | None = None
    ) -> RequestBudget:
        raise LookupError(f"no exchange is configured, yet {exchange_id} was asked for")

    def bans(self) -> dict[str, datetime]:
        return {}

    def weight_since_last_call(self) -> dict[str, float]:
        return {}


def make_hosts(settings: Settings, listener: BudgetListener, clock: Clock) -> ExchangeHosts:
    """One rate limiter and ban per exchange host, when any venue or market calls one."""
    venues = [venue for book in settings.books.values() for venue in book.venues]
    if not settings.markets and not any(isinstance(v, ExchangeVenue) for v in venues):
        return NoExchanges()
    from equity_daemon.venues.exchange_budget import Budgets  # ccxt

    return Budgets(listener, clock)


def make_venue(
    config: DemoVenue | ManualVenue | ExchangeVenue | ChainVenue,
    clock: Clock,
    on_disagreement: Callable[[str], None] | None = None,
    budgets: ExchangeHosts | None = None,
    on_behind: Callable[[str, str], None] | None = None,
) -> Venue:
    if isinstance(config, ChainVenue):
        from equity_daemon.venues import chain  # web3

        return chain.ChainVenue(config, clock, on_behind)
    if isinstance(config, ExchangeVenue):
        from equity_daemon.venues import exchange  # ccxt
        from equity_daemon.venues.exchange_client import Credentials

        password = None if config.password is None else config.password.get_secret_value()
        base_url = None if config.base_url is None else str(config.base_url)
        budget = None
        if budgets is not None:  # one rate limiter per exchange host, with its market data
            budget = budgets.for_host(config.kind, sandbox=config.sandbox, base_url=base_url)
        streaming: dict[str, Any] = {}
        if config.stream and exchange.streams(config.kind, config.accounts):
            streaming = {
                "keepalive": config.keepalive_seconds,
                "resync_seconds": config.resync_seconds,
                "poll_seconds": config.interval_seconds,  # what no push carries, meanwhile
            }
        return (exchange.StreamingExchangeVenue if streaming else exchange.ExchangeVenue)(
            config.name,
            config.kind,
            config.accounts,
            Credentials(
                config.api_key.get_secret_value(), config.secret.get_secret_value(), password
            ),
            clock,
            base_url=base_url,
            sandbox=config.sandbox,
            # a fetch makes several requests: each gets half the fetch's time
            request_timeout=config.timeout_seconds / 2,
            rate_limit=config.rate_limit,
            in_transit=config.in_transit,
            on_disagreement=on_disagreement,
            budget=budget,
            **streaming,
        )
    if isinstance(config, DemoVenue):
        from equity_daemon.venues import demo

        return demo.DemoVenue(
            config.name,
            clock,
            config.interval_seconds,
            config.seed,
            config.volatility,
            config.funding_per_step,
            config.keepalive_seconds,
        )
    from equity_daemon.venues import manual

    return manual.ManualVenue(config.name, config.path, clock)


def make_price_source(name: str, config: PriceApiSettings) -> QuoteSource:
    from equity_daemon.price_api import DefiLlama

    return DefiLlama(
        name,
        str(config.base_url),
        config.coins,
        config.timeout_seconds,
        config.cache_seconds,
        config.min_confidence,
    )


def make_market(
    name: str, config: MarketSettings, clock: Clock, budgets: ExchangeHosts
) -> ExchangeMarket:
    from equity_daemon.venues.market_data import ExchangeMarket  # ccxt

    base_url = None if config.base_url is None else str(config.base_url)
    return ExchangeMarket(
        name,
        config.kind,
        clock,
        base_url=base_url,
        sandbox=config.sandbox,
        request_timeout=config.timeout_seconds,
        rate_limit=config.rate_limit,
        cache_seconds=config.cache_seconds,
        stream=config.stream,
        budget=budgets.for_host(config.kind, sandbox=config.sandbox, base_url=base_url),
    )


class ContractPricing(Protocol):
    """**Protocol**: the edges pricing the perpetual contracts a book's venues hold, each cycle
    (`contract_marks.ContractMarks`)."""

    def edges(self, states: Iterable[VenueState]) -> list[Edge]: ...


class NoContracts:
    """The contract pricing of a book without exchange venues: no contract, no edge."""

    def edges(self, states: Iterable[VenueState]) -> list[Edge]:
        return []


@runtime_checkable
class ReadsMarks(Protocol):
    """**Protocol**: a venue or market that reads an exchange's contract marks, and the host
    it calls (an exchange venue, an `ExchangeMarket`)."""

    @property
    def name(self) -> str: ...

    @property
    def host(self) -> Any: ...

    async def mark(self, contract: Contract) -> Decimal: ...


def make_contract_pricing(
    venues: Iterable[Venue],
    markets: Iterable[ExchangeMarket],
    max_age: Callable[[str], timedelta],
    clock: Callable[[], datetime],
) -> ContractPricing:
    """Each exchange venue's contracts priced at their own marks, read through the market of
    the venue's exchange host where one is configured, else through the venue itself."""
    hosts: Sequence[ExchangeMarket] = list(markets)
    readers: dict[str, ReadsMarks] = {}
    for venue in venues:
        if isinstance(venue, ReadsMarks):
            same_host = (market for market in hosts if market.host == venue.host)
            readers[venue.name] = next(same_host, venue)
    if not readers:
        return NoContracts()
    from equity_daemon.venues.contract_marks import ContractMarks  # ccxt

    return ContractMarks(readers, max_age, clock)
