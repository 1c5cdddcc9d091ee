"""The price oracle: fetches every edge's quotes from its sources, each cached as it allows.

An edge (`wstETH/stETH`, `ETH/USDT`) has an ordered list of sources; all of them are asked, so the
preferred one can be cross-checked against the others (`prices.resolve` flags disagreements), and
a fallback is already at hand when the preferred one fails or goes stale.

**Prices as fresh as the positions they value.** In a delta-neutral book equity is the small
difference of two large legs, so a price seconds older than the positions it values is a false
alert. A source therefore says how long its answer may be reused (`cache_seconds`): zero for one
that answers from memory (a streamed ticker, the demo market, a file, a fixed rate), so every
cycle values positions at the prices of that moment; some seconds for a slow remote one (an HTTP
price API), which keeps the saving where it is worth having. A book's `quote_cache_seconds`, when
set, caps every source's. Cache lifetimes run on the monotonic clock.

Every answer passes `sanity.check_rate` (finite, > 0, of sane size, not dated in the future). A
source that fails — raises, times out, blocks in a thread, or answers nonsense — is logged,
counted and named in the round's `failures`: the edge falls back to its other sources, and an
asset left with no fresh path is never valued at zero. The exception's text is logged, so a
source must never put a secret (an RPC URL with a key) into it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Protocol

import anyio
import structlog
from anyio.abc import TaskGroup

from equity_daemon.clock import Clock, offset, shift_since
from equity_daemon.prices import Quote, QuoteFailure, SourceKind
from equity_daemon.runtime.detached import Detached
from equity_daemon.sanity import BadData, check_rate

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Observation:
    """A source's answer: 1 base = `rate` quote, as of `at` (the source's own time, if any)."""

    rate: Decimal
    at: datetime


class QuoteSource(Protocol):
    """**Protocol**: anything that can rate one asset in another.

    Exchange tickers, on-chain feeds (Chainlink) and protocol rates (wstETH `stEthPerToken`) all
    implement this; raising means "no answer this time". `cache_seconds` is how long an answer
    may be reused: 0 for a source that answers from memory.
    """

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> SourceKind: ...

    @property
    def cache_seconds(self) -> float: ...

    async def observe(self, base: str, quote: str) -> Observation: ...


@dataclass(frozen=True, slots=True)
class Edge:
    """One conversion step and the sources to ask for it, most trusted first.

    `cross_check` False: the later sources are fallbacks only, never compared with the first
    (`Quote.cross_check`).
    """

    base: str
    quote: str
    sources: tuple[QuoteSource, ...]
    max_age: timedelta
    cross_check: bool = True


@dataclass(frozen=True, slots=True)
class FixedRate:
    """A configured rate that never ages: aToken -> underlying 1:1, WETH -> ETH 1:1."""

    rate: Decimal
    clock: Callable[[], datetime]
    name: str = "fixed"
    cache_seconds: float = 0.0

    @property
    def kind(self) -> SourceKind:
        return SourceKind.FIXED

    async def observe(self, base: str, quote: str) -> Observation:
        return Observation(self.rate, self.clock())


class ManualRates:
    """Rates set from code: the demo book's random walk, and tests."""

    cache_seconds = 0.0

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


@dataclass(frozen=True, slots=True)
class QuoteRound:
    """One cycle's quotes, and the sources that gave none (with the reason)."""

    quotes: tuple[Quote, ...]
    failures: tuple[QuoteFailure, ...]


@dataclass(frozen=True, slots=True)
class _Answer:
    """A checked observation, when it arrived (monotonic) and the clocks' offset then."""

    observation: Observation
    received: float
    offset: timedelta


class PriceOracle:
    """Collects this cycle's quotes for every edge.

    Args:
        edges: the conversion graph's edges with their sources.
        clock: wall and monotonic clocks; injected so tests control time.
        cache_cap: when set, no answer is reused longer than this (seconds), whatever its
            source allows.
        timeout: how long one source may take before it counts as failed this cycle.
        on_failure: told the source's name for each failed answer (the daemon counts them).
    """

    def __init__(
        self,
        edges: Sequence[Edge],
        clock: Clock,
        cache_cap: float | None = None,
        timeout: float = 10.0,
        on_failure: Callable[[str], None] = lambda source: None,
    ) -> None:
        self._edges = tuple(edges)
        self._clock = clock
        self._cache_cap = cache_cap
        self._timeout = timeout
        self._cache: dict[tuple[str, str, str], _Answer] = {}
        self._calls: dict[tuple[str, str, str], Detached[Observation]] = {}
        self._on_failure = on_failure
        self.failures = 0

    async def quotes(self, tg: TaskGroup | None = None, extra: Sequence[Edge] = ()) -> QuoteRound:
        """Ask every source of every edge (or reuse its cached answer), concurrently.

        With a task group `tg` that outlives the call, a source blocked in a thread cannot hold
        this call past `timeout`: it finishes there on its own and counts as failed this cycle.
        `extra` edges are asked this once beside the configured ones (the contracts a book's
        venues hold now: `venues/contract_marks`).
        """
        found: list[Quote] = []
        failed: list[QuoteFailure] = []
        async with anyio.create_task_group() as local:
            for edge in (*self._edges, *extra):
                for rank, source in enumerate(edge.sources):
                    local.start_soon(self._ask, tg or local, edge, rank, source, found, failed)
        found.sort(key=lambda q: (q.edge, q.rank))
        failed.sort(key=lambda f: (f.edge, f.source))
        return QuoteRound(tuple(found), tuple(failed))

    def _reuse_limit(self, source: QuoteSource) -> float:
        own = source.cache_seconds
        return own if self._cache_cap is None else min(own, self._cache_cap)

    async def _ask(
        self,
        tg: TaskGroup,
        edge: Edge,
        rank: int,
        source: QuoteSource,
        found: list[Quote],
        failed: list[QuoteFailure],
    ) -> None:
        key = (source.name, edge.base, edge.quote)
        answer = self._cache.get(key)
        if answer is None or self._clock.monotonic() - answer.received >= self._reuse_limit(source):
            try:
                answer = await self._fresh_answer(tg, key, edge, source)
            except Exception as exc:  # a source is an adapter boundary: skip it, keep the rest
                self._fail(edge, source, self._describe(exc), failed)
                return
            self._cache[key] = answer
        observation = answer.observation
        found.append(
            Quote(
                base=edge.base,
                quote=edge.quote,
                rate=observation.rate,
                source=source.name,
                at=observation.at + shift_since(self._clock, answer.offset),
                max_age=edge.max_age,
                rank=rank,
                cross_check=edge.cross_check,
            )
        )

    async def _fresh_answer(
        self, tg: TaskGroup, key: tuple[str, str, str], edge: Edge, source: QuoteSource
    ) -> _Answer:
        call = partial(_bounded_observe, source, edge, self._timeout)
        observation = await self._calls.setdefault(key, Detached())(tg, self._timeout, call)
        check_rate(observation.rate, observation.at, self._clock())
        return _Answer(observation, self._clock.monotonic(), offset(self._clock))

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, TimeoutError):
            return f"no answer within {self._timeout:g}s"
        if isinstance(exc, BadData):
            return str(exc)
        return f"{type(exc).__name__}: {exc}"

    def _fail(
        self, edge: Edge, source: QuoteSource, reason: str, failed: list[QuoteFailure]
    ) -> None:
        self.failures += 1
        self._on_failure(source.name)
        name = f"{edge.base}/{edge.quote}"
        failed.append(QuoteFailure(name, source.name, reason))
        log.warning("quote_failed", edge=name, source=source.name, error=reason)


async def _bounded_observe(source: QuoteSource, edge: Edge, seconds: float) -> Observation:
    with anyio.fail_after(seconds):
        return await source.observe(edge.base, edge.quote)
