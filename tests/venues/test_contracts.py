"""The test contracts speak the mainnet ABIs, and behave as the protocols they stand for.

The table below is written from the mainnet contracts' interfaces (Aave v3 `IPool`,
`IPoolAddressesProvider`, `IAaveOracle`, Maker's `DSToken`, Lido `WstETH`, EtherFi `WeETH`,
`WithdrawRequestNFT`, `WeETHWithdrawAdapter` and `PriorityWithdrawalQueue`, Chainlink
`AggregatorV3Interface`, ERC-20, ERC-721, ERC-4626, Multicall3), not from our sources: a
function the daemon reads must have the same signature (so the same selector) and the same
return types (so the same encoding), or the client code tested here would not read mainnet
unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import decode, encode
from eth_utils.abi import abi_to_signature, get_abi_output_types
from eth_utils.crypto import keccak

from tests.chain import RAY, WAD, Artifact, RpcFailed, compile_contracts
from tests.venues.conftest import World

ERC20 = {
    "balanceOf(address)": "uint256",
    "decimals()": "uint8",
    "symbol()": "string",
    "name()": "string",
    "totalSupply()": "uint256",
    "transfer(address,uint256)": "bool",
    "approve(address,uint256)": "bool",
    "transferFrom(address,address,uint256)": "bool",
    "allowance(address,address)": "uint256",
}
SCALED_TOKEN = {
    "balanceOf(address)": "uint256",
    "scaledBalanceOf(address)": "uint256",
    "scaledTotalSupply()": "uint256",
    "getScaledUserBalanceAndSupply(address)": "uint256,uint256",
    "totalSupply()": "uint256",
    "UNDERLYING_ASSET_ADDRESS()": "address",
    "POOL()": "address",
    "decimals()": "uint8",
}
RESERVE_DATA_LEGACY = (
    "((uint256),uint128,uint128,uint128,uint128,uint128,uint40,uint16,"
    "address,address,address,address,uint128,uint128,uint128)"
)
# PriorityWithdrawalQueue's WithdrawRequest: user, amountOfEEth, shareOfEEth, amountWithFee,
# nonce, creationTime
QUEUED = "(address,uint96,uint96,uint96,uint32,uint32)"
MAINNET: dict[str, dict[str, str]] = {
    "erc20": ERC20,
    "ds_token": {
        "symbol()": "bytes32",
        "name()": "bytes32",
        "decimals()": "uint256",
        "balanceOf(address)": "uint256",
        "totalSupply()": "uint256",
    },
    "multicall3": {
        "aggregate3((address,bool,bytes)[])": "(bool,bytes)[]",
        "getBlockNumber()": "uint256",
        "getBlockHash(uint256)": "bytes32",
        "getLastBlockHash()": "bytes32",
        "getCurrentBlockTimestamp()": "uint256",
        "getCurrentBlockGasLimit()": "uint256",
        "getCurrentBlockCoinbase()": "address",
        "getBasefee()": "uint256",
        "getChainId()": "uint256",
        "getEthBalance(address)": "uint256",
    },
    "aave_pool": {
        "getUserAccountData(address)": "uint256,uint256,uint256,uint256,uint256,uint256",
        "getReservesList()": "address[]",
        "getReserveData(address)": RESERVE_DATA_LEGACY,
        "getReserveNormalizedIncome(address)": "uint256",
        "getReserveNormalizedVariableDebt(address)": "uint256",
        "ADDRESSES_PROVIDER()": "address",
        "getUserConfiguration(address)": "(uint256)",
        "setUserUseReserveAsCollateral(address,bool)": "",
    },
    "aave_addresses_provider": {"getPriceOracle()": "address"},
    "aave_oracle": {
        "getAssetsPrices(address[])": "uint256[]",
        "getAssetPrice(address)": "uint256",
        "BASE_CURRENCY_UNIT()": "uint256",
    },
    "aave_atoken": SCALED_TOKEN,
    "aave_debt_token": SCALED_TOKEN,
    "wsteth": {
        **ERC20,
        "stEthPerToken()": "uint256",
        "tokensPerStEth()": "uint256",
        "getStETHByWstETH(uint256)": "uint256",
        "getWstETHByStETH(uint256)": "uint256",
    },
    "weeth": {
        **ERC20,
        "getRate()": "uint256",
        "getEETHByWeETH(uint256)": "uint256",
        "getWeETHByeETH(uint256)": "uint256",
    },
    "withdraw_request_nft": {
        "getRequest(uint256)": "(uint96,uint96,bool,uint32)",
        "isFinalized(uint256)": "bool",
        "isValid(uint256)": "bool",
        "getClaimableAmount(uint256)": "uint256",
        "ownerOf(uint256)": "address",
        "balanceOf(address)": "uint256",
        "nextRequestId()": "uint32",
        "lastFinalizedRequestId()": "uint32",
        "requestWithdraw(uint96,uint96,address)": "uint256",
        "finalizeRequests(uint256)": "",
        "invalidateRequest(uint256)": "",
        "claimWithdraw(uint256)": "",
    },
    "priority_withdrawal_queue": {
        "requestWithdraw(uint96,uint96)": "bytes32",
        "requestExists(bytes32)": "bool",
        "isFinalized(bytes32)": "bool",
        "nonce()": "uint32",
        f"getRequestId({QUEUED})": "bytes32",
        f"fulfillRequests({QUEUED}[])": "",
        f"claimWithdraw({QUEUED})": "",
        f"cancelWithdraw({QUEUED})": "bytes32",
    },
    "weeth_withdraw_adapter": {
        "requestWithdraw(uint256,address)": "uint256",
        "getEETHByWeETH(uint256)": "uint256",
    },
    "aggregator": {
        "latestRoundData()": "uint80,int256,uint256,uint256,uint80",
        "decimals()": "uint8",
        "description()": "string",
        "version()": "uint256",
        "latestAnswer()": "int256",
        "latestTimestamp()": "uint256",
        "latestRound()": "uint256",
    },
    "vault4626": {
        **ERC20,
        "asset()": "address",
        "totalAssets()": "uint256",
        "convertToAssets(uint256)": "uint256",
        "convertToShares(uint256)": "uint256",
    },
}
# Well-known selectors: a typo in the table above cannot pass these.
SELECTORS = {
    "balanceOf(address)": "70a08231",
    "decimals()": "313ce567",
    "aggregate3((address,bool,bytes)[])": "82ad56cb",
    "getBlockNumber()": "42cbb15c",
    "getCurrentBlockTimestamp()": "0f28c97d",
    "getLastBlockHash()": "27e86d6e",
    "getEthBalance(address)": "4d2301cc",
    "latestRoundData()": "feaf968c",
    "getRate()": "679aefce",
    "convertToAssets(uint256)": "07a2d13a",
    "asset()": "38d52e0f",
    "ownerOf(uint256)": "6352211e",
    "getUserAccountData(address)": "bf92857c",
    "getReserveData(address)": "35ea6a75",
    "getAssetsPrices(address[])": "9d23d9f2",
    "getPriceOracle()": "fca513a8",
    "ADDRESSES_PROVIDER()": "0542975c",
    "getUserConfiguration(address)": "4417a583",
    "setUserUseReserveAsCollateral(address,bool)": "5a3b74b9",
}
EVENTS: dict[str, dict[str, tuple[bool, ...]]] = {
    "erc20": {"Transfer(address,address,uint256)": (True, True, False)},
    "withdraw_request_nft": {
        "Transfer(address,address,uint256)": (True, True, True),
        "WithdrawRequestCreated(uint32,uint256,uint256,address)": (True, False, False, False),
        "WithdrawRequestInvalidated(uint32)": (True,),
    },
    "priority_withdrawal_queue": {
        "WithdrawRequestCreated(bytes32,address,uint96,uint96,uint96,uint32,uint32)": (
            True,
            True,
            False,
            False,
            False,
            False,
            False,
        ),
    },
}
TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def functions(artifact: Artifact) -> dict[str, str]:
    return {
        abi_to_signature(entry): ",".join(get_abi_output_types(entry))  # type: ignore[arg-type]
        for entry in artifact.abi
        if entry.get("type") == "function"
    }


@pytest.mark.parametrize("name", sorted(MAINNET))
def test_every_mainnet_function_has_its_signature_and_return_types(
    contracts: dict[str, Artifact], name: str
) -> None:
    ours = functions(contracts[name])
    expected = MAINNET[name]
    assert {signature: ours.get(signature) for signature in expected} == expected


@pytest.mark.parametrize(("signature", "selector"), sorted(SELECTORS.items()))
def test_the_table_holds_the_well_known_selectors(signature: str, selector: str) -> None:
    assert keccak(text=signature)[:4].hex() == selector
    assert any(signature in table for table in MAINNET.values())


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_events_have_their_mainnet_signature_and_indexed_fields(
    contracts: dict[str, Artifact], name: str
) -> None:
    ours = {
        abi_to_signature(entry): tuple(field["indexed"] for field in entry["inputs"])  # type: ignore[arg-type]
        for entry in contracts[name].abi
        if entry.get("type") == "event"
    }
    assert {signature: ours.get(signature) for signature in EVENTS[name]} == EVENTS[name]


def test_compiled_once_then_read_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = compile_contracts(tmp_path)
    monkeypatch.setattr("subprocess.run", _no_compiler)
    assert compile_contracts(tmp_path) == first
    assert len(list(tmp_path.glob("*.json"))) == 1


def _no_compiler(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the compiler ran although the cache holds the build")


def test_atoken_and_debt_token_rebase_with_the_pool_indexes(world: World) -> None:
    fund = world.fund
    assert world.a_weth.call("scaledBalanceOf", fund) == 400 * WAD
    assert world.a_weth.call("balanceOf", fund) == 412 * WAD  # 400 × 1.03
    assert world.debt_weth.call("balanceOf", fund) == 267_500_000_000_000_000_000  # 250 × 1.07

    world.pool.transact("set_indexes", world.weth.address, RAY + RAY // 3, RAY + RAY // 3)
    third = 400 * WAD // 3
    assert world.a_weth.call("balanceOf", fund) == 400 * WAD + third  # rounded down
    assert world.debt_weth.call("balanceOf", fund) == 250 * WAD + 250 * WAD // 3 + 1  # up
    assert world.a_weth.call("scaledBalanceOf", fund) == 400 * WAD
    assert world.a_weth.call("UNDERLYING_ASSET_ADDRESS") == world.weth.address.lower()


def test_reserve_data_puts_the_token_addresses_where_aave_does(world: World) -> None:
    data = world.pool.call("getReserveData", world.weth.address)
    assert data[1] == RAY * 103 // 100  # liquidityIndex
    assert data[3] == RAY * 107 // 100  # variableBorrowIndex
    assert data[7] == 1  # id: the second reserve listed
    assert (data[8], data[9], data[10]) == (
        world.a_weth.address.lower(),
        "0x" + "00" * 20,  # stableDebtTokenAddress, deprecated
        world.debt_weth.address.lower(),
    )
    assert world.pool.call("getReservesList") == (
        world.usdt.address.lower(),
        world.weth.address.lower(),
    )
    assert world.pool.call("getReserveData", world.nobody)[8] == "0x" + "00" * 20


def test_the_user_configuration_has_a_collateral_bit_per_reserve_id(world: World) -> None:
    other = world.chain.accounts[6]
    assert world.pool.call("getUserConfiguration", other) == (0,)
    world.pool.transact("setUserUseReserveAsCollateral", world.weth.address, True, sender=other)
    assert world.pool.call("getUserConfiguration", other) == (1 << 3,)  # WETH: id 1, bit 2*1+1
    world.pool.transact("setUserUseReserveAsCollateral", world.usdt.address, True, sender=other)
    world.pool.transact("setUserUseReserveAsCollateral", world.weth.address, False, sender=other)
    assert world.pool.call("getUserConfiguration", other) == (1 << 1,)  # USDT: id 0


def test_user_account_data_has_an_infinite_health_factor_without_debt(world: World) -> None:
    assert world.pool.call("getUserAccountData", world.fund)[5] == 127 * WAD // 100
    assert world.pool.call("getUserAccountData", world.nobody) == (0, 0, 0, 0, 0, 2**256 - 1)


def test_withdraw_request_lifecycle(world: World) -> None:
    nft, fund = world.withdrawals, world.fund
    receipt = nft.transact("requestWithdraw", 2 * WAD, 19 * WAD // 10, fund)
    transfer, created = receipt["logs"]
    new_id = world.request_id + 1
    assert transfer["topics"] == [
        "0x" + TRANSFER_TOPIC,
        "0x" + "00" * 32,
        "0x" + bytes(12).hex() + fund[2:].lower(),
        "0x" + new_id.to_bytes(32, "big").hex(),
    ]
    created_topic = keccak(text="WithdrawRequestCreated(uint32,uint256,uint256,address)")
    assert created["topics"] == ["0x" + created_topic.hex(), "0x" + new_id.to_bytes(32).hex()]
    data = bytes.fromhex(created["data"][2:])
    assert decode(["uint256", "uint256", "address"], data) == (
        2 * WAD,
        19 * WAD // 10,
        fund.lower(),
    )
    assert nft.call("nextRequestId") == new_id + 1
    assert nft.call("getRequest", new_id) == (2 * WAD, 19 * WAD // 10, True, 0)
    assert nft.call("isFinalized", new_id) is False
    with pytest.raises(RpcFailed, match="RequestNotFinalized"):
        nft.call("getClaimableAmount", new_id)

    nft.transact("set_amount_per_share", 1_040_000_000_000_000_000)
    nft.transact("finalizeRequests", new_id)
    nft.transact("set_amount_per_share", WAD)  # a later rebase does not move a finalized payout
    assert nft.call("isFinalized", new_id) is True
    assert nft.call("getClaimableAmount", new_id) == 1_976_000_000_000_000_000  # 1.9 × 1.04
    assert nft.call("getClaimableAmount", world.request_id) == 4_992_000_000_000_000_000

    receipt = nft.transact("claimWithdraw", new_id, sender=fund)
    (burn,) = receipt["logs"]
    assert burn["topics"][2] == "0x" + "00" * 32
    with pytest.raises(RpcFailed, match="invalid token ID"):
        nft.call("ownerOf", new_id)
    assert nft.call("getRequest", new_id) == (0, 0, False, 0)
    assert nft.call("balanceOf", fund) == 1


def test_an_unfinalized_request_can_be_invalidated(world: World) -> None:
    nft = world.withdrawals
    receipt = nft.transact("requestWithdraw", WAD, WAD, world.fund)
    new_id = world.request_id + 1
    receipt = nft.transact("invalidateRequest", new_id)
    assert (
        receipt["logs"][0]["topics"][0]
        == "0x" + keccak(text="WithdrawRequestInvalidated(uint32)").hex()
    )
    assert nft.call("isValid", new_id) is False
    assert nft.call("getRequest", new_id) == (WAD, WAD, False, 0)
    with pytest.raises(RpcFailed, match="RequestNotFound"):
        nft.call("isValid", 999)


def test_rates_feeds_and_vaults(world: World) -> None:
    assert world.wsteth.call("stEthPerToken") == 1_210_000_000_000_000_000
    assert world.wsteth.call("getStETHByWstETH", 2 * WAD) == 2_420_000_000_000_000_000
    assert world.weeth.call("getRate") == 1_060_000_000_000_000_000
    assert world.weeth.call("getEETHByWeETH", 10 * WAD) == 10_600_000_000_000_000_000
    world.wsteth.transact("set_st_eth_per_token", 1_220_000_000_000_000_000)
    assert world.wsteth.call("stEthPerToken") == 1_220_000_000_000_000_000

    round_id, answer, _, updated_at, answered_in = world.eth_usd.call("latestRoundData")
    assert (round_id, answer, answered_in, world.eth_usd.call("decimals")) == (
        1,
        3_000 * 10**8,
        1,
        8,
    )
    world.eth_usd.transact("set_answer", -1, updated_at + 60)
    assert world.eth_usd.call("latestRoundData") == (2, -1, updated_at + 60, updated_at + 60, 2)

    assert world.vault.call("asset") == world.usdt.address.lower()
    assert world.vault.call("convertToAssets", 10 * 10**6) == 11 * 10**6
    assert world.vault.call("balanceOf", world.fund) == 1_000 * 10**6


def test_a_priority_request_id_is_the_hash_of_its_abi_encoded_struct(world: World) -> None:
    queue = world.chain.deploy(compile_contracts()["priority_withdrawal_queue"])
    receipt = queue.transact("requestWithdraw", 3 * WAD, 3 * WAD - 10**15, sender=world.fund)
    (entry,) = receipt["logs"]
    request_id = bytes.fromhex(entry["topics"][1].removeprefix("0x"))
    values = decode(
        ["uint96", "uint96", "uint96", "uint32", "uint32"],
        bytes.fromhex(entry["data"].removeprefix("0x")),
    )
    request = (world.fund, *values)
    assert request_id == keccak(encode([QUEUED], [request]))  # Solidity's abi.encode(request)
    assert queue.call("getRequestId", request) == request_id
    assert (queue.call("requestExists", request_id), queue.call("isFinalized", request_id)) == (
        True,
        False,
    )
    queue.transact("fulfillRequests", [request])
    assert queue.call("isFinalized", request_id)
    queue.transact("claimWithdraw", request)
    assert not queue.call("requestExists", request_id)
    assert queue.call("nonce") == 2
