"""DefiLlama as a fallback price source: its HTTP is mocked with respx (we do not run it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from equity_daemon.history import History
from equity_daemon.oracle import Edge, PriceOracle
from equity_daemon.price_api import DefiLlama, PriceApiError
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import Settings
from tests.reports import NOW, Clock

pytestmark = pytest.mark.anyio

API = "https://prices.test"
ETH_ID = "coingecko:ethereum"
STAMP = int((NOW - timedelta(seconds=20)).timestamp())


def llama() -> DefiLlama:
    return DefiLlama("llama", API, {"ETH": ETH_ID})


def answer(price: str = "3012.25", **entry: object) -> httpx.Response:
    body = f'{{"coins": {{"{ETH_ID}": {{"price": {price}, "timestamp": {STAMP}, "symbol": "ETH"'
    body += "".join(f', "{k}": {v}' for k, v in entry.items()) + "}}}"
    return httpx.Response(200, content=body.encode())


@respx.mock
async def test_a_price_is_read_exactly_with_the_apis_own_time() -> None:
    respx.get(f"{API}/prices/current/{ETH_ID}").mock(
        return_value=answer("3012.123456789012345678", confidence=0.99)
    )
    seen = await llama().observe("ETH", "USD")
    assert seen.rate == Decimal("3012.123456789012345678")  # never through a float
    assert seen.at == datetime.fromtimestamp(STAMP, UTC)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (httpx.Response(503), "coingecko:ethereum: HTTP 503"),
        (httpx.Response(200, content=b""), "coingecko:ethereum: no price in the answer"),
        (httpx.Response(200, content=b'{"coins": {}}'), "coingecko:ethereum: no price in"),
        (answer('"3000"'), "coingecko:ethereum: price or timestamp is not a number"),
        (answer(confidence=0.5), "coingecko:ethereum: confidence 0.5 below 0.9"),
        (httpx.ConnectError("to https://prices.test/?apikey=s3cret"), "ConnectError"),
    ],
)
@respx.mock
async def test_an_unusable_answer_is_a_failure_naming_the_coin_never_the_url(
    reply: httpx.Response | Exception, reason: str
) -> None:
    respx.get(f"{API}/prices/current/{ETH_ID}").mock(side_effect=[reply])
    with pytest.raises(PriceApiError, match=reason) as raised:
        await llama().observe("ETH", "USD")
    assert "s3cret" not in str(raised.value)
    assert API not in str(raised.value)


async def test_it_prices_its_own_coins_in_usd_only() -> None:
    with pytest.raises(LookupError, match="llama prices ETH in USD only"):
        await llama().observe("ETH", "USDT")
    with pytest.raises(LookupError):
        await llama().observe("BTC", "USD")


@respx.mock
async def test_as_a_fallback_it_is_asked_once_per_cache_lifetime() -> None:
    route = respx.get(f"{API}/prices/current/{ETH_ID}").mock(return_value=answer())
    clock = Clock()
    oracle = PriceOracle([Edge("ETH", "USD", (llama(),), timedelta(minutes=5))], clock)
    for _ in range(3):
        (quote,) = (await oracle.quotes()).quotes
        clock.now += timedelta(seconds=10)
    assert route.call_count == 1  # a slow remote API keeps its 30 s cache
    assert quote.rate == Decimal("3012.25")


@respx.mock
async def test_a_book_values_eth_through_the_price_api_and_a_usd_edge(tmp_path: Path) -> None:
    respx.get(f"{API}/prices/current/{ETH_ID}").mock(return_value=answer("3000"))
    (tmp_path / "ops.toml").write_text('[[positions]]\nasset = "ETH"\namount = "2"\n')
    settings = Settings.model_validate(
        {
            "price_sources": {
                "llama": {"kind": "defillama", "base_url": API, "coins": {"ETH": ETH_ID}}
            },
            "books": {
                "b": {
                    "share_class": "USDT",
                    "venues": [{"kind": "manual", "name": "ops", "path": tmp_path / "ops.toml"}],
                    "prices": [
                        {"base": "ETH", "quote": "USD", "sources": ["llama"]},
                        {"base": "USD", "quote": "USDT", "fixed": 1},
                    ],
                }
            },
        }
    )
    daemon = Daemon(settings, Clock(datetime.fromtimestamp(STAMP + 20, UTC)))
    history = await History.open(tmp_path / "h.sqlite3")
    await daemon.fetch_all_once()
    with capture_logs():
        await daemon.cycle(history)
    snap = daemon.latest("b")
    assert snap is not None
    assert (snap.equity, snap.complete) == (Decimal(6000), True)
    (eth,) = [p for p in snap.prices if p.asset == "ETH"]
    assert eth.sources == ("llama", "fixed")
    await history.aclose()


def test_a_price_source_named_like_a_venue_is_a_config_error() -> None:
    with pytest.raises(ValueError, match=r"price_sources\.ops: the name of a venue of book 'b'"):
        Settings.model_validate(
            {
                "price_sources": {"ops": {"kind": "defillama", "coins": {"ETH": ETH_ID}}},
                "books": {
                    "b": {
                        "share_class": "USDT",
                        "venues": [{"kind": "manual", "name": "ops", "path": "x.toml"}],
                    }
                },
            }
        )
