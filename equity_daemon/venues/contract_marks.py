"""A contract's mark as a price source: the price of the legs of every open perpetual or future.

An open contract's priced leg is an amount of the contract itself (`exchanges.perp`), an asset
named by exchange and contract (`bybit:ETH/USDT:USDT`) whose price is the contract's mark. No
book configures those edges: each cycle, `ContractMarks.edges` finds the contracts the book's
venues hold (their hedge lines) and gives each an edge, asked with the spot prices of the same
cycle, whose sources are, in order:

1. the exchange's mark, read now: through the `[markets.<name>]` instance of the venue's
   exchange host when there is one (the recommended source), else through the venue's own
   market-data instance (`MarkReader.mark`: each mapping's `mark_request`, one raw public call);
2. the mark each position's own answer carried, dated at that answer (`PositionMark`): never
   older than the positions it values, and only a fallback (flagged `fallback`), never a
   cross-check: it is as old as the position, the exchange's mark is of now.

A mark is never reused from an earlier cycle (`cache_seconds` 0): positions may be newer than
any answer kept. The edge's max age is the venue's: a fallback mark is stale exactly when the
positions it comes with are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any, Protocol

from equity_daemon.errors import VenueDataError
from equity_daemon.model import Position, PositionKind, VenueState
from equity_daemon.oracle import Edge, Observation, QuoteSource
from equity_daemon.prices import SourceKind
from equity_daemon.venues.exchange_errors import exchange_errors
from equity_daemon.venues.exchanges import BadField


@dataclass(frozen=True, slots=True)
class Contract:
    """One contract a venue holds, as its hedge line's details describe it."""

    asset: str  # the priced leg's asset (`bybit:ETH/USDT:USDT`)
    market_id: str | None  # the exchange's own id (`ETHUSDT`); None: its mark cannot be asked
    market_type: str  # `swap`, `future`
    inverse: bool
    base: str  # the price edge: 1 `base` = mark `quote` (`Perp.mark_edge`)
    quote: str

    @classmethod
    def of(cls, hedge: Position) -> Contract | None:
        """The contract of a hedge line; None for one without a priced leg (no `contract_asset`)."""
        details = hedge.details
        asset, base, quote = (details.get(k) for k in ("contract_asset", "mark_base", "mark_quote"))
        if not (isinstance(asset, str) and isinstance(base, str) and isinstance(quote, str)):
            return None
        market_id = details.get("market_id")
        return cls(
            asset=asset,
            market_id=market_id if isinstance(market_id, str) else None,
            market_type=str(details.get("market_type", "swap")),
            inverse=details.get("contract") == "inverse",
            base=base,
            quote=quote,
        )


class MarkReader(Protocol):
    """**Protocol**: what asks an exchange for a contract's mark (an exchange venue, a market)."""

    @property
    def name(self) -> str: ...

    async def mark(self, contract: Contract) -> Decimal: ...


async def read_mark(client: Any, source: str, mapping: ModuleType, contract: Contract) -> Decimal:
    """The contract's mark, read now through `client` with the mapping's raw public call.

    Raises:
        VenueUnavailable, VenueAuthError, VenueDataError: as `exchange_errors` translates ccxt's
            errors; `VenueDataError` too for an answer without the contract's mark.
    """
    if contract.market_id is None:
        raise VenueDataError(source, f"{contract.asset}: no market id to ask its mark with")
    market_id = contract.market_id
    method, params = mapping.mark_request(market_id, contract.market_type, contract.inverse)
    with exchange_errors(source, client):
        answer = await getattr(client, method)(params)
    try:
        mark: Decimal = mapping.mark_answer(answer, market_id)
    except BadField as exc:
        raise VenueDataError(source, f"{contract.asset} mark: {exc}") from None
    return mark


@dataclass(frozen=True, slots=True)
class LiveMark:
    """The exchange's mark of one contract, read when asked (a `QuoteSource`)."""

    reader: MarkReader
    contract: Contract
    clock: Callable[[], datetime]
    kind: SourceKind = SourceKind.EXCHANGE_TICKER
    cache_seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.reader.name

    async def observe(self, base: str, quote: str) -> Observation:
        return Observation(await self.reader.mark(self.contract), self.clock())


@dataclass(frozen=True, slots=True)
class PositionMark:
    """The mark a position's own answer carried, as of that answer (a `QuoteSource`)."""

    name: str
    rate: Decimal
    at: datetime
    kind: SourceKind = SourceKind.EXCHANGE_TICKER
    cache_seconds: float = 0.0

    async def observe(self, base: str, quote: str) -> Observation:
        return Observation(self.rate, self.at)


class ContractMarks:
    """The edges pricing the contracts a book's venues hold.

    Args:
        readers: by venue name, what reads the exchange's mark for that venue's contracts.
        max_age: a venue's max age (the edge's: its fallback is as old as the positions).
        clock: the wall clock, to date a mark read now.
    """

    def __init__(
        self,
        readers: Mapping[str, MarkReader],
        max_age: Callable[[str], timedelta],
        clock: Callable[[], datetime],
    ) -> None:
        self._readers = dict(readers)
        self._max_age = max_age
        self._clock = clock

    def edges(self, states: Iterable[VenueState]) -> list[Edge]:
        """One edge per contract held in the venues' last good reports, sources in the order of
        the module docstring (one live reader; each report's position mark as a fallback)."""
        found: dict[str, tuple[Contract, list[QuoteSource], timedelta]] = {}
        for state in sorted(states, key=lambda s: s.venue):
            report = state.last_good
            if report is None:
                continue
            for position in report.positions:
                contract = None
                if position.kind is PositionKind.HEDGE:
                    contract = Contract.of(position)
                if contract is None:
                    continue
                _, sources, _ = found.setdefault(
                    contract.asset, (contract, [], self._max_age(state.venue))
                )
                reader = self._readers.get(state.venue)
                if reader is not None and not any(isinstance(s, LiveMark) for s in sources):
                    sources.insert(0, LiveMark(reader, contract, self._clock))
                mark = _decimal(position.details.get("mark_price"))
                if mark is not None:
                    name = f"{state.venue} position"
                    sources.append(PositionMark(name, mark, report.data_time))
        return [
            Edge(c.base, c.quote, _unique(sources), max_age, cross_check=False)
            for c, sources, max_age in found.values()
        ]


def _unique(sources: list[QuoteSource]) -> tuple[QuoteSource, ...]:
    """One source per name (two positions of one contract on one venue: its hedge-mode long and
    short carry the same mark)."""
    seen: dict[str, QuoteSource] = {}
    for source in sources:
        seen.setdefault(source.name, source)
    return tuple(seen.values())


def _decimal(value: str | Decimal | None) -> Decimal | None:
    return value if isinstance(value, Decimal) and value.is_finite() and value > 0 else None
