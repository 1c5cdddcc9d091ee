"""The price oracle: fetches every edge's quotes from its sources, with a short cache.

An edge (`wstETH/stETH`, `ETH/USDT`) has an ordered list of sources; all of them are asked, so the
preferred one can be cross-checked against the others (`prices.resolve` flags disagreements), and
a fallback is already at hand when the preferred one fails or goes stale. An answer is reused for
`cache_ttl` (30 s, as the specification asks) so a 1 s calculator loop does not hammer a venue.

A source that raises is logged and skipped: the edge falls back to its other sources, and an
asset left with no fresh path is *unpriced* in the snapshot, never valued at zero. The exception's
text is logged, so a source must never put a secret (an RPC URL with a key) into it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

import anyio
import structlog

from equity_daemon.prices import Quote, SourceKind

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Observation:
    """A source's answer: 1 base = `rate` quote, as of `at` (the source's own time, if any)."""

    rate: Decimal
    at: datetime


class QuoteSource(Protocol):
    """**Protocol**: anything that can rate one asset in another.

    Exchange tickers, on-chain feeds (Chainlink) and protocol rates (wstETH `stEthPerToken`) all
    implement this; raising means "no answer this time".
    """

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> SourceKind: ...

    async def observe(self, base: str, quote: str) -> Observation: ...


@dataclass(frozen=True, slots=True)
class Edge:
    """One conversion step and the sources to ask for it, most trusted first."""

    base: str
    quote: str
    sources: tuple[QuoteSource, ...]
    max_age: timedelta


@dataclass(frozen=True, slots=True)
class FixedRate:
    """A configured rate that never ages: aToken -> underlying 1:1, WETH -> ETH 1:1."""

    rate: Decimal
    clock: Callable[[], datetime]
    name: str = "fixed"

    @property
    def kind(self) -> SourceKind:
        return SourceKind.FIXED

    async def observe(self, base: str, quote: str) -> Observation:
        return Observation(self.rate, self.clock())


class ManualRates:
    """Rates set from code: the demo book's random walk, and tests."""

    def __init__(self, name: str, kind: SourceKind = SourceKind.EXCHANGE_TICKER) -> None:
        self.name = name
        self.kind = kind
        self._rates: dict[tuple[str, str], Observation] = {}

    def set(self, base: str, quote: str, rate: Decimal, at: datetime) -> None:
        self._rates[(base, quote)] = Observation(rate, at)

    async def observe(self, base: str, quote: str) -> Observation:
        try:
            return self._rates[(base, quote)]
        except KeyError:
            raise LookupError(f"{self.name} has no rate for {base}/{quote}") from None


def peg(base: str, quote: str, clock: Callable[[], datetime]) -> Edge:
    """An edge worth exactly 1 by construction (aToken and debt token to their underlying)."""
    return Edge(base, quote, (FixedRate(Decimal(1), clock),), max_age=timedelta.max)


class PriceOracle:
    """Collects this cycle's quotes for every edge.

    Args:
        edges: the conversion graph's edges with their sources.
        clock: the wall clock (UTC); injected so tests control time.
        cache_ttl: how long a source's answer is reused.
        timeout: how long one source may take before it is skipped this cycle.
        on_failure: told the source's name for each failed answer (the daemon counts them).
    """

    def __init__(
        self,
        edges: Sequence[Edge],
        clock: Callable[[], datetime],
        cache_ttl: timedelta = timedelta(seconds=30),
        timeout: float = 10.0,
        on_failure: Callable[[str], None] = lambda source: None,
    ) -> None:
        self._edges = tuple(edges)
        self._clock = clock
        self._cache_ttl = cache_ttl
        self._timeout = timeout
        self._cache: dict[tuple[str, str, str], tuple[datetime, Observation]] = {}
        self._on_failure = on_failure
        self.failures = 0

    async def quotes(self) -> list[Quote]:
        """Ask every source of every edge (or reuse its cached answer), concurrently."""
        found: list[Quote] = []
        async with anyio.create_task_group() as tg:
            for edge in self._edges:
                for rank, source in enumerate(edge.sources):
                    tg.start_soon(self._ask, edge, rank, source, found)
        found.sort(key=lambda q: (q.edge, q.rank))
        return found

    async def _ask(self, edge: Edge, rank: int, source: QuoteSource, found: list[Quote]) -> None:
        key = (source.name, edge.base, edge.quote)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._cache_ttl:
            observation = cached[1]
        else:
            try:
                with anyio.fail_after(self._timeout):
                    observation = await source.observe(edge.base, edge.quote)
            except Exception as exc:  # a source is an adapter boundary: skip it, keep the rest
                self.failures += 1
                self._on_failure(source.name)
                log.warning(
                    "quote_failed",
                    edge=f"{edge.base}/{edge.quote}",
                    source=source.name,
                    error=f"{type(exc).__name__}: {exc}",
                )
                return
            self._cache[key] = (now, observation)
        found.append(
            Quote(
                base=edge.base,
                quote=edge.quote,
                rate=observation.rate,
                source=source.name,
                at=observation.at,
                max_age=edge.max_age,
                rank=rank,
            )
        )
