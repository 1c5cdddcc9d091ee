"""Quotes and the conversion graph that turns them into share-class prices (pure, no I/O).

No exchange lists aUSDT or variableDebtWETH, and an LST is worth its protocol rate times its
underlying (spec-notes row 10). So prices are not looked up per asset; they are *derived* along a
graph whose edges are quotes:

    aEthwstETH --1:1--> wstETH --stEthPerToken--> stETH --feed--> ETH --ticker--> USDT

Every edge can be walked backwards (the rate inverted), so the same quotes value a USDT balance
in an ETH share class.

`resolve` picks, for every asset, the path with the fewest hops; among equally short paths, a
clean one over a suspect one; then the one whose oldest quote is freshest; then the alphabetically
first next hop, so the same quotes always give the same prices. Quotes past their `max_age` are
not used; nor are quotes whose rate is not a positive number, and those are named as
`QuoteFailure`s beside the ones the oracle reports (a fallback source may still cover the edge).

When two fresh sources for one edge disagree by more than `max_deviation_bps`, every price whose
path uses that edge is *suspect*. The edge stays suspect until the sources come back within
`SUSPECT_EXIT_RATIO` of the limit, so a deviation hovering around the limit does not make a book
flap between complete and incomplete every cycle (the caller passes the edges that were suspect
in its previous snapshot). A price whose path took a fallback source (rank > 0: the preferred
source had no fresh quote) is marked `fallback`.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, localcontext

from equity_daemon.model import PriceUsed

# Enough digits that inverting and chaining a handful of 18-decimal rates stays exact to far
# below a wei; money never passes through a float.
PRICE_PRECISION = 50
BASIS_POINTS = Decimal(10_000)
# An edge once suspect stays so until its sources agree within this share of the limit
# (hysteresis): 45/55 bps around a 50 bps limit must not turn a book incomplete every other cycle.
SUSPECT_EXIT_RATIO = Decimal("0.8")


class SourceKind(enum.StrEnum):
    """Where an edge's rate comes from."""

    EXCHANGE_TICKER = "exchange_ticker"
    ONCHAIN_FEED = "onchain_feed"
    PROTOCOL_RATE = "protocol_rate"
    FIXED = "fixed"


@dataclass(frozen=True, slots=True)
class Quote:
    """1 `base` is worth `rate` `quote`, says `source`, as of `at`.

    `rank` is the source's place in its edge's fallback list (0 is preferred). `cross_check`
    False: the edge's sources are fallbacks only, never compared (a contract's mark and the
    mark its position answer carried, which is as old as the position and no cross-check).
    """

    base: str
    quote: str
    rate: Decimal
    source: str
    at: datetime
    max_age: timedelta
    rank: int = 0
    cross_check: bool = True

    @property
    def edge(self) -> str:
        return f"{self.base}/{self.quote}"


@dataclass(frozen=True, slots=True)
class QuoteFailure:
    """A source that gave no usable quote for `edge` (`base/quote`) this cycle, and why.

    The oracle reports timeouts, exceptions, non-positive or NaN rates and future dates; `resolve`
    adds the quotes it refuses itself (`rate <= 0`).
    """

    edge: str
    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class Disagreement:
    """Two fresh sources for one edge that differ by more than the allowed deviation."""

    edge: str
    used: Quote
    other: Quote
    deviation_bps: Decimal

    def describe(self) -> str:
        return (
            f"{self.edge}: {self.used.source} {self.used.rate} vs "
            f"{self.other.source} {self.other.rate} ({self.deviation_bps:.1f} bps)"
        )


@dataclass(frozen=True, slots=True)
class PriceTable:
    """The outcome of `resolve`: a price per reachable asset, and what was left out and why.

    `disagreements` is keyed by edge key (`_edge_key`: the two assets in name order); `failures`
    holds the failures given to `resolve` and the quotes it refused, sorted.
    """

    prices: Mapping[str, PriceUsed]
    disagreements: Mapping[str, Disagreement]
    stale: tuple[Quote, ...]
    failures: tuple[QuoteFailure, ...] = ()

    def disagreements_on(self, price: PriceUsed) -> list[Disagreement]:
        hops = zip(price.path, price.path[1:], strict=False)
        return [
            found
            for a, b in hops
            for found in (self.disagreements.get(_edge_key(a, b)),)
            if found is not None
        ]

    def cross_checked(self, price: PriceUsed) -> Decimal:
        """`price` as the other side of every disagreement on its path would make it: each
        disputed hop at the cross-checking source's rate instead of the used one's."""
        with localcontext() as ctx:
            ctx.prec = PRICE_PRECISION
            value = price.price
            for a, b in zip(price.path, price.path[1:], strict=False):
                found = self.disagreements.get(_edge_key(a, b))
                if found is not None:
                    hop = f"{a}/{b}"
                    value = (
                        value * _oriented_rate(found.other, hop) / _oriented_rate(found.used, hop)
                    )
            return value


@dataclass(frozen=True, slots=True)
class _Hop:
    """One step of a walk from the share class outwards: 1 `asset` = `worth` of where we stand."""

    asset: str
    worth: Decimal
    quote: Quote
    suspect: bool

    @property
    def fallback(self) -> bool:
        return self.quote.rank > 0


def resolve(
    quotes: Iterable[Quote],
    share_class: str,
    now: datetime,
    max_deviation_bps: Decimal,
    *,
    previously_suspect: Collection[str] = frozenset(),
    quote_failures: Sequence[QuoteFailure] = (),
) -> PriceTable:
    """Value every asset the quotes connect to `share_class`.

    Args:
        quotes: every quote fetched this cycle, from all sources (fallbacks included).
        share_class: the currency to value in (its own price is 1).
        now: the snapshot time; quotes older than their `max_age` at `now` are dropped.
        max_deviation_bps: how far two sources for one edge may differ before it is suspect.
        previously_suspect: the edge keys suspect in the previous snapshot (its `suspect_edges`,
            the previous table's `disagreements`); they stay suspect until their deviation falls
            below `SUSPECT_EXIT_RATIO` of the limit.
        quote_failures: the sources that gave no quote this cycle, to be named in the table.
    """
    with localcontext() as ctx:
        ctx.prec = PRICE_PRECISION
        fresh, stale, refused = _split_fresh(quotes, now)
        chosen, disagreements = _choose_per_edge(fresh, max_deviation_bps, previously_suspect)
        hops = _walkable_hops(chosen, disagreements)
        prices = _best_paths(hops, share_class, now)
    failures = sorted([*quote_failures, *refused], key=lambda f: (f.edge, f.source, f.reason))
    return PriceTable(prices, disagreements, tuple(stale), tuple(failures))


def _edge_key(a: str, b: str) -> str:
    """Both directions of an edge share one key, so quotes for ETH/USDT and USDT/ETH compare."""
    return f"{a}/{b}" if a <= b else f"{b}/{a}"


def _split_fresh(
    quotes: Iterable[Quote], now: datetime
) -> tuple[list[Quote], list[Quote], list[QuoteFailure]]:
    """Usable quotes by age, and the quotes refused for their rate."""
    fresh: list[Quote] = []
    stale: list[Quote] = []
    refused: list[QuoteFailure] = []
    for quote in quotes:
        # is_finite first: comparing a NaN Decimal raises; an infinite rate is no rate either
        if not quote.rate.is_finite() or quote.rate <= 0:
            reason = "rate <= 0" if quote.rate.is_finite() else "rate is not finite"
            refused.append(QuoteFailure(quote.edge, quote.source, reason))
            continue
        (stale if now - quote.at > quote.max_age else fresh).append(quote)
    return fresh, stale, refused


def _oriented_rate(quote: Quote, key: str) -> Decimal:
    """The quote's rate as `key` reads (inverted when the quote runs the other way)."""
    return quote.rate if quote.edge == key else 1 / quote.rate


def _choose_per_edge(
    fresh: list[Quote], max_deviation_bps: Decimal, previously_suspect: Collection[str]
) -> tuple[dict[str, Quote], dict[str, Disagreement]]:
    by_edge: dict[str, list[Quote]] = {}
    for quote in fresh:
        by_edge.setdefault(_edge_key(quote.base, quote.quote), []).append(quote)

    chosen: dict[str, Quote] = {}
    disagreements: dict[str, Disagreement] = {}
    for key, candidates in by_edge.items():
        # a total order: the same quotes in any order give the same choice
        candidates.sort(key=lambda q: (q.rank, -q.at.timestamp(), q.source, _oriented_rate(q, key)))
        used = candidates[0]
        chosen[key] = used
        used_rate = _oriented_rate(used, key)
        was_suspect = key in previously_suspect
        for other in candidates[1:] if used.cross_check else ():
            deviation = abs(_oriented_rate(other, key) - used_rate) / used_rate * BASIS_POINTS
            if _disagree(deviation, max_deviation_bps, was_suspect):
                disagreements[key] = Disagreement(key, used, other, deviation)
                break
    return chosen, disagreements


def _disagree(deviation: Decimal, max_deviation_bps: Decimal, was_suspect: bool) -> bool:
    """Suspect above the limit; once suspect, until the deviation falls below the exit level."""
    if was_suspect:
        return deviation >= max_deviation_bps * SUSPECT_EXIT_RATIO
    return deviation > max_deviation_bps


def _walkable_hops(
    chosen: Mapping[str, Quote], disagreements: Mapping[str, Disagreement]
) -> dict[str, list[_Hop]]:
    """For each asset, the assets one quote away from it, in a fixed order.

    Walking from a quote's `quote` side to its `base` multiplies by the rate as quoted; only the
    other direction divides, so a chain of forward quotes stays exact.
    """
    hops: dict[str, list[_Hop]] = {}
    for key, quote in chosen.items():
        suspect = key in disagreements
        hops.setdefault(quote.quote, []).append(_Hop(quote.base, quote.rate, quote, suspect))
        hops.setdefault(quote.base, []).append(_Hop(quote.quote, 1 / quote.rate, quote, suspect))
    for outgoing in hops.values():
        outgoing.sort(key=lambda hop: hop.asset)
    return hops


def _best_paths(
    hops: Mapping[str, list[_Hop]], share_class: str, now: datetime
) -> dict[str, PriceUsed]:
    """Breadth-first from the share class, one layer (one hop more) at a time.

    A layer holds the shortest paths; within it `_better` picks one per asset.
    """
    prices = {share_class: PriceUsed(share_class, Decimal(1), (share_class,), (), now)}
    layer = [share_class]
    while layer:
        candidates: dict[str, PriceUsed] = {}
        for known in layer:
            via = prices[known]
            for hop in hops.get(known, ()):
                if hop.asset in prices:
                    continue
                candidate = PriceUsed(
                    asset=hop.asset,
                    price=via.price * hop.worth,
                    path=(hop.asset, *via.path),
                    sources=(hop.quote.source, *via.sources),
                    as_of=min(via.as_of, hop.quote.at),
                    suspect=via.suspect or hop.suspect,
                    fallback=via.fallback or hop.fallback,
                )
                current = candidates.get(hop.asset)
                if current is None or _better(candidate, current):
                    candidates[hop.asset] = candidate
        prices.update(candidates)
        layer = sorted(candidates)
    return prices


def _better(candidate: PriceUsed, current: PriceUsed) -> bool:
    """Of two equally short paths: clean before suspect, then newer oldest quote, then name."""
    if candidate.suspect != current.suspect:
        return current.suspect
    if candidate.as_of != current.as_of:
        return candidate.as_of > current.as_of
    return candidate.path[1] < current.path[1]
