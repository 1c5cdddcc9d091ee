"""Edges every book has without writing them: tokens that *are* another asset, 1:1. Pure.

| held                                  | is worth 1 | because                                    |
|---------------------------------------|------------|--------------------------------------------|
| `WETH`                                | `ETH`      | the WETH contract swaps the two 1:1        |
| `aEth<X>`, `aEthLido<X>`, `aEthEtherFi<X>` | `<X>` | an Aave aToken's `balanceOf` is `<X>` owed |
| `variableDebtEth<X>` (`Lido`, `EtherFi`) | `<X>`   | a debt token's `balanceOf` is `<X>` owed   |

The Aave names are the Ethereum markets' (Core, Prime, EtherFi: `a` or `variableDebt`, then
`Eth`, the market's prefix and the underlying's symbol). A chain venue names its Aave lines by
the underlying already; these edges serve a wallet or a file that holds the tokens themselves.

An edge the book configures for the same pair (either direction) replaces the built-in one: a
book that prices WETH from a market of its own is valued as it says.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from equity_daemon.prices import Quote

SOURCE = "built-in"
SAME_AS = {"WETH": "ETH"}
AAVE_TOKEN = re.compile(r"^(?:a|variableDebt)Eth(?:Lido|EtherFi)?(?P<underlying>[A-Za-z0-9]\S*)$")


def same_as(symbol: str) -> str | None:
    """The asset `symbol` is worth 1:1 by construction, if any."""
    if symbol in SAME_AS:
        return SAME_AS[symbol]
    found = AAVE_TOKEN.match(symbol)
    return None if found is None else found["underlying"]


def builtin_edges(
    symbols: Iterable[str], configured: Collection[str] = ()
) -> list[tuple[str, str]]:
    """The built-in edges (base, quote) that `symbols` need, and those their quotes need in turn
    (`aEthWETH` -> `WETH` -> `ETH`), less the pairs the book has an edge for: `configured`
    names edges as `base/quote`, in either direction."""
    edges: list[tuple[str, str]] = []
    seen: set[str] = set()
    pending = sorted(set(symbols))
    while pending:
        symbol = pending.pop()
        if symbol in seen:
            continue
        seen.add(symbol)
        underlying = same_as(symbol)
        if underlying is None or configured_either_way(symbol, underlying, configured):
            continue
        edges.append((symbol, underlying))
        pending.append(underlying)
    return sorted(edges)


def configured_either_way(a: str, b: str, configured: Collection[str]) -> bool:
    return f"{a}/{b}" in configured or f"{b}/{a}" in configured


def builtin_quotes(
    symbols: Iterable[str], configured: Collection[str], now: datetime
) -> list[Quote]:
    """The built-in edges as quotes of 1 that never age, for one cycle valued at `now`."""
    return [
        Quote(base, quote, Decimal(1), SOURCE, now, timedelta.max)
        for base, quote in builtin_edges(symbols, configured)
    ]
