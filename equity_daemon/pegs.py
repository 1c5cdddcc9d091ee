"""Pegs: stETH and eETH are redeemable 1:1 for ETH, and trade near it. Pure, no I/O.

A book values such an asset either at its **market** price (the default: what it would fetch
now) or at its **protocol** value (1:1: what it redeems for, given patience), per edge. Either way
the market price is compared with the protocol value, and the difference in basis points is
reported, so a depeg shows before it shows in equity.

Valuing at the peg replaces the edge's market quotes by the peg for the conversion graph; the
market quotes are then not cross-checked against it (a depeg is not a disagreement between
sources: it is what `PegCheck` reports).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from equity_daemon.prices import BASIS_POINTS, Quote

PEG_SOURCE = "peg"


@dataclass(frozen=True, slots=True)
class Peg:
    """1 `base` redeems for `value` `quote`; `value_at_peg` values it so in equity."""

    base: str
    quote: str
    value: Decimal
    value_at_peg: bool = False

    @property
    def edge(self) -> str:
        return f"{self.base}/{self.quote}"


@dataclass(frozen=True, slots=True)
class PegCheck:
    """A pegged asset's market rate against its protocol value, at one snapshot.

    `market` is the most trusted fresh market quote (None when there is none, and then so is
    `basis_points`); `basis_points` is (market / protocol - 1) × 10,000: -30 is 0.3 % below peg.
    """

    base: str
    quote: str
    protocol: Decimal
    market: Decimal | None
    source: str | None
    basis_points: Decimal | None
    valued_at_peg: bool


def apply_pegs(
    quotes: Iterable[Quote], pegs: Mapping[str, Peg], now: datetime
) -> tuple[list[Quote], tuple[PegCheck, ...]]:
    """The quotes to value with (a pegged edge valued at its peg has only the peg) and a check
    per peg."""
    used: list[Quote] = []
    market: dict[str, list[Quote]] = {}
    for quote in quotes:
        peg = pegs.get(quote.edge)
        if peg is not None:
            market.setdefault(quote.edge, []).append(quote)
            if peg.value_at_peg:
                continue
        used.append(quote)
    checks = []
    for edge, peg in sorted(pegs.items()):
        if peg.value_at_peg:
            used.append(Quote(peg.base, peg.quote, peg.value, PEG_SOURCE, now, timedelta.max))
        checks.append(_check(peg, market.get(edge, []), now))
    return used, tuple(checks)


def _check(peg: Peg, quotes: list[Quote], now: datetime) -> PegCheck:
    fresh = sorted(
        (q for q in quotes if now - q.at <= q.max_age and q.rate.is_finite() and q.rate > 0),
        key=lambda q: (q.rank, -q.at.timestamp(), q.source),
    )
    best = fresh[0] if fresh else None
    bps = None if best is None else (best.rate / peg.value - 1) * BASIS_POINTS
    return PegCheck(
        base=peg.base,
        quote=peg.quote,
        protocol=peg.value,
        market=None if best is None else best.rate,
        source=None if best is None else best.source,
        basis_points=bps,
        valued_at_peg=peg.value_at_peg,
    )
