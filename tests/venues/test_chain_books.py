"""Books valued end to end through the real `Daemon.cycle`, with chain venues on anvil.

Figures are worked out by hand in each test from the state the test sets up.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from equity_daemon.history import History
from equity_daemon.model import ProblemKind, Snapshot
from equity_daemon.render import snapshot_table
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import Settings
from equity_daemon.status_page.data import StatusData
from equity_daemon.status_page.page import render
from equity_daemon.venues.chain import ChainVenue
from tests.chain import RAY, WAD, Artifact
from tests.rpc_proxy import RpcProxy
from tests.venues.conftest import World
from tests.venues.test_chain_venue import chain_config

pytestmark = pytest.mark.anyio


def chain_venue(world: World, name: str, url: str, holding: dict[str, Any]) -> dict[str, Any]:
    return chain_config(world, name, [url], holding)


STAKING_PRICES: list[dict[str, Any]] = [
    {"base": "wstETH", "quote": "stETH", "sources": ["anvil-eth"]},
    {"base": "stETH", "quote": "ETH", "fixed": 1},
    {"base": "WETH", "quote": "ETH", "fixed": 1},
]
ETH_IN_USD: dict[str, Any] = {"base": "ETH", "quote": "USD", "sources": ["anvil-eth"]}


def staking_book(
    tmp_path: Path, venue: dict[str, Any], prices: list[dict[str, Any]], **book: Any
) -> Settings:
    """An ETH share-class book of one chain venue (history unused by the tests that call it)."""
    return Settings.model_validate(
        {
            "history_path": tmp_path / "unused.sqlite3",
            "books": {
                "staking": {"share_class": "ETH", "venues": [venue], "prices": prices, **book}
            },
        }
    )


@asynccontextmanager
async def running(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[Daemon, History]]:
    daemon = Daemon(settings)
    history = await History.open(tmp_path / "history.sqlite3")
    try:
        yield daemon, history
    finally:
        await history.aclose()
        for book in daemon.books:
            for venue in book.venues:
                if isinstance(venue, ChainVenue):
                    await venue.aclose()


async def cycle(daemon: Daemon, history: History) -> list[Snapshot]:
    await daemon.fetch_all_once()
    await daemon.cycle(history)
    return [snap for book in daemon.books if (snap := book.tracker.latest) is not None]


def supply_wsteth(world: World, contracts: dict[str, Artifact], holder: str) -> None:
    """wstETH listed in the Aave market; `holder` supplies 100 and borrows 80 WETH (scaled)."""
    a_wsteth = world.chain.deploy(
        contracts["aave_atoken"], world.pool.address, world.wsteth.address, "Aave wstETH",
        "aEthwstETH", 18,
    )  # fmt: skip
    debt_wsteth = world.chain.deploy(
        contracts["aave_debt_token"], world.pool.address, world.wsteth.address,
        "Aave variable debt wstETH", "variableDebtEthwstETH", 18,
    )  # fmt: skip
    world.pool.transact("init_reserve", world.wsteth.address, a_wsteth.address, debt_wsteth.address)
    a_wsteth.transact("mint_scaled", holder, 100 * WAD)  # index 1: 100 wstETH
    world.pool.transact("setUserUseReserveAsCollateral", world.wsteth.address, True, sender=holder)
    world.debt_weth.transact("mint_scaled", holder, 80 * WAD)  # index 1.07: 85.6 WETH


async def test_a_leveraged_staking_book_in_eth(
    world: World, proxy: RpcProxy, contracts: dict[str, Artifact], tmp_path: Path
) -> None:
    holder = world.chain.accounts[2]
    supply_wsteth(world, contracts, holder)
    # Aave's own figures at ETH = 3000 USD: 121 ETH of collateral, 85.6 ETH of debt
    world.aave_oracle.transact("set_asset_price", world.wsteth.address, 3_630 * 10**8)
    world.aave_oracle.transact("set_asset_price", world.weth.address, 3_000 * 10**8)
    world.pool.transact(
        "set_user_account_data", holder, 363_000 * 10**8, 256_800 * 10**8, 0, 8250, 8000,
        14 * WAD // 10,
    )  # fmt: skip
    venue = chain_venue(world, "anvil-eth", proxy.url, {"address": holder, "aave": ["core"]})
    settings = staking_book(tmp_path, venue, [*STAKING_PRICES, ETH_IN_USD])
    async with running(settings, tmp_path) as (daemon, history):
        (snap,) = await cycle(daemon, history)
        assert snap.complete, snap.problems
        # 100 wstETH x 1.21 stETH/wstETH x 1 ETH/stETH - 80 x 1.07 WETH = 121 - 85.6
        assert snap.equity == Decimal("35.4")
        assert snap.total_assets == 121
        assert snap.total_debt == Decimal("85.6")
        assert dict(snap.equity_by_venue) == {"anvil-eth": Decimal("35.4")}
        assert snap.equity_by_account == {"anvil-eth": {f"aave-core:{holder}": Decimal("35.4")}}
        (reconciliation,) = snap.reconciliations
        assert reconciliation.account == f"aave-core:{holder}"
        assert reconciliation.reported == Decimal("35.4")  # (363000 - 256800) USD / 3000
        assert reconciliation.ratio == 0
        assert daemon.instruments.registry.get_sample_value(
            "equity_daemon_aave_health_factor",
            {"book": "staking", "venue": "anvil-eth", "market": "core", "address": holder},
        ) == pytest.approx(1.4)

        # a day of interest: supply index 1.0 -> 1.001, WETH debt index 1.07 -> 1.071
        world.pool.transact("set_indexes", world.wsteth.address, RAY * 1001 // 1000, RAY)
        world.pool.transact("set_indexes", world.weth.address, RAY * 103 // 100, RAY * 1071 // 1000)
        proxy.reset()
        (snap,) = await cycle(daemon, history)
        assert proxy.methods == ["eth_blockNumber", "eth_call"]  # one block, one read
        # 100.1 x 1.21 - 80 x 1.071 = 121.121 - 85.68
        assert snap.equity == Decimal("35.441")


async def test_aave_is_reconciled_at_its_own_oracle_prices(
    world: World, proxy: RpcProxy, contracts: dict[str, Artifact], tmp_path: Path
) -> None:
    holder = world.chain.accounts[2]
    supply_wsteth(world, contracts, holder)  # 100 wstETH supplied, 85.6 WETH owed
    # Aave's oracle prices wstETH lower than the book (3600 USD, the book 1.21 x 3000 = 3630):
    # at the book's prices Aave's figure would look 2.9 % off
    world.aave_oracle.transact("set_asset_price", world.wsteth.address, 3_600 * 10**8)
    world.aave_oracle.transact("set_asset_price", world.weth.address, 3_000 * 10**8)
    # Aave's sums, with its rounding (venue-pitfalls 42): collateral down, debt up by base units
    world.pool.transact(
        "set_user_account_data", holder, 360_000 * 10**8 - 1, 256_800 * 10**8 + 2, 0, 8250,
        8000, 14 * WAD // 10,
    )  # fmt: skip
    venue = chain_venue(world, "anvil-eth", proxy.url, {"address": holder, "aave": ["core"]})
    settings = staking_book(
        tmp_path, venue, [*STAKING_PRICES, ETH_IN_USD], reconciliation_tolerance="0.001"
    )
    async with running(settings, tmp_path) as (daemon, history):
        await daemon.fetch_all_once()
        events = await daemon.cycle(history)
        (snap,) = [book.tracker.latest for book in daemon.books]
        assert snap is not None
        assert snap.complete, snap.problems
        assert snap.equity == Decimal("35.4")  # the book's own prices: 121 - 85.6
        (item,) = snap.reconciliations
        # ours at Aave's prices: 100 x 3600 - 85.6 x 3000 = 103,200 USD = 34.4 ETH;
        # Aave's: 103,199.99999997 USD
        assert item.computed == Decimal("34.4")
        assert item.reported_amount == Decimal("103199.99999997")
        assert item.ratio is not None
        assert abs(item.ratio) < Decimal("1e-12")
        assert [e.kind.value for e in events if e.kind.value == "reconciliation"] == []

        # Aave's figure no longer matches the balances read at the same block
        world.pool.transact(
            "set_user_account_data", holder, 340_000 * 10**8, 256_800 * 10**8, 0, 8250, 8000,
            13 * WAD // 10,
        )  # fmt: skip
        await daemon.fetch_all_once()
        events = await daemon.cycle(history)
        (drift,) = [e for e in events if e.kind.value == "reconciliation"]
        assert drift.detail is not None
        assert f"aave-core:{holder}" in drift.detail
        (item,) = drift.snapshot.reconciliations
        assert item.computed == Decimal("34.4")
        assert item.reported_amount == Decimal("83200")


async def test_a_supply_not_used_as_collateral_neither_warns_nor_hides_a_difference(
    world: World, proxy: RpcProxy, contracts: dict[str, Artifact], tmp_path: Path
) -> None:
    holder = world.chain.accounts[2]
    supply_wsteth(world, contracts, holder)  # 100 wstETH as collateral, 85.6 WETH owed
    world.a_usdt.transact("mint_scaled", holder, 30_000 * 10**6)  # collateral left disabled
    world.aave_oracle.transact("set_asset_price", world.wsteth.address, 3_630 * 10**8)
    world.aave_oracle.transact("set_asset_price", world.weth.address, 3_000 * 10**8)

    def aave_says(collateral_usd: int) -> None:
        world.pool.transact(
            "set_user_account_data", holder, collateral_usd * 10**8, 256_800 * 10**8, 0, 8250,
            8000, 14 * WAD // 10,
        )  # fmt: skip

    aave_says(363_000)  # Aave's collateral: the wstETH only
    venue = chain_venue(world, "anvil-eth", proxy.url, {"address": holder, "aave": ["core"]})
    prices = [*STAKING_PRICES, ETH_IN_USD, {"base": "USDT", "quote": "USD", "fixed": 1}]
    settings = staking_book(tmp_path, venue, prices, reconciliation_tolerance="0.001")

    async def reconcile() -> tuple[Snapshot, list[str]]:
        await daemon.fetch_all_once()
        events = await daemon.cycle(history)
        (snap,) = [book.tracker.latest for book in daemon.books]
        assert snap is not None
        return snap, [e.detail or "" for e in events if e.kind.value == "reconciliation"]

    async with running(settings, tmp_path) as (daemon, history):
        snap, warnings = await reconcile()
        assert snap.complete, snap.problems
        # the USDT is equity all the same: 121 - 85.6 + 30,000 USD / 3000 = 45.4 ETH
        assert snap.equity == Decimal("45.4")
        (item,) = snap.reconciliations
        assert (item.computed, item.reported) == (Decimal("35.4"), Decimal("35.4"))
        assert warnings == []

        # Aave's oracle gone: reconciled at the book's prices, still without the USDT
        world.chain.set_code(world.aave_oracle.address, b"")
        snap, warnings = await reconcile()
        (item,) = snap.reconciliations
        assert (item.computed, item.reported) == (Decimal("35.4"), Decimal("35.4"))
        assert warnings == []

        # Aave counts 30,000 USD more collateral than the reserves enabled as collateral hold:
        # counting every supply would agree with it; the difference is real and shows
        aave_says(393_000)
        snap, warnings = await reconcile()
        (item,) = snap.reconciliations
        assert (item.computed, item.reported) == (Decimal("35.4"), Decimal("45.4"))
        (warning,) = warnings
        assert f"aave-core:{holder}" in warning


async def test_a_basis_book_in_usdt_with_a_manual_hedge(
    world: World, proxy: RpcProxy, tmp_path: Path
) -> None:
    holder = world.chain.accounts[3]
    world.weeth.transact("mint", holder, 40 * WAD)
    hedge = tmp_path / "hedge.toml"
    hedge.write_text(
        '[[positions]]\naccount = "perp"\nasset = "ETH"\namount = "-42.4"\nkind = "hedge"\n'
        '[[positions]]\naccount = "perp"\nasset = "USDT"\namount = "5000"\n'
    )
    venue = chain_venue(world, "anvil-usdt", proxy.url, {"address": holder, "wallet": ["weETH"]})
    settings = Settings.model_validate(
        {
            "history_path": tmp_path / "unused.sqlite3",
            "books": {
                "basis": {
                    "share_class": "USDT",
                    "venues": [venue, {"kind": "manual", "name": "exchange", "path": hedge}],
                    "prices": [
                        {"base": "weETH", "quote": "eETH", "sources": ["anvil-usdt"]},
                        {"base": "eETH", "quote": "ETH", "fixed": 1},
                        {"base": "ETH", "quote": "USD", "sources": ["anvil-usdt"]},
                        {"base": "USD", "quote": "USDT", "fixed": 1},
                    ],
                }
            },
        }
    )
    async with running(settings, tmp_path) as (daemon, history):
        (snap,) = await cycle(daemon, history)
        assert snap.complete, snap.problems
        # 40 weETH x 1.06 eETH x 1 ETH x 3000 USD x 1 USDT = 127200, plus 5000 USDT margin
        assert snap.equity == 132_200
        assert dict(snap.equity_by_venue) == {"anvil-usdt": 127_200, "exchange": 5_000}
        # a fund reads its equity by protocol: the chain venue's accounts
        assert snap.to_json()["equity_by_account"] == {
            "anvil-usdt": {f"wallet:{holder}": "127200"},
            "exchange": {"perp": "5000"},
        }
        (hedge_line,) = snap.excluded
        assert hedge_line.value == Decimal("127200")  # 42.4 ETH x 3000: the other leg
        assert hedge_line.side == "short"

        # the feed stops updating: no fresh ETH price, the snapshot says so and names it
        world.eth_usd.transact("set_answer", 3_100 * 10**8, int(time.time()) - 2 * 3600)
        (snap,) = await cycle(daemon, history)
        assert not snap.complete
        assert {(p.kind, p.subject) for p in snap.problems} >= {(ProblemKind.STALE_PRICE, "weETH")}
        (failure,) = [f for f in snap.quote_failures if f.edge == "ETH/USD"]
        assert failure.source == "anvil-usdt"
        assert "stale" in failure.reason
        assert snap.equity == 132_200  # at the last good price, marked stale


async def test_an_endpoint_dying_between_cycles_leaves_no_gap_and_no_event(
    world: World, anvil_url: str, contracts: dict[str, Artifact], tmp_path: Path
) -> None:
    holder = world.chain.accounts[2]
    supply_wsteth(world, contracts, holder)
    with RpcProxy(anvil_url) as first, RpcProxy(anvil_url) as second:
        venue = chain_venue(world, "anvil-eth", first.url, {"address": holder, "aave": ["core"]})
        venue["rpc"] = [first.url, second.url]
        venue["feeds"] = []
        settings = staking_book(tmp_path, venue, STAKING_PRICES)
        async with running(settings, tmp_path) as (daemon, history):
            (snap,) = await cycle(daemon, history)
            assert snap.complete
            first.mode = "hang_up"
            await daemon.fetch_all_once()
            events = await daemon.cycle(history)
            (after,) = [book.tracker.latest for book in daemon.books]
            assert events == []
            assert after is not None
            assert after.complete
            assert after.equity == snap.equity == Decimal("35.4")
            assert (
                daemon.instruments.registry.get_sample_value(
                    "equity_daemon_venue_errors_total",
                    {"venue": "anvil-eth", "reason": "unavailable"},
                )
                == 0
            )


async def test_a_running_daemon_serves_chain_metrics_remembers_discovery_and_closes_rpc(
    world: World, proxy: RpcProxy, tmp_path: Path
) -> None:
    venue = chain_venue(world, "anvil-eth", proxy.url, {"address": world.fund, "aave": ["core"]})
    settings = Settings.model_validate(
        {
            "history_path": tmp_path / "unused.sqlite3",
            "http": {"port": 0},
            "books": {
                "staking": {
                    "share_class": "ETH",
                    "venues": [venue],
                    "prices": [{"base": "WETH", "quote": "ETH", "fixed": 1}],
                }
            },
        }
    )
    daemon = Daemon(settings)
    history = await History.open(tmp_path / "history.sqlite3")
    (chain,) = [v for book in daemon.books for v in book.venues if isinstance(v, ChainVenue)]
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(partial(daemon.run, history, handle_signals=False))
            snap = daemon.latest("staking")
            assert snap is not None
            assert snap.equity == Decimal("144.5")  # 412 aWETH - 267.5 variable debt WETH
            text = daemon.metrics()[0].decode()
            assert (
                f'equity_daemon_aave_health_factor{{address="{world.fund}",book="staking",'
                'market="core",venue="anvil-eth"} 1.27'
            ) in text
            assert (
                f'equity_daemon_aave_collateral{{address="{world.fund}",book="staking",'
                'currency="USD",market="core",venue="anvil-eth"} 1.236e+08'
            ) in text
            tg.cancel_scope.cancel()
        # the daemon gave the venue its history: discovery is there for the next start
        assert "discovery" in await history.recall("anvil-eth")
    finally:
        await history.aclose()
    assert chain._opened == set()  # every endpoint's session closed with the daemon


async def test_a_failover_to_a_lagging_endpoint_neither_counts_money_twice_nor_alerts(
    world: World, anvil_url: str, tmp_path: Path
) -> None:
    chain, desk = world.chain, world.chain.accounts[5]
    chain.mine(43 - chain.block_number())
    # 250,000 USDT sent from the wallet to the trading desk's address, in block 44
    world.usdt.transact("transfer", desk, 250_000 * 10**6, sender=world.fund)
    chain.mine(2)
    with (
        RpcProxy(anvil_url) as first,
        RpcProxy(anvil_url) as lagging,
        RpcProxy(anvil_url) as desk_rpc,
    ):
        lagging.behind = 37  # ten blocks behind: head - 3 is block 34, before the transfer
        wallet = chain_config(
            world, "wallet", [first.url, lagging.url], {"address": world.fund, "wallet": ["USDT"]}
        )
        desks = chain_config(world, "desk", [desk_rpc.url], {"address": desk, "wallet": ["USDT"]})
        for venue in (wallet, desks):
            venue["tokens"] |= {"USDT": world.usdt.address}
            venue["confirmations"] = 3
        wallet["retry_preferred_every"] = 2  # back on the first endpoint once it answers
        settings = Settings.model_validate(
            {
                "history_path": tmp_path / "unused.sqlite3",
                "books": {"usdt": {"share_class": "USDT", "venues": [wallet, desks]}},
            }
        )
        async with running(settings, tmp_path) as (daemon, history):
            (snap,) = await cycle(daemon, history)  # block 43: all of it in the wallet
            assert snap.complete, snap.problems
            assert snap.equity == 1_250_000
            chain.mine(1)
            events, seen = [], []
            for step in ("sent", "failover", "back"):
                first.mode = "hang_up" if step == "failover" else "forward"
                await daemon.fetch_all_once()
                events += await daemon.cycle(history)
                (latest,) = [book.tracker.latest for book in daemon.books]
                assert latest is not None
                seen.append((latest.equity, latest.equity_by_venue["wallet"]))
            # from block 44 on: 1,000,000 in the wallet and 250,000 at the desk, never the
            # wallet's 1,250,000 of block 34 beside the desk's 250,000, and no event for it
            assert (seen, [e.kind.value for e in events]) == (
                [(Decimal(1_250_000), Decimal(1_000_000))] * 3,
                [],
            )
            assert (
                daemon.instruments.registry.get_sample_value(
                    "equity_daemon_chain_endpoint_behind_total",
                    {"venue": "wallet", "endpoint": "rpc endpoint 2 of 2"},
                )
                == 1
            )


async def test_withdrawal_requests_show_their_id_and_state_wherever_the_book_is_read(
    world: World, proxy: RpcProxy, tmp_path: Path
) -> None:
    holder, nft = world.chain.accounts[2], world.withdrawals
    claimable = int(
        nft.transact("requestWithdraw", 12_500 * WAD // 1000, 12 * WAD, holder)["logs"][0][
            "topics"
        ][3],
        16,
    )
    nft.transact("finalizeRequests", claimable)
    pending = int(
        nft.transact("requestWithdraw", 30_250 * WAD // 1000, 29 * WAD, holder)["logs"][0][
            "topics"
        ][3],
        16,
    )
    venue = chain_venue(
        world, "anvil-eth", proxy.url, {"address": holder, "etherfi_requests": [claimable, pending]}
    )
    venue["contracts"] = {"etherfi_withdrawals": nft.address}
    async with running(staking_book(tmp_path, venue, []), tmp_path) as (daemon, history):
        (snap,) = await cycle(daemon, history)
        (doc,) = daemon.snapshots()
    # /snapshot
    assert [(line["amount"], line["details"]) for line in doc["excluded"]] == [
        (
            "12.5",
            {
                "request_id": str(claimable),
                "contract": nft.address,
                "finalized": "true",
                "valid": "true",
            },
        ),
        (
            "30.25",
            {
                "request_id": str(pending),
                "contract": nft.address,
                "finalized": "false",
                "valid": "true",
            },
        ),
    ]
    # `once`
    table = snapshot_table(snap)
    assert re.search(rf"locked .* 12\.5 .*value 12\.500000  request {claimable} claimable", table)
    assert re.search(rf"locked .* 30\.25 .*value 30\.250000  request {pending} pending", table)
    # the status page
    page = render(
        StatusData(now=snap.at, snapshots=[doc], histories={}, events=[], healthy=(True, ""),
                   ready=(True, []))
    )  # fmt: skip
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert re.search(rf"ETH 12\.5 12\.50* request {claimable} claimable", text)
    assert re.search(rf"ETH 30\.25 30\.250* request {pending} pending", text)
