"""One anvil per test session, our contracts deployed on it once, state reverted after each test.

`world` is the deployed book: a fund wallet holding USDT, wstETH, weETH, Aave positions, an
EtherFi withdrawal request and vault shares, with Multicall3 at its canonical address. A test
may change anything: the chain is reverted to the deployed state (`evm_revert`) afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from equity_daemon.venues.multicall import MULTICALL3_ADDRESS
from tests.chain import RAY, WAD, Anvil, Artifact, Chain, Contract, compile_contracts, require_anvil
from tests.rpc_proxy import RpcProxy

USDT_UNIT = 10**6


@dataclass(frozen=True)
class World:
    """The contracts of the deployed book and the wallet that owns it."""

    chain: Chain
    fund: str
    nobody: str  # an address without code
    multicall: Contract
    usdt: Contract
    weth: Contract
    pool: Contract
    aave_oracle: Contract
    a_usdt: Contract
    debt_usdt: Contract
    a_weth: Contract
    debt_weth: Contract
    wsteth: Contract
    weeth: Contract
    withdrawals: Contract
    eth_usd: Contract
    vault: Contract
    request_id: int  # the fund's pending EtherFi withdrawal


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    anvil = Anvil(require_anvil())
    try:
        yield anvil.start()
    finally:
        anvil.close()


@pytest.fixture(scope="session")
def contracts() -> dict[str, Artifact]:
    return compile_contracts()


@pytest.fixture(scope="session")
def deployed(anvil_url: str, contracts: dict[str, Artifact]) -> Iterator[World]:
    chain = Chain(anvil_url)
    try:
        yield deploy_world(chain, contracts)
    finally:
        chain.close()


@pytest.fixture
def world(deployed: World) -> Iterator[World]:
    snapshot = deployed.chain.snapshot()
    try:
        yield deployed
    finally:
        deployed.chain.revert(snapshot)


@pytest.fixture
def proxy(anvil_url: str) -> Iterator[RpcProxy]:
    with RpcProxy(anvil_url) as running:
        yield running


def deploy_world(chain: Chain, contracts: dict[str, Artifact]) -> World:
    fund = chain.accounts[1]
    chain.set_code(MULTICALL3_ADDRESS, contracts["multicall3"].runtime)
    multicall = chain.at(MULTICALL3_ADDRESS, contracts["multicall3"])

    erc20 = contracts["erc20"]
    usdt = chain.deploy(erc20, "Tether USD", "USDT", 6)
    weth = chain.deploy(erc20, "Wrapped Ether", "WETH", 18)
    usdt.transact("mint", fund, 1_250_000 * USDT_UNIT)

    pool = chain.deploy(contracts["aave_pool"])
    a_usdt = chain.deploy(
        contracts["aave_atoken"], pool.address, usdt.address, "Aave USDT", "aEthUSDT", 6
    )
    debt_usdt = chain.deploy(
        contracts["aave_debt_token"],
        pool.address,
        usdt.address,
        "Aave variable debt USDT",
        "variableDebtEthUSDT",
        6,
    )
    a_weth = chain.deploy(
        contracts["aave_atoken"], pool.address, weth.address, "Aave WETH", "aEthWETH", 18
    )
    debt_weth = chain.deploy(
        contracts["aave_debt_token"],
        pool.address,
        weth.address,
        "Aave variable debt WETH",
        "variableDebtEthWETH",
        18,
    )
    aave_oracle = chain.deploy(contracts["aave_oracle"])
    provider = chain.deploy(contracts["aave_addresses_provider"], aave_oracle.address)
    pool.transact("set_addresses_provider", provider.address)
    # Aave's prices (base currency, 8 dp), at which the account data below is consistent:
    # 412 WETH x 300,000 = 123,600,000 collateral, 267.5 x 300,000 = 80,250,000 debt
    aave_oracle.transact("set_asset_price", weth.address, 300_000 * 10**8)
    aave_oracle.transact("set_asset_price", usdt.address, 10**8)
    pool.transact("init_reserve", usdt.address, a_usdt.address, debt_usdt.address)
    pool.transact("init_reserve", weth.address, a_weth.address, debt_weth.address)
    pool.transact("set_indexes", weth.address, RAY * 103 // 100, RAY * 107 // 100)
    a_weth.transact("mint_scaled", fund, 400 * WAD)
    pool.transact("setUserUseReserveAsCollateral", weth.address, True, sender=fund)
    debt_weth.transact("mint_scaled", fund, 250 * WAD)
    pool.transact(
        "set_user_account_data",
        fund,
        123_600_000 * 10**8,
        80_250_000 * 10**8,
        0,
        8250,
        8000,
        127 * WAD // 100,
    )

    wsteth = chain.deploy(contracts["wsteth"], 1_210_000_000_000_000_000)
    weeth = chain.deploy(contracts["weeth"], 1_060_000_000_000_000_000)
    wsteth.transact("mint", fund, 100 * WAD)
    weeth.transact("mint", fund, 50 * WAD)

    withdrawals = chain.deploy(contracts["withdraw_request_nft"])
    receipt = withdrawals.transact("requestWithdraw", 5 * WAD, 4_800_000_000_000_000_000, fund)
    request_id = int(receipt["logs"][0]["topics"][3], 16)

    eth_usd = chain.deploy(contracts["aggregator"], 8, "ETH / USD")
    eth_usd.transact("set_answer", 3_000 * 10**8, int(time.time()))

    vault = chain.deploy(contracts["vault4626"], usdt.address, "Savings USDT", "sUSDT", 6)
    vault.transact("mint", fund, 1_000 * USDT_UNIT)
    vault.transact("set_total_assets", 1_100 * USDT_UNIT)

    return World(
        chain=chain,
        fund=fund,
        nobody="0x000000000000000000000000000000000000dEaD",
        multicall=multicall,
        usdt=usdt,
        weth=weth,
        pool=pool,
        aave_oracle=aave_oracle,
        a_usdt=a_usdt,
        debt_usdt=debt_usdt,
        a_weth=a_weth,
        debt_weth=debt_weth,
        wsteth=wsteth,
        weeth=weeth,
        withdrawals=withdrawals,
        eth_usd=eth_usd,
        vault=vault,
        request_id=request_id,
    )
