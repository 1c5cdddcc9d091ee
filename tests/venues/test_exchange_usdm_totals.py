"""Binance USDⓈ-M reconciliation compares like with like: in single-asset mode the exchange's
`totalMarginBalance` covers USDT alone, and in either mode a total that a push has made stale
is not compared. Through the daemon, on the fake Binance."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.model import Snapshot
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.venues.fake_exchange import FakePosition, FakeState, Holding, fake_exchange
from tests.venues.exchanges import subscribed
from tests.venues.test_exchange_stream import running, store_has, venue_config

pytestmark = pytest.mark.anyio

D = Decimal
PRICES: list[dict[str, Any]] = [
    {"base": "ETH", "quote": "USDT", "fixed": "3000"},
    {"base": "BNB", "quote": "USDT", "fixed": "600"},
    {"base": "USDC", "quote": "USDT", "fixed": "1"},
    {"base": "USD", "quote": "USDT", "fixed": "1"},
]
WALLETS = {
    "USDT": Holding(balance=D(5000)),
    "USDC": Holding(balance=D(1000)),
    "BNB": Holding(balance=D(2)),
}


def usdm(fake: Any, **extra: Any) -> dict[str, Any]:
    return venue_config(fake, kind="binance", accounts=["usdm"], **extra)


async def settled(daemon: Daemon) -> tuple[Snapshot, list[str]]:
    """The daemon's latest snapshot and the kinds of every event it raised, once the cycles
    the last report started are done."""
    await anyio.sleep(0.3)
    latest = daemon.latest()
    assert latest is not None
    return latest, [e["kind"] for e in await daemon.events(None)]


async def single_asset(
    tmp_path: Path, wallets: dict[str, Holding], positions: list[FakePosition]
) -> tuple[Snapshot, list[str]]:
    """What the daemon makes of a single-asset USDⓈ-M account holding `wallets` and
    `positions` on the fake Binance, once its first report is valued."""
    async with fake_exchange("binance", FakeState(multi_assets=False)) as fake:
        fake.set_account("futures", wallets)
        fake.set_positions(positions)
        with capture_logs():
            async with running(tmp_path, usdm(fake), PRICES) as daemon:
                return await settled(daemon)


async def test_a_single_asset_account_is_compared_on_usdt_alone(tmp_path: Path) -> None:
    """`totalMarginBalance` covers USDT only: USDT 5,000 + USDC 1,000 + BNB 2 read as a
    difference of 0.44, a warning forever."""
    # a USDC-margined perpetual: its legs are neither in the total nor in the comparison
    perp = FakePosition("ETH", D(1), D(3000), settle="USDC")
    latest, events = await single_asset(tmp_path, WALLETS, [perp])
    (item,) = latest.reconciliations
    assert (item.reported_amount, item.reported_currency) == (D(5000), "USDT")
    assert item.computed == 5000
    assert item.difference == 0
    assert latest.equity == 5000 + 1000 + 2 * 600
    assert "reconciliation" not in events


async def test_a_single_asset_total_leaves_out_the_upnl_of_contracts_settled_outside_it(
    tmp_path: Path,
) -> None:
    """A USDC-margined perpetual's uPnL (+200 USDC: long 1 ETH from 2,800, mark 3,000) is in
    USDC's margin balance, not in USDT's `totalMarginBalance`: the positions' uPnL at the marks
    of the read leaves it out as the total does, never a 200 USDT difference named as uPnL
    the positions do not explain."""
    usdc = Holding(balance=D(1000), unrealized_pnl=D(200))
    perp = FakePosition("ETH", D(1), D(2800), settle="USDC")
    latest, events = await single_asset(tmp_path, WALLETS | {"USDC": usdc}, [perp])
    (item,) = latest.reconciliations
    assert (item.reported_amount, item.reported_currency) == (D(5000), "USDT")
    assert (item.computed, item.difference) == (D(5000), D(0))
    assert (item.unrealized_pnl, item.unexplained_pnl) == (D(0), D(0))
    assert latest.unrealized_pnl == 200  # in equity, at the contract's own mark
    assert latest.equity == 5000 + 1000 + 2 * 600 + 200
    assert "reconciliation" not in events


async def test_a_single_asset_total_moves_with_a_pushed_usdt_wallet(tmp_path: Path) -> None:
    async with fake_exchange("binance", FakeState(multi_assets=False)) as fake:
        fake.set_account("futures", WALLETS)
        with capture_logs():
            async with running(tmp_path, usdm(fake), PRICES) as daemon:
                await subscribed(fake, "account")
                fake.set_holding("futures", "USDT", Holding(balance=D(5500)))
                fake.set_holding("futures", "BNB", Holding(balance=D(3)))
                assert await fake.push("account", coins=["USDT", "BNB"]) == 1
                await store_has(daemon, lambda s: len(s.latest.positions) == 3 and s.latest.as_of)
                latest, events = await settled(daemon)
    (item,) = latest.reconciliations  # the push moved the total by USDT's change exactly
    assert (item.reported_amount, item.computed, item.difference) == (D(5500), D(5500), D(0))
    assert events == ["threshold"]  # the move itself, and nothing else


async def test_a_multi_assets_total_a_push_made_stale_is_not_compared(tmp_path: Path) -> None:
    """A pushed USDC wallet change left `totalMarginBalance` as read, still compared: a
    difference of 0.1 against a tolerance of 0.005, a `reconciliation` event to every
    webhook."""
    async with fake_exchange("binance", FakeState(multi_assets=True)) as fake:
        fake.set_account("futures", {k: WALLETS[k] for k in ("USDT", "USDC")})
        with capture_logs():
            async with running(tmp_path, usdm(fake, resync_seconds=1.5), PRICES) as daemon:
                before = daemon.latest()
                await subscribed(fake, "account")
                fake.set_holding("futures", "USDC", Holding(balance=D(1600)))
                assert await fake.push("account", coins=["USDC"]) == 1
                await store_has(daemon, lambda s: s.latest.as_of is not None)
                pushed, _ = await settled(daemon)
                with anyio.fail_after(5):  # the next REST snapshot brings a current total
                    while not (latest := await settled(daemon))[0].reconciliations:
                        pass
                _, events = latest
    assert before is not None
    (read,) = before.reconciliations
    assert (read.reported_amount, read.reported_currency, read.difference) == (D(6000), "USD", D(0))
    assert pushed.equity == 6600
    assert pushed.reconciliations == ()  # the total is stale: nothing to compare
    (resynced,) = latest[0].reconciliations
    assert (resynced.reported_amount, resynced.difference) == (D(6600), D(0))
    assert "reconciliation" not in events
