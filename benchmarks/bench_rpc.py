"""JSON-RPC requests and time per chain-venue fetch with 1, 10, 100 and 1,000 positions.

Runs anvil (see tests/chain.py for how it is found), deploys Multicall3 and a token, gives each
of N addresses a balance, and reads them through a counting proxy: one `eth_blockNumber` and
one `eth_call` per fetch while the calls fit in one `aggregate3` (`max_calls` 1,024: the Vyper
stand-in of Multicall3 takes at most 1,024 calls, the three block-proof calls included); past
it, one more `eth_call` per 1,021 calls, each proving the same block (the `note` says so).
Requests are counted at the proxy; times are measured straight to anvil.

Then EtherFi withdrawal requests found in the NFT's mint logs: an address that made 31 requests
and claimed 30 of them, read through the proxy, which also counts the calls inside each
`aggregate3`: the calls of a fetch after the one that saw the claims (each open request costs
three: `ownerOf`, `getRequest`, `isFinalized`).

Prints one JSON object: {"results": [{"positions": 10, "requests_per_cycle": 2, "cycle_ms":
4.1}, ...], "note": ..., "withdrawal_requests": {"made": 31, "open": 1, "calls_per_fetch": ...,
"requests_per_cycle": 2}}.
Run: python benchmarks/bench_rpc.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import structlog
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.chain, tests.rpc_proxy

from equity_daemon.clock import SystemClock
from equity_daemon.settings import ChainVenue as ChainSettings
from equity_daemon.venues.chain import ChainVenue
from equity_daemon.venues.multicall import MULTICALL3_ADDRESS
from tests.chain import Anvil, Artifact, Chain, compile_contracts, require_anvil
from tests.rpc_proxy import RpcProxy

SIZES = (1, 10, 100, 1000)
FETCHES = 10
MAX_CALLS = 1024


async def fetch_times(
    config: ChainSettings, after_first: Callable[[], None] = lambda: None
) -> tuple[int, list[float]]:
    """Positions read, and the time of each of `FETCHES` fetches after the first."""
    venue = ChainVenue(config, SystemClock())
    try:
        await venue.fetch()  # discovery and the chain-id check: once, not per cycle
        after_first()
        times = []
        for _ in range(FETCHES):
            started = time.perf_counter()
            report = await venue.fetch()
            times.append((time.perf_counter() - started) * 1000)
    finally:
        await venue.aclose()
    return len(report.positions), times


def measure(config: ChainSettings, anvil_url: str, proxy: RpcProxy) -> dict[str, Any]:
    """Requests counted through the proxy; time measured straight to anvil (the proxy, a
    Python thread server, adds tens of milliseconds per request that no real node costs)."""
    counted = config.model_copy(update={"rpc": (SecretStr(proxy.url),)})
    direct = config.model_copy(update={"rpc": (SecretStr(anvil_url),)})
    anyio.run(fetch_times, counted, proxy.reset)
    requests = proxy.requests / FETCHES
    positions, times = anyio.run(fetch_times, direct)
    return {
        "positions": positions,
        "requests_per_cycle": requests,
        "cycle_ms": round(statistics.median(times), 1),
    }


REQUESTS_MADE = 31
REQUESTS_OPEN = 1


async def calls_per_fetch(config: ChainSettings, proxy: RpcProxy) -> tuple[int, float, float]:
    """Open requests read, and the calls per aggregate3 and requests per fetch after the
    first two (discovery and the scan; the read that sees the claims)."""
    venue = ChainVenue(config, SystemClock())
    try:
        await venue.fetch()
        await venue.fetch()
        proxy.reset()
        for _ in range(FETCHES):
            report = await venue.fetch()
    finally:
        await venue.aclose()
    return len(report.positions), statistics.mean(proxy.aggregated), proxy.requests / FETCHES


def withdrawal_requests(
    chain: Chain, contracts: dict[str, Artifact], proxy: RpcProxy
) -> dict[str, Any]:
    holder = chain.accounts[1]
    nft = chain.deploy(contracts["withdraw_request_nft"])
    ids = [
        int(nft.transact("requestWithdraw", 10**18, 10**18, holder)["logs"][0]["topics"][3], 16)
        for _ in range(REQUESTS_MADE)
    ]
    nft.transact("finalizeRequests", ids[-1])
    for request in ids[: REQUESTS_MADE - REQUESTS_OPEN]:
        nft.transact("claimWithdraw", request, sender=holder)
    config = ChainSettings.model_validate(
        {
            "kind": "chain",
            "name": "bench",
            "chain_id": 31337,
            "rpc": [proxy.url],
            "confirmations": 0,
            "contracts": {"etherfi_withdrawals": nft.address},
            "holdings": [{"address": holder, "etherfi_scan_from_block": 0}],
        }
    )
    read, calls, requests = anyio.run(calls_per_fetch, config, proxy)
    assert read == REQUESTS_OPEN
    return {
        "made": REQUESTS_MADE,
        "open": REQUESTS_OPEN,
        "calls_per_fetch": calls,
        "requests_per_cycle": requests,
    }


def main() -> None:
    # the venue's log lines (discovery) go to stderr: stdout is the JSON result
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    contracts = compile_contracts()
    anvil = Anvil(require_anvil())
    try:
        chain = Chain(anvil.start())
        chain.set_code(MULTICALL3_ADDRESS, contracts["multicall3"].runtime)
        token = chain.deploy(contracts["erc20"], "Tether USD", "USDT", 6)
        holders = [f"0x{index + 1:040x}" for index in range(max(SIZES))]
        for holder in holders:
            token.transact("mint", holder, 1_000_000)
        results = []
        with RpcProxy(anvil.url) as proxy:
            for size in SIZES:
                config = ChainSettings.model_validate(
                    {
                        "kind": "chain",
                        "name": "bench",
                        "chain_id": 31337,
                        "rpc": [anvil.url],
                        "confirmations": 0,
                        "max_calls": MAX_CALLS,
                        "tokens": {"USDT": token.address},
                        "holdings": [{"address": h, "wallet": ["USDT"]} for h in holders[:size]],
                    }
                )
                results.append(measure(config, anvil.url, proxy))
            withdrawals = withdrawal_requests(chain, contracts, proxy)
        chain.close()
    finally:
        anvil.close()
    split = [r["positions"] for r in results if r["requests_per_cycle"] > 2]
    note = (
        f"max_calls={MAX_CALLS} (the Vyper Multicall3 stand-in's bound): {split} positions "
        "need several aggregate3 eth_calls per cycle, all at one block"
        if split
        else "every size in one aggregate3"
    )
    print(json.dumps({"results": results, "note": note, "withdrawal_requests": withdrawals}))


if __name__ == "__main__":
    main()
