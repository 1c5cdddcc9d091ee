"""The chain venue on anvil: every holding at one block in one eth_call, failover, failures
named, withdrawal requests through their life, reorgs.

Each test reads the deployed book of `tests/venues/conftest.py` through one or more counting
proxies (their URLs carry a fake API key).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import decode
from structlog.testing import capture_logs

from equity_daemon.clock import SystemClock
from equity_daemon.errors import HistoryUnavailable, VenueDataError, VenueUnavailable
from equity_daemon.history import History
from equity_daemon.model import HealthFactor, Position, PositionKind, ReportedTotal, VenueReport
from equity_daemon.settings import ChainVenue as ChainSettings
from equity_daemon.venues.base import VenueMemory
from equity_daemon.venues.chain import ChainVenue
from equity_daemon.venues.multicall import MULTICALL3_ADDRESS
from tests.chain import RAY, WAD, Artifact, Contract
from tests.rpc_proxy import Mode, RpcProxy
from tests.venues.conftest import World

pytestmark = pytest.mark.anyio

ANVIL_CHAIN_ID = 31337
# a log scan's range: one HTTP request, the logs with the head of the node that answered them
SCAN = ["eth_blockNumber", "eth_getLogs"]


def chain_config(
    world: World, name: str, urls: list[str], holding: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """A chain venue's configuration on the deployed world: its tokens, the Aave market and
    the ETH/USD feed, reading `holding`; `extra` adds or replaces keys."""
    return {
        "kind": "chain",
        "name": name,
        "chain": "anvil",
        "chain_id": ANVIL_CHAIN_ID,
        "rpc": urls,
        "confirmations": 0,
        "tokens": {
            "WETH": world.weth.address,
            "wstETH": world.wsteth.address,
            "weETH": world.weeth.address,
        },
        "aave_markets": {"core": world.pool.address},
        "feeds": [
            {
                "base": "ETH",
                "quote": "USD",
                "address": world.eth_usd.address,
                "heartbeat_seconds": 3600,
                "stale_margin_seconds": 60,
            }
        ],
        "holdings": [holding],
        **extra,
    }


def settings(world: World, urls: list[str], **overrides: Any) -> ChainSettings:
    """The whole deployed book as one chain venue's configuration."""
    holding = {
        "address": world.fund,
        "wallet": ["ETH", "USDT"],
        "aave": ["core"],
        "lido": ["wstETH"],
        "etherfi": ["weETH"],
        "etherfi_requests": [world.request_id],
        "vaults": ["sUSDT"],
    }
    data = chain_config(world, "anvil", urls, holding)
    data["tokens"] = {"USDT": world.usdt.address, **data["tokens"]}
    data["contracts"] = {"etherfi_withdrawals": world.withdrawals.address}
    data["vaults"] = [{"symbol": "sUSDT", "address": world.vault.address, "asset": "USDT"}]
    data.update(overrides)
    return ChainSettings.model_validate(data)


@asynccontextmanager
async def opened(config: ChainSettings, **options: Any) -> AsyncIterator[ChainVenue]:
    venue = ChainVenue(config, SystemClock(), **options)
    try:
        yield venue
    finally:
        await venue.aclose()


def lines(report: VenueReport) -> dict[tuple[str, str, str], Decimal]:
    return {
        (p.account.split(":")[0], p.asset.symbol, p.kind.value): p.amount
        for p in report.positions
        if p.kind is not PositionKind.LOCKED
    }


def locked(report: VenueReport) -> list[Position]:
    return [p for p in report.positions if p.kind is PositionKind.LOCKED]


async def test_every_holding_is_read_at_one_block_in_two_requests(
    world: World, proxy: RpcProxy
) -> None:
    fund = world.fund
    native = Decimal(int(world.chain.rpc("eth_getBalance", fund, "latest"), 16)).scaleb(-18)
    async with opened(settings(world, [proxy.url], confirmations=2)) as venue:
        await venue.fetch()  # discovery and the chain-id check happen once, here
        world.chain.mine(3)
        proxy.reset()
        report = await venue.fetch()
        assert proxy.methods == ["eth_blockNumber", "eth_call"]
        head = world.chain.block_number()
        assert report.block_number == head - 2
        stamp = int(world.chain.block(head - 2)["timestamp"], 16)
        assert report.as_of == datetime.fromtimestamp(stamp, UTC)
        assert lines(report) == {
            ("wallet", "ETH", "asset"): native,
            ("wallet", "USDT", "asset"): Decimal(1_250_000),
            ("aave-core", "WETH", "asset"): Decimal(412),  # 400 scaled x index 1.03
            ("aave-core", "WETH", "debt"): Decimal("267.5"),  # 250 scaled x index 1.07
            ("lido", "wstETH", "asset"): Decimal(100),
            ("etherfi", "weETH", "asset"): Decimal(50),
            ("erc4626", "sUSDT", "asset"): Decimal(1000),
        }
        assert {p.account for p in report.positions} == {
            f"{protocol}:{fund}"
            for protocol in ("wallet", "aave-core", "lido", "etherfi", "erc4626")
        }
        assert report.reported == (
            ReportedTotal(
                f"aave-core:{fund}",
                Decimal(43_350_000),
                "USD",
                "getUserAccountData",
                # our 412 aWETH - 267.5 debt at Aave's oracle price (300,000 USD)
                computed_at_venue_prices=Decimal(43_350_000),
            ),
        )
        assert report.health == (
            HealthFactor(
                "core", fund, Decimal("1.27"), Decimal(123_600_000), Decimal(80_250_000), "USD"
            ),
        )
        assert {
            p.kind.value: p.details.get("collateral")
            for p in report.positions
            if p.account.startswith("aave-core")
        } == {"asset": "true", "debt": None}
        (request,) = locked(report)
        assert request.asset.symbol == "ETH"
        assert request.amount == 5
        assert dict(request.details) == {
            "request_id": str(world.request_id),
            "contract": world.withdrawals.address,
            "finalized": "false",
            "valid": "true",
        }
        at = report.as_of
        assert (await venue.observe("wstETH", "stETH")).rate == Decimal("1.21")
        assert (await venue.observe("weETH", "eETH")).rate == Decimal("1.06")
        assert (await venue.observe("sUSDT", "USDT")).rate == Decimal("1.1")
        feed = await venue.observe("ETH", "USD")
        assert (feed.rate, feed.at) == (Decimal(3000), at)
        with pytest.raises(LookupError, match="no rate for ETH/USDT"):
            await venue.observe("ETH", "USDT")
    assert proxy.key not in repr(report)


async def test_interest_accrues_and_debt_grows_by_the_index(world: World, proxy: RpcProxy) -> None:
    async with opened(settings(world, [proxy.url])) as venue:
        before = lines(await venue.fetch())
        world.pool.transact("set_indexes", world.weth.address, RAY * 104 // 100, RAY * 109 // 100)
        after = lines(await venue.fetch())
    supplied, owed = ("aave-core", "WETH", "asset"), ("aave-core", "WETH", "debt")
    assert after[supplied] - before[supplied] == Decimal(4)  # 400 x (1.04 - 1.03)
    assert after[owed] - before[owed] == Decimal(5)  # 250 x (1.09 - 1.07)


async def test_a_protocol_rate_change_is_read_with_the_balances(
    world: World, proxy: RpcProxy
) -> None:
    async with opened(settings(world, [proxy.url])) as venue:
        await venue.fetch()
        world.wsteth.transact("set_st_eth_per_token", 1_230_000_000_000_000_000)
        world.weeth.transact("set_rate", 1_070_000_000_000_000_000)
        report = await venue.fetch()
        wsteth = await venue.observe("wstETH", "stETH")
        assert wsteth.rate == Decimal("1.23")
        assert wsteth.at == report.as_of
        assert (await venue.observe("weETH", "eETH")).rate == Decimal("1.07")


async def test_a_stale_or_negative_feed_fails_its_quote_not_the_report(
    world: World, proxy: RpcProxy
) -> None:
    async with opened(settings(world, [proxy.url])) as venue:
        world.eth_usd.transact("set_answer", 3_100 * 10**8, int(time.time()) - 2 * 3600)
        report = await venue.fetch()
        assert report.ok
        assert lines(report)[("wallet", "USDT", "asset")] == 1_250_000
        with pytest.raises(LookupError, match=r"feed ETH/USD at 0x\w+: stale, updated 7\d\d\ds"):
            await venue.observe("ETH", "USD")
        world.eth_usd.transact("set_answer", 0, int(time.time()))
        await venue.fetch()
        with pytest.raises(LookupError, match="answer 0 is not above zero"):
            await venue.observe("ETH", "USD")
        world.eth_usd.transact("set_answer", 3_200 * 10**8, int(time.time()))
        await venue.fetch()
        assert (await venue.observe("ETH", "USD")).rate == 3200
        world.chain.set_code(world.eth_usd.address, b"")
        assert (await venue.fetch()).ok
        with pytest.raises(LookupError, match="no code at target"):
            await venue.observe("ETH", "USD")


async def test_a_reverting_call_fails_the_report_naming_the_line(
    world: World, proxy: RpcProxy, contracts: dict[str, Artifact]
) -> None:
    async with opened(settings(world, [proxy.url])) as venue:
        await venue.fetch()
        # USDT's code replaced by one without balanceOf: the call reverts
        world.chain.set_code(world.usdt.address, contracts["aggregator"].runtime)
        with pytest.raises(VenueDataError) as failed:
            await venue.fetch()
    reason = failed.value.reason
    assert f"wallet:{world.fund}/USDT: USDT.balanceOf at {world.usdt.address}" in reason
    assert "reverted" in reason
    assert proxy.key not in str(failed.value)


async def test_a_target_without_code_fails_the_report_never_reads_zero(
    world: World, proxy: RpcProxy
) -> None:
    async with opened(settings(world, [proxy.url])) as venue:
        await venue.fetch()
        world.chain.set_code(world.weeth.address, b"")
        with pytest.raises(VenueDataError, match="no code at target") as failed:
            await venue.fetch()
    assert f"etherfi:{world.fund}/weETH" in failed.value.reason


async def test_a_configured_token_without_code_fails_discovery(
    world: World, proxy: RpcProxy
) -> None:
    config = settings(
        world,
        [proxy.url],
        tokens={"USDT": world.nobody},
        holdings=[{"address": world.fund, "wallet": ["USDT"]}],
    )
    async with opened(config) as venue:
        with pytest.raises(VenueDataError, match=f"token USDT: USDT.decimals at {world.nobody}"):
            await venue.fetch()


class ChainIdProxy(RpcProxy):
    """A proxy in front of anvil that says it is another chain (`chain_id`)."""

    chain_id = 5

    def _answer(self, body: bytes) -> tuple[int, str, bytes] | None:
        request = json.loads(body)
        if request.get("method") == "eth_chainId":
            answer = {"jsonrpc": "2.0", "id": request.get("id"), "result": hex(self.chain_id)}
            return 200, "application/json", json.dumps(answer).encode()
        return super()._answer(body)


async def test_an_endpoint_on_another_chain_is_never_read(world: World, anvil_url: str) -> None:
    with ChainIdProxy(anvil_url) as wrong, RpcProxy(anvil_url) as right:
        async with opened(settings(world, [wrong.url])) as venue:
            with pytest.raises(VenueDataError, match=r"rpc endpoint 1 of 1: chain id 5, expect"):
                await venue.fetch()
        assert wrong.methods == ["eth_chainId"]
        async with opened(settings(world, [wrong.url, right.url])) as venue:
            with capture_logs() as logs:
                report = await venue.fetch()
            assert report.ok
            assert venue.endpoint == "rpc endpoint 2 of 2"
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["rpc_wrong_chain"]
    assert all(wrong.key not in str(entry) for entry in logs)


@pytest.mark.parametrize("failure", ["hang_up", "http_error", "rpc_error", "garbage", "stall"])
async def test_a_dead_endpoint_fails_over_without_a_gap_and_comes_back(
    world: World, anvil_url: str, failure: Mode
) -> None:
    with RpcProxy(anvil_url) as first, RpcProxy(anvil_url) as second:
        config = settings(
            world, [first.url, second.url], retry_preferred_every=3, rpc_timeout_seconds=0.5
        )
        async with opened(config) as venue:
            assert (await venue.fetch()).ok
            first.mode, first.stall_seconds = failure, 2  # rpc_error: "header not found" & co.
            with capture_logs() as logs:
                reports = [await venue.fetch() for _ in range(2)]  # fetches 2 and 3
            assert all(report.ok for report in reports)
            assert lines(reports[0]) == lines(reports[1])
            assert venue.endpoint == "rpc endpoint 2 of 2"
            # the second endpoint's chain id is checked before it is first read
            assert second.methods[:3] == ["eth_chainId", "eth_blockNumber", "eth_call"]
            first.mode = "forward"
            second.reset()
            assert (await venue.fetch()).ok  # fetch 4: still on the second
            assert venue.endpoint == "rpc endpoint 2 of 2"
            first.reset()
            await venue.fetch()
            await venue.fetch()  # fetch 6: the preferred one is tried again, and answers
            assert venue.endpoint == "rpc endpoint 1 of 2"
            assert first.methods == ["eth_chainId", "eth_blockNumber", "eth_call"]
    events = [entry["event"] for entry in logs]
    assert "rpc_endpoint_failed" in events
    assert "rpc_endpoint_switched" in events
    assert all(first.key not in str(entry) for entry in logs)


async def test_every_endpoint_down_is_unavailable_and_names_each(
    world: World, anvil_url: str
) -> None:
    with RpcProxy(anvil_url) as first, RpcProxy(anvil_url) as second:
        first.mode = second.mode = "http_error"
        async with opened(settings(world, [first.url, second.url])) as venue:
            with pytest.raises(VenueUnavailable) as failed:
                await venue.fetch()
    text = str(failed.value)
    assert "rpc endpoint 1 of 2: rate limited (HTTP 429)" in text
    assert "rpc endpoint 2 of 2: rate limited (HTTP 429)" in text
    assert first.key not in text
    assert second.key not in text


class ReorgProxy(RpcProxy):
    """Runs `hook` just before forwarding the `at`-th eth_call it receives."""

    hook: Callable[[], None] = staticmethod(lambda: None)
    at = 0
    calls = 0

    def _answer(self, body: bytes) -> tuple[int, str, bytes] | None:
        if json.loads(body).get("method") == "eth_call":
            self.calls += 1
            if self.calls == self.at:
                self.hook()
        return super()._answer(body)


async def test_a_reorg_between_two_parts_of_a_split_read_leaves_no_mixed_report(
    world: World, anvil_url: str
) -> None:
    chain = world.chain
    usdt = ("wallet", "USDT", "asset")
    with ReorgProxy(anvil_url) as proxy:
        # 8 calls per aggregate3: the book's reads take several eth_calls, each proving its block
        async with opened(settings(world, [proxy.url], max_calls=8)) as venue:
            good = await venue.fetch()
            fork = chain.snapshot()
            chain.mine(2)

            def reorg() -> None:  # the chain is rewritten between two parts of one read
                chain.revert(fork)
                world.usdt.transact("mint", world.fund, 7)
                chain.mine(1)

            proxy.hook, proxy.at, proxy.calls = reorg, 2, 0
            with pytest.raises(VenueUnavailable, match="changed between two aggregate3 calls"):
                await venue.fetch()
            after = await venue.fetch()
    assert after.block_number is not None
    assert good.block_number is not None
    assert lines(after)[usdt] == lines(good)[usdt] + Decimal("0.000007")


async def test_a_withdrawal_request_is_created_finalized_and_claimed(
    world: World, proxy: RpcProxy
) -> None:
    nft, fund = world.withdrawals, world.fund
    receipt = nft.transact("requestWithdraw", 2 * WAD, 2 * WAD, fund)
    second = int(receipt["logs"][0]["topics"][3], 16)
    receipt = nft.transact("requestWithdraw", 3 * WAD, 3 * WAD, fund)
    third = int(receipt["logs"][0]["topics"][3], 16)
    ids = [world.request_id, second, third]
    holdings = [{"address": fund, "etherfi_requests": ids}]

    def state(report: VenueReport) -> dict[str, tuple[Decimal, str, str]]:
        return {
            str(p.details["request_id"]): (
                p.amount,
                str(p.details["finalized"]),
                str(p.details["valid"]),
            )
            for p in locked(report)
        }

    async with opened(settings(world, [proxy.url], holdings=holdings)) as venue:
        assert state(await venue.fetch()) == {
            str(world.request_id): (Decimal(5), "false", "true"),
            str(second): (Decimal(2), "false", "true"),
            str(third): (Decimal(3), "false", "true"),
        }
        nft.transact("finalizeRequests", second)
        nft.transact("invalidateRequest", third)
        assert state(await venue.fetch()) == {
            str(world.request_id): (Decimal(5), "true", "true"),
            str(second): (Decimal(2), "true", "true"),
            str(third): (Decimal(3), "false", "false"),  # value at risk, reported apart
        }
        nft.transact("claimWithdraw", second, sender=fund)
        report = await venue.fetch()
    assert state(report) == {
        str(world.request_id): (Decimal(5), "true", "true"),
        str(third): (Decimal(3), "false", "false"),
    }
    assert all(p.line_id == f"etherfi-request-{p.details['request_id']}" for p in locked(report))


def test_unknown_names_in_holdings_are_configuration_errors(world: World) -> None:
    with pytest.raises(ValueError, match=r"holdings\[0\]\.wallet: unknown DAI on this chain"):
        settings(
            world, ["http://127.0.0.1:1"], holdings=[{"address": world.fund, "wallet": ["DAI"]}]
        )
    with pytest.raises(ValueError, match=r"feeds\[0\]: BTC/USD is not built in"):
        settings(world, ["http://127.0.0.1:1"], feeds=[{"base": "BTC", "quote": "USD"}])


def test_mainnet_defaults_come_from_the_registry(world: World) -> None:
    config = ChainSettings.model_validate(
        {
            "kind": "chain",
            "name": "ethereum",
            "chain_id": 1,
            "rpc": ["https://eth.example/v2/key"],
            "feeds": [{"base": "stETH", "quote": "ETH"}],
            "holdings": [
                {
                    "address": world.fund,
                    "wallet": ["ETH", "USDT"],
                    "aave": ["core", "prime", "etherfi"],
                    "lido": ["stETH", "wstETH"],
                    "etherfi": ["eETH", "weETH"],
                    "etherfi_requests": [7],
                }
            ],
        }
    )
    assert config.multicall is None  # the canonical Multicall3
    assert "key" not in repr(config)


async def test_an_address_without_debt_has_an_infinite_health_factor(
    world: World, proxy: RpcProxy
) -> None:
    other = world.chain.accounts[4]
    world.pool.transact("set_user_account_data", other, 10**8, 0, 0, 8250, 8000, 2**256 - 1)
    holdings = [{"address": other, "aave": ["core"]}]
    async with opened(settings(world, [proxy.url], holdings=holdings)) as venue:
        report = await venue.fetch()
    assert report.health == (
        HealthFactor("core", other, Decimal("Infinity"), Decimal(1), Decimal(0), "USD"),
    )
    assert report.reported[0].amount == 1  # 1 USD of collateral, no debt
    assert report.positions == ()


def test_rpc_urls_from_a_file_one_per_line(world: World, tmp_path: Path) -> None:
    secret = tmp_path / "rpc"
    secret.write_text("https://one.example/v2/k1\n\nhttps://two.example/v2/k2\n")
    data = settings(world, ["http://127.0.0.1:1"]).model_dump()
    del data["rpc"]
    config = ChainSettings.model_validate({**data, "rpc_file": str(secret)})
    assert [url.get_secret_value() for url in config.rpc] == [
        "https://one.example/v2/k1",
        "https://two.example/v2/k2",
    ]
    assert "k1" not in repr(config)


async def test_withdrawal_requests_are_found_in_the_mint_logs(
    world: World, proxy: RpcProxy
) -> None:
    nft, fund = world.withdrawals, world.fund
    holdings = [{"address": fund, "etherfi_scan_from_block": 0}]
    config = settings(world, [proxy.url], holdings=holdings, log_range_blocks=7)

    def ids(report: VenueReport) -> list[str]:
        return [str(p.details["request_id"]) for p in locked(report)]

    async with opened(config) as venue:
        assert ids(await venue.fetch()) == [str(world.request_id)]  # minted at deploy
        proxy.reset()
        assert ids(await venue.fetch()) == [str(world.request_id)]
        assert proxy.methods == ["eth_blockNumber", "eth_call"]  # known: no scan
        receipt = nft.transact("requestWithdraw", 2 * WAD, 2 * WAD, fund)
        new = int(receipt["logs"][0]["topics"][3], 16)
        nft.transact("requestWithdraw", WAD, WAD, world.chain.accounts[5])  # someone else's
        proxy.reset()
        report = await venue.fetch()
        # the NFT count said one more: the logs since the last scan, then a second read at the
        # same block, so the new request never reads as eETH that vanished
        assert ids(report) == [str(world.request_id), str(new)]
        assert proxy.methods == ["eth_blockNumber", "eth_call", *SCAN, "eth_call"]
        assert proxy.requests == 4
        nft.transact("finalizeRequests", new)
        nft.transact("claimWithdraw", new, sender=fund)
        proxy.reset()
        assert ids(await venue.fetch()) == [str(world.request_id)]  # claimed: gone
        assert proxy.methods == ["eth_blockNumber", "eth_call"]


async def test_a_failed_rediscovery_keeps_what_the_last_one_found(
    world: World, proxy: RpcProxy
) -> None:
    holdings = [{"address": world.fund, "aave": ["core"]}]
    config = settings(world, [proxy.url], holdings=holdings, discovery_interval_seconds=0.001)
    async with opened(config) as venue:
        first = await venue.fetch()
        world.chain.set_code(world.usdt.address, b"")  # a reserve's underlying: discovery fails
        with capture_logs() as logs:
            again = await venue.fetch()
    assert lines(again) == lines(first)
    (failed,) = [entry for entry in logs if entry["event"] == "chain_rediscovery_failed"]
    assert "aave-core reserve" in failed["reason"]


@asynccontextmanager
async def remembering(config: ChainSettings, memory: VenueMemory) -> AsyncIterator[ChainVenue]:
    async with opened(config) as venue:
        venue.attach_memory(memory)
        yield venue


async def test_a_restart_recalls_discovery_and_resumes_the_request_log_scan(
    world: World, proxy: RpcProxy, tmp_path: Path
) -> None:
    holding = {
        "address": world.fund,
        "wallet": ["ETH", "USDT"],
        "aave": ["core"],
        "vaults": ["sUSDT"],
        "etherfi_scan_from_block": 0,
    }
    config = settings(world, [proxy.url], holdings=[holding], log_range_blocks=7)
    history = await History.open(tmp_path / "history.sqlite3")
    try:
        async with remembering(config, history) as venue:
            first = await venue.fetch()
        stored = await history.recall("anvil")
        assert set(stored) == {"discovery", f"etherfi_requests:{world.fund}"}
        scan = json.loads(stored[f"etherfi_requests:{world.fund}"])
        assert scan["found"] == [world.request_id]
        assert scan["cursor"] == (first.block_number or 0) + 1
        world.chain.mine(2)
        proxy.reset()
        async with remembering(config, history) as venue:  # the restart
            again = await venue.fetch()
        # no discovery read (decimals, reserves, vault assets, feed decimals): the chain id,
        # the head, the logs of the two new blocks only, and the one read
        assert proxy.methods == ["eth_chainId", "eth_blockNumber", *SCAN, "eth_call"]
        assert lines(again) == lines(first)
        assert again.reported == first.reported  # Aave's oracle recalled as well
        assert again.reported[0].computed_at_venue_prices is not None
        assert [p.details["request_id"] for p in locked(again)] == [str(world.request_id)]
        assert (
            json.loads((await history.recall("anvil"))[f"etherfi_requests:{world.fund}"])["cursor"]
            == (again.block_number or 0) + 1
        )
    finally:
        await history.aclose()


async def test_recalled_discovery_of_other_addresses_is_not_used(
    world: World, proxy: RpcProxy, tmp_path: Path
) -> None:
    history = await History.open(tmp_path / "history.sqlite3")
    try:
        holdings = [{"address": world.fund, "wallet": ["USDT"]}]
        async with remembering(settings(world, [proxy.url], holdings=holdings), history) as venue:
            await venue.fetch()
        proxy.reset()
        holdings = [{"address": world.fund, "wallet": ["USDT"], "aave": ["core"]}]
        config = settings(world, [proxy.url], holdings=holdings)
        async with remembering(config, history) as venue:
            report = await venue.fetch()
        assert ("aave-core", "WETH", "asset") in lines(report)
        assert proxy.methods.count("eth_call") > 1  # discovered again
    finally:
        await history.aclose()


class BrokenMemory:
    """A history that refuses every read and write."""

    def __init__(self) -> None:
        self.calls = 0

    async def recall(self, venue: str) -> dict[str, str]:
        self.calls += 1
        raise HistoryUnavailable("database is locked")

    async def remember(self, venue: str, key: str, value: str, at: datetime) -> None:
        self.calls += 1
        raise HistoryUnavailable("database is locked")


async def test_a_memory_that_fails_never_fails_a_fetch(world: World, proxy: RpcProxy) -> None:
    holdings = [{"address": world.fund, "wallet": ["USDT"], "etherfi_scan_from_block": 0}]
    config = settings(world, [proxy.url], holdings=holdings, discovery_interval_seconds=0.001)
    memory = BrokenMemory()
    with capture_logs() as logs:
        async with remembering(config, memory) as venue:
            for _ in range(3):
                report = await venue.fetch()
                assert lines(report)[("wallet", "USDT", "asset")] == Decimal(1_250_000)
    warned = [entry for entry in logs if entry["event"] == "chain_memory_unavailable"]
    assert len(warned) == 1  # said once, though every discovery tried to write again
    assert "database is locked" in warned[0]["reason"]
    assert memory.calls > 3


async def test_stored_discovery_that_cannot_be_read_is_discovered_again(
    world: World, proxy: RpcProxy, tmp_path: Path
) -> None:
    holdings = [{"address": world.fund, "wallet": ["USDT"], "etherfi_scan_from_block": 0}]
    config = settings(world, [proxy.url], holdings=holdings)
    history = await History.open(tmp_path / "history.sqlite3")
    try:
        at = datetime.now(UTC)
        await history.remember("anvil", "discovery", '{"inputs": {}}', at)
        # a scan configured from another block starts again from the configured one
        cursor = '{"from": 5, "cursor": 999999, "found": [77]}'
        await history.remember("anvil", f"etherfi_requests:{world.fund}", cursor, at)
        with capture_logs() as logs:
            async with remembering(config, history) as venue:
                report = await venue.fetch()
        assert lines(report)[("wallet", "USDT", "asset")] == Decimal(1_250_000)
        assert [p.details["request_id"] for p in locked(report)] == [str(world.request_id)]
        assert "chain_memory_unusable" in [entry["event"] for entry in logs]
        stored = json.loads((await history.recall("anvil"))["discovery"])
        assert stored["tokens"]["USDT"][1] == 6  # replaced by the new discovery
    finally:
        await history.aclose()


async def test_a_market_without_an_oracle_is_reconciled_at_the_books_prices(
    world: World, proxy: RpcProxy
) -> None:
    world.pool.transact("set_addresses_provider", "0x" + "00" * 20)
    holdings = [{"address": world.fund, "aave": ["core"]}]
    async with opened(settings(world, [proxy.url], holdings=holdings)) as venue:
        report = await venue.fetch()
    (total,) = report.reported
    assert total.amount == Decimal(43_350_000)
    assert total.computed_at_venue_prices is None  # the calculator values the lines itself


async def test_an_oracle_that_fails_never_fails_the_balances(world: World, proxy: RpcProxy) -> None:
    holdings = [{"address": world.fund, "aave": ["core"]}]
    async with opened(settings(world, [proxy.url], holdings=holdings)) as venue:
        first = await venue.fetch()
        world.chain.set_code(world.aave_oracle.address, b"")
        report = await venue.fetch()
    assert lines(report) == lines(first)
    (total,) = report.reported
    assert total.computed_at_venue_prices is None


def list_reserve(world: World, contracts: dict[str, Artifact], underlying: str) -> None:
    """`underlying` listed in the Aave market, the fund supplying 2 of it (18 decimals)."""
    a_token = world.chain.deploy(
        contracts["aave_atoken"], world.pool.address, underlying, "Aave X", "aEthX", 18
    )
    debt = world.chain.deploy(
        contracts["aave_debt_token"], world.pool.address, underlying, "Debt X", "debtX", 18
    )
    world.pool.transact("init_reserve", underlying, a_token.address, debt.address)
    a_token.transact("mint_scaled", world.fund, 2 * WAD)


async def test_reserve_symbols_decode_from_bytes32_and_configuration_wins(
    world: World, proxy: RpcProxy, contracts: dict[str, Artifact]
) -> None:
    mkr = world.chain.deploy(contracts["ds_token"], b"MKR".ljust(32, b"\0"))
    list_reserve(world, contracts, mkr.address)
    holdings = [{"address": world.fund, "aave": ["core"]}]
    async with opened(settings(world, [proxy.url], holdings=holdings)) as venue:
        assert lines(await venue.fetch())[("aave-core", "MKR", "asset")] == 2
    renamed = {"MKR.old": mkr.address}  # the configured symbol wins over the token's own
    config = settings(world, [proxy.url], holdings=holdings, tokens=renamed)
    async with opened(config) as venue:
        report = lines(await venue.fetch())
    assert report[("aave-core", "MKR.old", "asset")] == 2
    assert ("aave-core", "MKR", "asset") not in report


async def test_a_reserve_without_a_readable_symbol_fails_until_it_is_named(
    world: World, proxy: RpcProxy, contracts: dict[str, Artifact]
) -> None:
    nameless = world.chain.deploy(contracts["aggregator"], 18, "no symbol()")  # it reverts
    list_reserve(world, contracts, nameless.address)
    holdings = [{"address": world.fund, "aave": ["core"]}]
    async with opened(settings(world, [proxy.url], holdings=holdings)) as venue:
        with pytest.raises(VenueDataError) as failed:
            await venue.fetch()
    assert f"aave-core reserve {nameless.address}: symbol() unreadable (" in failed.value.reason
    assert "name the token in the venue's tokens" in failed.value.reason
    config = settings(world, [proxy.url], holdings=holdings, tokens={"XYZ": nameless.address})
    async with opened(config) as venue:
        assert lines(await venue.fetch())[("aave-core", "XYZ", "asset")] == 2


async def test_every_built_in_mainnet_address_gives_way_to_configuration(
    world: World, anvil_url: str, contracts: dict[str, Artifact]
) -> None:
    # anvil posing as Ethereum mainnet: a built-in address read instead of the configured
    # one has no code there, and fails the read
    multicall = world.chain.deploy(contracts["multicall3"])
    world.chain.set_code(MULTICALL3_ADDRESS, b"")
    oracle = world.chain.deploy(contracts["aave_oracle"])  # prices WETH at 310,000 USD
    oracle.transact("set_asset_price", world.weth.address, 310_000 * 10**8)
    with ChainIdProxy(anvil_url) as mainnet:
        mainnet.chain_id = 1
        config = settings(
            world,
            [mainnet.url],
            chain="ethereum",
            chain_id=1,
            multicall=multicall.address,
            aave_oracles={"core": oracle.address},
            feeds=[{"base": "ETH", "quote": "USD", "address": world.eth_usd.address}],
        )
        async with opened(config) as venue:
            report = await venue.fetch()
            assert (await venue.observe("ETH", "USD")).rate == 3000
            assert (await venue.observe("wstETH", "stETH")).rate == Decimal("1.21")
            assert (await venue.observe("weETH", "eETH")).rate == Decimal("1.06")
    assert lines(report)[("wallet", "USDT", "asset")] == 1_250_000
    assert [p.details["request_id"] for p in locked(report)] == [str(world.request_id)]
    (total,) = report.reported
    # (412 - 267.5) WETH at the configured oracle's 310,000 USD
    assert total.computed_at_venue_prices == Decimal(44_795_000)


def test_an_oracle_for_an_unknown_market_is_a_configuration_error(world: World) -> None:
    with pytest.raises(ValueError, match="aave_oracles: unknown market lido"):
        settings(world, ["http://127.0.0.1:1"], aave_oracles={"lido": world.nobody})


async def test_a_request_made_through_the_weeth_adapter_is_found_in_the_mint_logs(
    world: World, proxy: RpcProxy, contracts: dict[str, Artifact]
) -> None:
    adapter = world.chain.deploy(
        contracts["weeth_withdraw_adapter"], world.weeth.address, world.withdrawals.address
    )
    holdings = [{"address": world.fund, "etherfi_scan_from_block": 0}]
    async with opened(settings(world, [proxy.url], holdings=holdings)) as venue:
        await venue.fetch()
        # someone else sends the transaction; the NFT mints to the fund as recipient
        adapter.transact("requestWithdraw", 2 * WAD, world.fund, sender=world.chain.accounts[5])
        report = await venue.fetch()
    by_id = {p.details["request_id"]: p.amount for p in locked(report)}
    assert by_id == {str(world.request_id): 5, str(world.request_id + 1): Decimal("2.12")}


async def test_requests_in_several_withdrawal_nfts_are_each_read(
    world: World, proxy: RpcProxy, contracts: dict[str, Artifact]
) -> None:
    other = world.chain.deploy(contracts["withdraw_request_nft"])
    receipt = other.transact("requestWithdraw", 7 * WAD, 7 * WAD, world.fund)
    assert int(receipt["logs"][0]["topics"][3], 16) == world.request_id  # the same id: 1
    holdings = [
        {
            "address": world.fund,
            "etherfi_requests": [world.request_id],
            "etherfi_withdrawal_nfts": [{"contract": other.address, "scan_from_block": 0}],
        }
    ]

    def requests(report: VenueReport) -> dict[str | None, tuple[str, Decimal]]:
        return {p.line_id: (str(p.details["contract"]), p.amount) for p in locked(report)}

    async with opened(settings(world, [proxy.url], holdings=holdings)) as venue:
        first = f"etherfi-request-{other.address}-{world.request_id}"
        assert requests(await venue.fetch()) == {
            f"etherfi-request-{world.request_id}": (world.withdrawals.address, Decimal(5)),
            first: (other.address, Decimal(7)),
        }
        receipt = other.transact("requestWithdraw", 3 * WAD, 3 * WAD, world.fund)
        second = f"etherfi-request-{other.address}-{world.request_id + 1}"
        proxy.reset()
        report = await venue.fetch()
    # the other NFT's count said one more: its logs, and a second read at the same block
    assert proxy.methods == ["eth_blockNumber", "eth_call", *SCAN, "eth_call"]
    assert requests(report) == {
        f"etherfi-request-{world.request_id}": (world.withdrawals.address, Decimal(5)),
        first: (other.address, Decimal(7)),
        second: (other.address, Decimal(3)),
    }


def test_a_withdrawal_nft_or_queue_listed_twice_is_a_configuration_error(world: World) -> None:
    holding = {
        "address": world.fund,
        "etherfi_requests": [1],
        "etherfi_withdrawal_nfts": [{"contract": world.withdrawals.address, "requests": [2]}],
    }
    with pytest.raises(ValueError, match="a contract is listed twice"):
        settings(world, ["http://127.0.0.1:1"], holdings=[holding])
    holding = {"address": world.fund, "etherfi_withdrawal_nfts": [{"contract": world.nobody}]}
    with pytest.raises(ValueError, match="give requests, scan_from_block or both"):
        settings(world, ["http://127.0.0.1:1"], holdings=[holding])
    queue = {"contract": world.nobody, "scan_from_block": 0}
    holding = {"address": world.fund, "etherfi_priority_queues": [queue, queue]}
    with pytest.raises(ValueError, match=r"etherfi_priority_queues: a contract is listed twice"):
        settings(world, ["http://127.0.0.1:1"], holdings=[holding])


def queue_request(queue: Contract, sender: str, amount: int, with_fee: int) -> tuple[Any, ...]:
    """A PriorityWithdrawalQueue request by `sender`: the struct its claim takes, from its log."""
    (entry,) = queue.transact("requestWithdraw", amount, with_fee, sender=sender)["logs"]
    data = bytes.fromhex(entry["data"].removeprefix("0x"))
    return (sender, *decode(["uint96", "uint96", "uint96", "uint32", "uint32"], data))


async def test_priority_queue_requests_are_found_read_and_drop_out_when_claimed(
    world: World, proxy: RpcProxy, contracts: dict[str, Artifact], tmp_path: Path
) -> None:
    queue = world.chain.deploy(contracts["priority_withdrawal_queue"])
    fund, other = world.fund, world.chain.accounts[5]
    first = queue_request(queue, fund, 4 * WAD, 4 * WAD - 4 * 10**15)
    holdings = [
        {
            "address": fund,
            "etherfi_priority_queues": [{"contract": queue.address, "scan_from_block": 0}],
        }
    ]
    config = settings(world, [proxy.url], holdings=holdings, log_range_blocks=7)

    def pending(report: VenueReport) -> list[tuple[Decimal, str, str]]:
        return sorted(
            (p.amount, str(p.details["finalized"]), str(p.details["amount_of_eeth"]))
            for p in locked(report)
        )

    history = await History.open(tmp_path / "history.sqlite3")
    try:
        async with remembering(config, history) as venue:
            report = await venue.fetch()
            (line,) = locked(report)
            assert line.line_id == f"etherfi-priority-{line.details['request_id']}"
            assert line.details["contract"] == queue.address
            assert pending(report) == [(Decimal("3.996"), "false", "4")]  # what its claim pays
            queue_request(queue, other, WAD, WAD)  # someone else's: the nonce moves
            proxy.reset()
            assert pending(await venue.fetch()) == [(Decimal("3.996"), "false", "4")]
            assert proxy.methods == ["eth_blockNumber", "eth_call", *SCAN]
            proxy.reset()
            await venue.fetch()
            assert proxy.methods == ["eth_blockNumber", "eth_call"]  # nothing new: no scan
            second = queue_request(queue, fund, 2 * WAD, 2 * WAD)
            proxy.reset()
            # found and read in the same fetch, at the same block: no eETH that vanished
            assert pending(await venue.fetch()) == [
                (Decimal(2), "false", "2"),
                (Decimal("3.996"), "false", "4"),
            ]
            assert proxy.methods == ["eth_blockNumber", "eth_call", *SCAN, "eth_call"]
            queue.transact("fulfillRequests", [first, second])
            proxy.reset()
            assert pending(await venue.fetch()) == [
                (Decimal(2), "true", "2"),
                (Decimal("3.996"), "true", "4"),
            ]
            (two_open,) = proxy.aggregated
            queue.transact("claimWithdraw", first)
            assert pending(await venue.fetch()) == [(Decimal(2), "true", "2")]
            proxy.reset()
            await venue.fetch()
            assert proxy.aggregated == [two_open - 2]  # the claimed one is no longer read
        proxy.reset()
        async with remembering(config, history) as venue:  # a restart resumes the scan
            assert pending(await venue.fetch()) == [(Decimal(2), "true", "2")]
        assert proxy.methods.count("eth_getLogs") == 1  # the new blocks only
        queue.transact("cancelWithdraw", second, sender=fund)
        async with remembering(config, history) as venue:
            assert locked(await venue.fetch()) == []
    finally:
        await history.aclose()


async def test_a_failover_to_a_lagging_endpoint_never_goes_back_in_time(
    world: World, anvil_url: str
) -> None:
    chain, usdt = world.chain, ("wallet", "USDT", "asset")
    chain.mine(43 - chain.block_number())
    world.usdt.transact("transfer", chain.accounts[5], 250_000 * 10**6, sender=world.fund)
    chain.mine(2)  # head 46: the transfer is in block 44
    behind: list[tuple[str, str]] = []
    holdings = [{"address": world.fund, "wallet": ["USDT"]}]
    with RpcProxy(anvil_url) as first, RpcProxy(anvil_url) as lagging:
        lagging.behind = 37  # a node ten blocks behind: it would pin block 34
        config = settings(world, [first.url, lagging.url], holdings=holdings, confirmations=3)
        async with opened(config, on_behind=lambda *labels: behind.append(labels)) as venue:
            report = await venue.fetch()
            assert (report.block_number, lines(report)[usdt]) == (43, Decimal(1_250_000))
            chain.mine(1)
            report = await venue.fetch()
            assert (report.block_number, lines(report)[usdt]) == (44, Decimal(1_000_000))
            first.mode = "hang_up"
            # the 250,000 USDT sent at block 44 must not come back from block 34
            with pytest.raises(VenueUnavailable) as failed:
                await venue.fetch()
            assert "rpc endpoint 2 of 2: behind: its head 37 is before block 44" in str(
                failed.value
            )
            assert behind == [("anvil", "rpc endpoint 2 of 2")]
            lagging.behind = 45  # nearly caught up: it has block 44, and reads it again
            report = await venue.fetch()
            assert (report.block_number, lines(report)[usdt]) == (44, Decimal(1_000_000))
            assert venue.endpoint == "rpc endpoint 2 of 2"
            lagging.behind = None
            chain.mine(1)
            report = await venue.fetch()
            assert (report.block_number, lines(report)[usdt]) == (45, Decimal(1_000_000))
    assert behind == [("anvil", "rpc endpoint 2 of 2")]


async def test_a_log_scan_never_moves_past_a_block_the_answering_node_has_not_reached(
    world: World, proxy: RpcProxy
) -> None:
    nft, fund = world.withdrawals, world.fund
    head = world.chain.block_number()
    receipt = nft.transact("requestWithdraw", 2 * WAD, 2 * WAD, fund)  # minted after `head`
    new = int(receipt["logs"][0]["topics"][3], 16)
    holdings = [{"address": fund, "etherfi_scan_from_block": 0}]
    # one URL load-balanced over two nodes: the logs go to one still at the block before the
    # mint, which answers them up to its head without a word
    proxy.behind, proxy.behind_for = head, frozenset({"eth_getLogs"})
    behind: list[tuple[str, str]] = []
    async with opened(
        settings(world, [proxy.url], holdings=holdings),
        on_behind=lambda *labels: behind.append(labels),
    ) as venue:
        with contextlib.suppress(VenueUnavailable):
            await venue.fetch()
        proxy.behind = None  # the logs now go to a node that has the mint
        report = await venue.fetch()
    # the scan did not skip the blocks the first node had not reached: the request is found
    assert sorted(int(p.details["request_id"]) for p in locked(report)) == [world.request_id, new]
    assert behind == [("anvil", "rpc endpoint 1 of 1")]  # that node's answer was refused


async def test_claimed_requests_leave_the_read_set_and_stay_out_after_a_restart(
    world: World, proxy: RpcProxy, tmp_path: Path
) -> None:
    nft, fund = world.withdrawals, world.fund
    made = [nft.transact("requestWithdraw", WAD, WAD, fund)["logs"][0] for _ in range(30)]
    ids = [world.request_id, *(int(log["topics"][3], 16) for log in made)]
    holdings = [{"address": fund, "etherfi_scan_from_block": 0}]
    config = settings(world, [proxy.url], holdings=holdings)

    def open_ids(report: VenueReport) -> list[int]:
        return sorted(int(p.details["request_id"]) for p in locked(report))

    history = await History.open(tmp_path / "history.sqlite3")
    try:
        async with remembering(config, history) as venue:
            assert open_ids(await venue.fetch()) == ids
            proxy.reset()
            await venue.fetch()
            (all_open,) = proxy.aggregated  # calls in the fetch's one aggregate3
            nft.transact("finalizeRequests", ids[-1])
            for request in ids[:-1]:
                nft.transact("claimWithdraw", request, sender=fund)
            assert open_ids(await venue.fetch()) == ids[-1:]
            proxy.reset()
            assert open_ids(await venue.fetch()) == ids[-1:]
            (one_open,) = proxy.aggregated
            assert all_open - one_open == 30 * 3  # ownerOf, getRequest, isFinalized each
        proxy.reset()
        async with remembering(config, history) as venue:  # a restart: the claimed stay out
            assert open_ids(await venue.fetch()) == ids[-1:]
        assert proxy.aggregated[-1] == one_open
    finally:
        await history.aclose()


async def test_a_priority_queue_scan_stored_without_request_nonces_is_scanned_again(
    world: World, proxy: RpcProxy, contracts: dict[str, Artifact], tmp_path: Path
) -> None:
    queue = world.chain.deploy(contracts["priority_withdrawal_queue"])
    request = queue_request(queue, world.fund, 4 * WAD, 4 * WAD)
    hexid = "0x" + bytes(queue.call("getRequestId", request)).hex()
    source = {"contract": queue.address, "scan_from_block": 0}
    config = settings(
        world, [proxy.url], holdings=[{"address": world.fund, "etherfi_priority_queues": [source]}]
    )
    history = await History.open(tmp_path / "history.sqlite3")
    try:
        # as stored before requests kept the queue's nonce: it cannot tell a request closed
        # for good from one not made yet at the block read
        old = {"from": 0, "cursor": 10**9, "found": [[hexid, 4 * WAD, 4 * WAD]]}
        key = f"etherfi_priority:{world.fund}:{queue.address}"
        await history.remember("anvil", key, json.dumps(old), datetime.now(UTC))
        async with remembering(config, history) as venue:
            report = await venue.fetch()
        assert [p.details["request_id"] for p in locked(report)] == [hexid]
        assert proxy.methods.count("eth_getLogs") == 1  # from block 0 again
        (stored,) = json.loads((await history.recall("anvil"))[key])["found"]
        assert stored[0] == hexid
        assert len(stored) == 4
    finally:
        await history.aclose()
