"""The oracle: asks every source, falls back, caches as each source allows, checks every answer,
logs and counts failures, and is never held past its timeout."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from decimal import Decimal

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.oracle import Edge, ManualRates, Observation, PriceOracle, peg
from equity_daemon.prices import SourceKind, resolve
from tests.reports import NOW, Clock

pytestmark = pytest.mark.anyio


class Counting(ManualRates):
    def __init__(self, name: str, cache_seconds: float = 0.0) -> None:
        super().__init__(name)
        self.calls = 0
        self.cache_seconds = cache_seconds

    async def observe(self, base: str, quote: str) -> Observation:
        self.calls += 1
        return await super().observe(base, quote)


class Broken:
    name = "broken"
    kind = SourceKind.ONCHAIN_FEED
    cache_seconds = 0.0

    async def observe(self, base: str, quote: str) -> Observation:
        raise ConnectionError("rpc unreachable")


class Hanging:
    name = "hanging"
    kind = SourceKind.EXCHANGE_TICKER
    cache_seconds = 0.0

    async def observe(self, base: str, quote: str) -> Observation:
        await anyio.sleep(3600)
        raise AssertionError("unreachable")


async def test_every_source_is_asked_and_ranked_in_fallback_order() -> None:
    clock = Clock()
    binance, okx = ManualRates("binance"), ManualRates("okx")
    binance.set("ETH", "USDT", Decimal(3000), NOW)
    okx.set("ETH", "USDT", Decimal(3001), NOW)
    oracle = PriceOracle([Edge("ETH", "USDT", (binance, okx), timedelta(minutes=1))], clock)
    quotes = (await oracle.quotes()).quotes
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
        got = await oracle.quotes()
    quotes = got.quotes
    assert [q.source for q in quotes] == ["okx"]
    assert [(f.edge, f.source) for f in got.failures] == [("ETH/USDT", "broken")]
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
        quotes = (await oracle.quotes()).quotes
    assert [q.source for q in quotes] == ["okx"]
    assert oracle.failures == 1


async def test_a_slow_source_is_cached_for_its_own_time_and_a_book_can_cap_it() -> None:
    clock = Clock()
    source = Counting("http-api", cache_seconds=30)
    source.set("ETH", "USDT", Decimal(3000), NOW)
    oracle = PriceOracle([Edge("ETH", "USDT", (source,), timedelta(minutes=1))], clock)
    await oracle.quotes()
    clock.now = NOW + timedelta(seconds=29)
    await oracle.quotes()
    assert source.calls == 1
    clock.now = NOW + timedelta(seconds=30)
    await oracle.quotes()
    assert source.calls == 2
    capped = PriceOracle([Edge("ETH", "USDT", (source,), timedelta(minutes=1))], clock, 5)
    await capped.quotes()
    clock.now += timedelta(seconds=5)
    await capped.quotes()
    assert source.calls == 4


async def test_a_source_answering_from_memory_is_asked_every_cycle() -> None:
    clock = Clock()
    source = Counting("demo")
    source.set("ETH", "USDT", Decimal(3000), NOW)
    oracle = PriceOracle([Edge("ETH", "USDT", (source,), timedelta(minutes=1))], clock)
    for _ in range(3):
        await oracle.quotes()
    assert source.calls == 3


async def test_a_backward_wall_clock_step_neither_freezes_a_cached_price_nor_hides_its_age() -> (
    None
):
    clock = Clock()
    source = Counting("http-api", cache_seconds=30)
    source.set("ETH", "USDT", Decimal(3000), NOW)
    oracle = PriceOracle([Edge("ETH", "USDT", (source,), timedelta(minutes=1))], clock)
    await oracle.quotes()
    clock.now += timedelta(seconds=20)
    clock.step(-timedelta(minutes=59))
    (cached,) = (await oracle.quotes()).quotes
    assert clock.now - cached.at == timedelta(seconds=20)  # its true age, not 0 nor -59 min
    clock.now += timedelta(seconds=10)  # 30 s have passed: asked again despite the step
    await oracle.quotes()
    assert source.calls == 2


async def test_a_forward_wall_clock_step_does_not_age_a_cached_price() -> None:
    clock = Clock()
    source = Counting("http-api", cache_seconds=30)
    source.set("ETH", "USDT", Decimal(3000), NOW)
    oracle = PriceOracle([Edge("ETH", "USDT", (source,), timedelta(minutes=1))], clock)
    await oracle.quotes()
    clock.step(timedelta(hours=1))
    (cached,) = (await oracle.quotes()).quotes
    assert clock.now - cached.at == timedelta(0)
    assert source.calls == 1


@pytest.mark.parametrize(
    ("rate", "at", "reason"),
    [
        (Decimal(0), NOW, "rate is 0 (must be > 0)"),
        (Decimal(-3000), NOW, "rate is -3000 (must be > 0)"),
        (Decimal("NaN"), NOW, "rate is NaN"),
        (Decimal("Infinity"), NOW, "rate is Infinity"),
        (Decimal("1E+999999999"), NOW, "rate is out of range (1.000e+999999999)"),
        (Decimal(3000), NOW + timedelta(minutes=5), "quote time is 300s in the future"),
        (Decimal(3000), NOW.replace(tzinfo=None), "quote time has no time zone"),
    ],
)
async def test_a_bad_quote_is_a_named_quote_error_and_the_fallback_is_used(
    rate: Decimal, at: datetime, reason: str
) -> None:
    clock = Clock()
    bad, okx = ManualRates("binance"), ManualRates("okx")
    bad.set("ETH", "USDT", rate, at)
    okx.set("ETH", "USDT", Decimal(3001), NOW)
    oracle = PriceOracle([Edge("ETH", "USDT", (bad, okx), timedelta(minutes=1))], clock)
    with capture_logs():
        got = await oracle.quotes()
    assert [q.source for q in got.quotes] == ["okx"]
    assert [(f.source, f.reason) for f in got.failures] == [("binance", reason)]
    assert oracle.failures == 1


class Blocking:
    """A synchronous library call in a worker thread: cancellation cannot reach it."""

    name = "sync-lib"
    kind = SourceKind.EXCHANGE_TICKER
    cache_seconds = 0.0

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    async def observe(self, base: str, quote: str) -> Observation:
        self.calls += 1
        await anyio.to_thread.run_sync(self.release.wait)
        return Observation(Decimal(3000), NOW)


async def test_a_source_blocked_in_a_thread_cannot_stall_the_cycle_past_its_timeout() -> None:
    clock = Clock()
    stuck, okx = Blocking(), ManualRates("okx")
    okx.set("ETH", "USDT", Decimal(3001), NOW)
    oracle = PriceOracle(
        [Edge("ETH", "USDT", (stuck, okx), timedelta(minutes=1))], clock, timeout=0.1
    )
    with capture_logs():
        async with anyio.create_task_group() as stragglers:
            with anyio.fail_after(2):
                first = await oracle.quotes(stragglers)
                second = await oracle.quotes(stragglers)
            stuck.release.set()
    assert [q.source for q in first.quotes] == [q.source for q in second.quotes] == ["okx"]
    assert [f.reason for f in second.failures] == ["no answer within 0.1s"]
    assert stuck.calls == 1  # the straggler was waited for, not started again


async def test_a_peg_never_goes_stale() -> None:
    clock = Clock()
    oracle = PriceOracle([peg("aEthUSDT", "USDT", clock)], clock)
    clock.now = NOW + timedelta(days=400)
    quotes = (await oracle.quotes()).quotes
    table = resolve(quotes, "USDT", clock.now, Decimal(50))
    assert table.prices["aEthUSDT"].price == 1
    assert table.prices["aEthUSDT"].sources == ("fixed",)


async def test_a_source_without_the_pair_is_a_failure_not_a_zero() -> None:
    clock = Clock()
    oracle = PriceOracle([Edge("BTC", "USDT", (ManualRates("binance"),), timedelta(1))], clock)
    with capture_logs() as logs:
        assert (await oracle.quotes()).quotes == ()
    assert logs[0]["error"] == "LookupError: binance has no rate for BTC/USDT"
