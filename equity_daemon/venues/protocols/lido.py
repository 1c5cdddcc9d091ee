"""Lido: stETH (rebasing) and wstETH balances (account `lido:0x…`, a `TokenReader`), and the
wstETH/stETH rate.

`stEthPerToken()` is the exact conversion edge wstETH → stETH, read in the same multicall as
the balances it values.
"""

from __future__ import annotations

from equity_daemon.venues.protocols import RateReader


def wsteth_rate(wsteth: str) -> RateReader:
    """wstETH → stETH: `stEthPerToken()` (stETH for 1 wstETH, 1e18 scale)."""
    return RateReader("wstETH", "stETH", wsteth, "stEthPerToken()")
