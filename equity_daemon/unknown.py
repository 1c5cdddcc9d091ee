"""What a gap in a book's data makes unknown (pure): which totals and breakdown entries.

A sum of what could be valued is not the equity: a venue that has not reported may hold
anything, and a line without a price anyone vouches for may be worth anything. So a gap makes
the equity unknown (None), and with it every figure the gap reaches, while figures it cannot
reach stay exact:

| gap                        | totals | by venue   | by asset  | by account   |
|----------------------------|--------|------------|-----------|--------------|
| a venue with no report yet | None   | its entry  | every one | (none known) |
| a line left out (unvalued) | None   | its venue  | its asset | its account  |

Totals are equity, assets, debt and the perpetuals' unrealised PnL (`equity = assets - debt +
unrealized_pnl`). A line's asset in the breakdown is the one its value is shown under (a
perpetual's leg: its contract, `Gaps.assets`). An entry the gap reaches is listed even when
nothing else is known of it (a venue that never reported, an asset held only in lines left
out), so every reader sees it as unknown rather than missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from equity_daemon.model import PositionLine


@dataclass(frozen=True, slots=True)
class Figures:
    """A book's totals and breakdowns, None where unknown."""

    assets: Decimal | None
    debt: Decimal | None
    unrealized_pnl: Decimal | None
    equity: Decimal | None
    by_venue: dict[str, Decimal | None]
    by_asset: dict[str, Decimal | None]
    by_account: dict[str, dict[str, Decimal | None]]


@dataclass(frozen=True, slots=True)
class Gaps:
    """The venues with no good report yet, and the lines in equity left out for want of a price
    (`assets`: the breakdown assets their values would be shown under; None: their own)."""

    unreported: tuple[str, ...] = ()
    unvalued: tuple[PositionLine, ...] = ()
    assets: frozenset[str] | None = None

    def figures(
        self,
        assets: Decimal,
        debt: Decimal,
        unrealized_pnl: Decimal,
        by_venue: Mapping[str, Decimal],
        by_asset: Mapping[str, Decimal],
        by_account: Mapping[tuple[str, str], Decimal],
    ) -> Figures:
        """The sums of what could be valued, with everything these gaps reach made None."""
        known = not self.unreported and not self.unvalued
        venues = {*self.unreported, *(line.venue for line in self.unvalued)}
        assets_reached = (
            {line.asset for line in self.unvalued} if self.assets is None else set(self.assets)
        )
        accounts_reached = {(line.venue, line.account) for line in self.unvalued}
        nested: dict[str, dict[str, Decimal | None]] = {}
        for key in sorted(by_account.keys() | accounts_reached):
            value = None if key in accounts_reached else by_account[key]
            nested.setdefault(key[0], {})[key[1]] = value
        return Figures(
            assets=assets if known else None,
            debt=debt if known else None,
            unrealized_pnl=unrealized_pnl if known else None,
            equity=assets - debt + unrealized_pnl if known else None,
            by_venue=_reached(by_venue, venues),
            # a venue that has not reported may hold any asset: no asset's total is known
            by_asset=_reached(by_asset, assets_reached, everything=bool(self.unreported)),
            by_account=nested,
        )


def _reached(
    values: Mapping[str, Decimal], reached: set[str], *, everything: bool = False
) -> dict[str, Decimal | None]:
    return {
        key: None if everything or key in reached else values[key]
        for key in sorted(values.keys() | reached)
    }
