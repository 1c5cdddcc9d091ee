"""The oracle: asks every source, falls back, caches for 30 s, logs and counts failures."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.oracle import Edge, ManualRates, Observation, PriceOracle, peg
from equity_daemon.prices import SourceKind, resolve
from tests.reports import NOW, Clock

pytestmark = pytest.mark.anyio


class Counting(ManualRates):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.calls = 0

    async def observe(self, base: str, quote: str) -> Observation:
        self.calls += 1
        return await super().observe(base, quote)


class Broken:
    name = "broken"
    kind = SourceKind.ONCHAIN_FEED

    async def observe(self, base: str, quote: str) -> Observation:
        raise ConnectionError("rpc unreachable")


class Hanging:
    name = "hanging"
    kind = SourceKind.EXCHANGE_TICKER

    async def observe(self, base: str, quote: str) -> Observation:
        await anyio.sleep(3600)
        raise AssertionError("unreachable")


async def test_every_source_is_asked_and_ranked_in_fallback_order() -> None:
    clock = Clock()
    binance, okx = ManualRates("binance"), ManualRates("okx")
    binance.set("ETH", "USDT", Decimal(3000), NOW)
    okx.set("ETH", "USDT", Decimal(3001), NOW)
    oracle = PriceOracle([Edge("ETH", "USDT", (binance, okx), timedelta(minutes=1))], clock)
    quotes = await oracle.quotes()
    assert [(q.source, q.rank, q.rate) for q in quotes] == [
        ("binance", 0, Decimal(3000)),
        ("okx", 1, Decimal(3001)),
    ]


async def test_a_failing_source_is_skipped_logged_and_counted() -> None:
    clock = Clock()
    okx = ManualRates("okx")
    okx.set("ETH", "USDT", Decimal(3001), NOW)
    oracle = PriceOracle([Edge("ETH", "USDT", (Broken(), okx), timedelta(minutes=1))], clock)
    with capture_logs() as logs:
        quotes = await oracle.quotes()
    assert [q.source for q in quotes] == ["okx"]
    assert oracle.failures == 1
    assert logs == [
        {
            "event": "quote_failed",
            "log_level": "warning",
            "edge": "ETH/USDT",
            "source": "broken",
            "error": "ConnectionError: rpc unreachable",
        }
    ]
    table = resolve(quotes, "USDT", NOW, Decimal(50))
    assert table.prices["ETH"].sources == ("okx",)


async def test_a_hanging_source_times_out_without_holding_the_others() -> None:
    clock = Clock()
    okx = ManualRates("okx")
    okx.set("ETH", "USDT", Decimal(3001), NOW)
    edge = Edge("ETH", "USDT", (Hanging(), okx), timedelta(minutes=1))
    oracle = PriceOracle([edge], clock, timeout=0.05)
    with anyio.fail_after(5), capture_logs():
        quotes = await oracle.quotes()
    assert [q.source for q in quotes] == ["okx"]
    assert oracle.failures == 1


async def test_answers_are_cached_for_thirty_seconds() -> None:
    clock = Clock()
    source = Counting("binance")
    source.set("ETH", "USDT", Decimal(3000), NOW)
    oracle = PriceOracle([Edge("ETH", "USDT", (source,), timedelta(minutes=1))], clock)
    await oracle.quotes()
    clock.now = NOW + timedelta(seconds=29)
    await oracle.quotes()
    assert source.calls == 1
    clock.now = NOW + timedelta(seconds=30)
    await oracle.quotes()
    assert source.calls == 2


async def test_a_peg_never_goes_stale() -> None:
    clock = Clock()
    oracle = PriceOracle([peg("aEthUSDT", "USDT", clock)], clock)
    clock.now = NOW + timedelta(days=400)
    quotes = await oracle.quotes()
    table = resolve(quotes, "USDT", clock.now, Decimal(50))
    assert table.prices["aEthUSDT"].price == 1
    assert table.prices["aEthUSDT"].sources == ("fixed",)


async def test_a_source_without_the_pair_is_a_failure_not_a_zero() -> None:
    clock = Clock()
    oracle = PriceOracle([Edge("BTC", "USDT", (ManualRates("binance"),), timedelta(1))], clock)
    with capture_logs() as logs:
        assert await oracle.quotes() == []
    assert logs[0]["error"] == "LookupError: binance has no rate for BTC/USDT"
