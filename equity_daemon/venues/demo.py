"""A simulated basis book that needs no keys and no network (like httpx's MockTransport).

wstETH in a wallet, the same ETH shorted as a perpetual, USDT margin earning funding, and ETH in
an EtherFi withdrawal. The ETH price takes a seeded random walk; the book stays delta-neutral, so
its USDT equity moves only with the funding it earns (0.1 % about every twenty steps) — enough
for the demo to show a threshold alert within two minutes. With `funding_per_step = 0` its
equity does not move at all, however the price walks: a check that prices and positions are
valued at the same moment.

It streams: every `interval` it steps the market and pushes a report. It also quotes the edges
its book needs (ETH/USDT, wstETH/stETH, stETH/ETH), so it can serve as a price source.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

import anyio

from equity_daemon.example import Market, basis_positions
from equity_daemon.model import VenueReport
from equity_daemon.oracle import Observation
from equity_daemon.prices import SourceKind

FUNDING_PER_STEP = Decimal(25)
STAKING_GROWTH_PER_STEP = Decimal("1.000000002")
WEI = Decimal("1e-18")  # on-chain rates have 18 decimals


class DemoVenue:
    """The simulated book. `step()` moves the market one tick."""

    kind = SourceKind.EXCHANGE_TICKER
    cache_seconds = 0.0  # quotes from memory, at the moment of the positions

    def __init__(
        self,
        name: str,
        clock: Callable[[], datetime],
        interval: float,
        seed: int | None = None,
        volatility: Decimal = Decimal("0.0005"),
        funding_per_step: Decimal = FUNDING_PER_STEP,
        keepalive: float | None = None,
    ) -> None:
        self.name = name
        self.market = Market()
        self.keepalive = 3 * interval if keepalive is None else keepalive
        self._clock = clock
        self._interval = interval
        self._rng = random.Random(seed)
        self._volatility = volatility
        self._funding = funding_per_step

    def step(self) -> None:
        shock = Decimal(self._rng.randint(-1000, 1000)) / 1000 * self._volatility
        m = self.market
        self.market = replace(
            m,
            eth_usdt=(m.eth_usdt * (1 + shock)).quantize(Decimal("0.01")),
            steth_per_wsteth=(m.steth_per_wsteth * STAKING_GROWTH_PER_STEP).quantize(WEI),
            funding_earned=m.funding_earned + self._funding,
        )

    async def fetch(self) -> VenueReport:
        return VenueReport(self.name, self._clock(), basis_positions(self.name, self.market))

    async def updates(self) -> AsyncIterator[VenueReport]:
        while True:
            await anyio.sleep(self._interval)
            self.step()
            yield await self.fetch()

    async def observe(self, base: str, quote: str) -> Observation:
        try:
            return Observation(market_rates(self.market)[(base, quote)], self._clock())
        except KeyError:
            raise LookupError(f"the demo market has no {base}/{quote}") from None


def market_rates(market: Market) -> dict[tuple[str, str], Decimal]:
    """The edges the demo quotes, (base, quote) -> rate, at `market`."""
    return {
        ("ETH", "USDT"): market.eth_usdt,
        ("wstETH", "stETH"): market.steth_per_wsteth,
        ("stETH", "ETH"): market.steth_eth,
    }
