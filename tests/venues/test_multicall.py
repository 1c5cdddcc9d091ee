"""Multicall3 `aggregate3`: pure encoding and decoding, then real reads on anvil.

On anvil every read goes through `RpcEndpoint` and the counting proxy, so "one eth_call" is
what the wire saw.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from eth_abi.abi import decode, encode
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from equity_daemon.venues.multicall import (
    MULTICALL3_ADDRESS,
    Block,
    Call,
    CallFailed,
    CallResult,
    MulticallError,
    aggregate3,
    block_calls,
    decode_aggregate3,
    decode_results,
    encode_aggregate3,
    interpret,
    revert_reason,
    selector,
    split,
)
from equity_daemon.venues.rpc import RpcEndpoint
from tests.chain import RAY, WAD
from tests.rpc_proxy import RpcProxy
from tests.venues.conftest import World
from tests.venues.test_contracts import RESERVE_DATA_LEGACY

USDT = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
WALLET = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

addresses = st.binary(min_size=20, max_size=20).map(lambda raw: "0x" + raw.hex())
calldata = st.binary(max_size=300)


def balance_call(token: str = USDT, wallet: str = WALLET) -> Call:
    return Call.of(token, "balanceOf(address)", wallet, returns=("uint256",))


def answer(*pairs: tuple[bool, bytes]) -> bytes:
    return encode(["(bool,bytes)[]"], [list(pairs)])


# -- pure: encoding ------------------------------------------------------------------------------


def test_a_call_encodes_its_signature_canonically() -> None:
    call = Call.of(USDT.lower(), "balanceOf(address)", WALLET, returns=["uint"])
    assert call.target == USDT  # checksummed
    assert call.data == bytes.fromhex("70a08231") + encode(["address"], [WALLET])
    assert call.returns == ("uint256",)
    assert call.label == "balanceOf"
    short = Call.of(USDT, "f(uint,(int,bytes)[])", 1, [(2, b"")], returns=["uint8"])
    assert short.data[:4] == selector("f(uint256,(int256,bytes)[])")


@pytest.mark.parametrize(
    ("signature", "args", "returns", "problem"),
    [
        ("balanceOf", (WALLET,), ("uint256",), "not a function signature"),
        ("balance Of(address)", (WALLET,), ("uint256",), "not a function signature"),
        ("balanceOf(addr)", (WALLET,), ("uint256",), "not a function signature"),
        ("balanceOf(address)[]", (WALLET,), ("uint256",), "not a function signature"),
        ("balanceOf(address)", (), ("uint256",), "takes 1 arguments, got 0"),
        ("balanceOf(address)", ("not an address",), ("uint256",), "cannot encode"),
        ("balanceOf(address)", (WALLET,), ("uint7",), "not an ABI type"),
        ("balanceOf(address)", (WALLET,), (), "must say what it returns"),
    ],
)
def test_a_bad_call_is_refused_when_built(
    signature: str, args: tuple[object, ...], returns: tuple[str, ...], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        Call.of(USDT, signature, *args, returns=returns)


def test_a_bad_target_is_refused() -> None:
    with pytest.raises(ValueError, match="0x1234"):
        balance_call(token="0x1234")


def test_aggregate3_calldata_is_the_mainnet_function() -> None:
    data = encode_aggregate3([balance_call(), Call.of(USDT, "decimals()", returns=["uint8"])])
    assert data[:4].hex() == "82ad56cb"
    assert data[:4] == keccak(text="aggregate3((address,bool,bytes)[])")[:4]
    (items,) = decode(["(address,bool,bytes)[]"], data[4:])
    assert [(target, allow, bytes(raw)) for target, allow, raw in items] == [
        (USDT.lower(), True, balance_call().data),
        (USDT.lower(), True, bytes.fromhex("313ce567")),
    ]


@given(st.lists(st.tuples(addresses, calldata), max_size=12))
def test_encoding_round_trips(calls: list[tuple[str, bytes]]) -> None:
    built = [Call(target, data, ("uint256",)) for target, data in calls]
    (items,) = decode(["(address,bool,bytes)[]"], encode_aggregate3(built)[4:])
    assert [(target, allow, bytes(data)) for target, allow, data in items] == [
        (target.lower(), True, data) for target, data in calls
    ]


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=200)), max_size=12))
def test_decoding_round_trips(pairs: list[tuple[bool, bytes]]) -> None:
    assert decode_aggregate3(answer(*pairs)) == pairs


@given(st.binary(max_size=400))
def test_any_bytes_decode_or_raise_multicall_error(data: bytes) -> None:
    with contextlib.suppress(MulticallError):
        decode_aggregate3(data)


@given(st.binary(max_size=200))
def test_any_return_data_reads_as_a_value_or_a_failure(data: bytes) -> None:
    call = Call(USDT, b"", ("uint8", "address", "string"))
    result = interpret(call, True, data)
    assert result.ok == bool(result.values)


# -- pure: decoding --------------------------------------------------------------------------------


def test_empty_answer_from_a_live_target_is_a_failure_not_zero() -> None:
    ok, no_code, short = decode_results(
        [balance_call()] * 3,
        answer((True, encode(["uint256"], [7])), (True, b""), (True, b"\x00" * 31)),
    )
    assert (ok.ok, ok.value) == (True, 7)
    assert (no_code.ok, no_code.values, no_code.error) == (
        False,
        (),
        "no code at target or empty return",
    )
    assert short.error == "answer of 31 bytes does not decode as (uint256)"
    with pytest.raises(CallFailed, match=f"balanceOf at {USDT}: no code at target"):
        _ = no_code.value


def test_an_answer_too_short_for_a_dynamic_type_is_a_failure() -> None:
    call = Call(USDT, b"", ("address[]",))
    pointer_past_the_end = encode(["uint256"], [64])
    assert interpret(call, True, pointer_past_the_end).error == (
        "answer of 32 bytes does not decode as (address[])"
    )
    assert interpret(call, True, encode(["address[]"], [[WALLET]])).value == (WALLET.lower(),)


def test_a_value_with_dirty_padding_is_a_failure() -> None:
    assert not interpret(Call(USDT, b"", ("bool",)), True, (2).to_bytes(32, "big")).ok
    assert not interpret(Call(USDT, b"", ("uint8",)), True, (256).to_bytes(32, "big")).ok


def test_several_return_values_come_as_a_tuple() -> None:
    data = encode(["uint80", "int256"], [3, -5])
    assert interpret(Call(USDT, b"", ("uint80", "int256")), True, data).value == (3, -5)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "reverted without a reason"),
        (selector("Error(string)") + encode(["string"], ["no\nway"]), "reverted: no?way"),
        (selector("Error(string)") + b"\x00" * 5, "reverted with a malformed reason"),
        (selector("Panic(uint256)") + encode(["uint256"], [0x11]), "panicked (code 0x11)"),
        (selector("Panic(uint256)"), "panicked"),
        (
            selector("RequestNotFinalized()"),
            "reverted with error 0x" + selector("RequestNotFinalized()").hex(),
        ),
    ],
)
def test_revert_reasons(data: bytes, reason: str) -> None:
    assert revert_reason(data) == reason
    assert interpret(balance_call(), False, data).error == reason


def test_a_long_revert_reason_is_cut() -> None:
    data = selector("Error(string)") + encode(["string"], ["x" * 1000])
    assert revert_reason(data) == "reverted: " + "x" * 160


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "answered nothing: no Multicall3 at that address"),
        (b"\x01" * 40, "does not decode"),
        (answer((True, b"")), "answered 1 results for 2 calls"),
    ],
)
def test_an_unusable_aggregate_answer_raises(data: bytes, problem: str) -> None:
    with pytest.raises(MulticallError, match=problem):
        decode_results([balance_call(), balance_call()], data)


@given(st.lists(st.binary(max_size=8), max_size=30), st.integers(min_value=1, max_value=8))
def test_split_keeps_order_and_bounds(items: list[bytes], max_calls: int) -> None:
    calls = [Call(USDT, data, ("uint256",)) for data in items]
    chunks = split(calls, max_calls)
    assert [call for chunk in chunks for call in chunk] == calls
    assert all(0 < len(chunk) <= max_calls for chunk in chunks) or chunks == [()]
    assert len(chunks) == max(1, -(-len(calls) // max_calls))


def test_split_needs_room() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        split([balance_call()], 0)


# -- aggregate3 against a scripted caller ----------------------------------------------------------


class Scripted:
    """Answers each eth_call with the next scripted block header and empty results."""

    def __init__(self, *blocks: tuple[int, int, bytes]) -> None:
        self.blocks = list(blocks)
        self.sent: list[tuple[str, int]] = []

    async def eth_call(self, to: str, data: bytes, block: int) -> bytes:
        self.sent.append((to, block))
        number, timestamp, parent = self.blocks.pop(0)
        (items,) = decode(["(address,bool,bytes)[]"], data[4:])
        proof = [
            (True, encode(["uint256"], [number])),
            (True, encode(["uint256"], [timestamp])),
            (True, encode(["bytes32"], [parent])),
        ]
        rest = [(True, encode(["uint256"], [1]))] * (len(items) - 3)
        return answer(*proof, *rest)


@pytest.mark.anyio
async def test_an_answer_from_another_block_is_refused() -> None:
    with pytest.raises(MulticallError, match="asked for block 100, block 99 answered"):
        await aggregate3(Scripted((99, 1, b"\x01" * 32)), [balance_call()], block=100)


@pytest.mark.anyio
async def test_chunks_must_answer_from_the_same_block() -> None:
    caller = Scripted((100, 1, b"\x01" * 32), (100, 1, b"\x02" * 32))
    with pytest.raises(MulticallError, match="block 100 changed between two aggregate3 calls"):
        await aggregate3(caller, [balance_call()] * 2, block=100, max_calls=4)


@pytest.mark.anyio
async def test_no_calls_still_reads_the_block() -> None:
    caller = Scripted((100, 1_700_000_000, b"\x01" * 32))
    result = await aggregate3(caller, [], block=100)
    assert result.results == ()
    assert result.block == Block(100, datetime.fromtimestamp(1_700_000_000, UTC), b"\x01" * 32)
    assert caller.sent == [(MULTICALL3_ADDRESS, 100)]


@pytest.mark.anyio
async def test_max_calls_must_leave_room_for_one_call() -> None:
    with pytest.raises(ValueError, match="above 3"):
        await aggregate3(Scripted(), [balance_call()], block=1, max_calls=3)


@pytest.mark.anyio
async def test_failed_block_calls_make_the_answer_unusable() -> None:
    class NoMulticall:
        async def eth_call(self, to: str, data: bytes, block: int) -> bytes:
            return answer(*[(True, b"")] * 4)

    with pytest.raises(MulticallError, match="the block calls failed: getBlockNumber"):
        await aggregate3(NoMulticall(), [balance_call()], block=1)


# -- against anvil ---------------------------------------------------------------------------------


@pytest.fixture
async def endpoint(proxy: RpcProxy) -> AsyncIterator[RpcEndpoint]:
    async with RpcEndpoint(SecretStr(proxy.url), venue="chain", label="rpc endpoint 1 of 1") as rpc:
        yield rpc


def book_calls(world: World) -> list[Call]:
    """Everything a chain venue reads for the world's book."""
    fund = world.fund
    return [
        Call.of(world.usdt.address, "balanceOf(address)", fund, returns=["uint256"]),
        Call.of(world.usdt.address, "decimals()", returns=["uint8"]),
        Call.of(world.multicall.address, "getEthBalance(address)", fund, returns=["uint256"]),
        Call.of(world.wsteth.address, "balanceOf(address)", fund, returns=["uint256"]),
        Call.of(world.wsteth.address, "stEthPerToken()", returns=["uint256"]),
        Call.of(world.weeth.address, "balanceOf(address)", fund, returns=["uint256"]),
        Call.of(world.weeth.address, "getRate()", returns=["uint256"]),
        Call.of(world.a_weth.address, "balanceOf(address)", fund, returns=["uint256"]),
        Call.of(world.debt_weth.address, "balanceOf(address)", fund, returns=["uint256"]),
        Call.of(world.pool.address, "getUserAccountData(address)", fund, returns=["uint256"] * 6),
        Call.of(world.pool.address, "getReservesList()", returns=["address[]"]),
        Call.of(
            world.pool.address,
            "getReserveData(address)",
            world.weth.address,
            returns=[RESERVE_DATA_LEGACY],
        ),
        Call.of(
            world.withdrawals.address,
            "getRequest(uint256)",
            world.request_id,
            returns=["(uint96,uint96,bool,uint32)"],
        ),
        Call.of(
            world.withdrawals.address, "ownerOf(uint256)", world.request_id, returns=["address"]
        ),
        Call.of(
            world.eth_usd.address,
            "latestRoundData()",
            returns=["uint80", "int256", "uint256", "uint256", "uint80"],
        ),
        Call.of(world.vault.address, "convertToAssets(uint256)", 10**6, returns=["uint256"]),
    ]


def direct_reads(world: World, block: int) -> list[object]:
    """The same reads as `book_calls`, one eth_call each, straight to anvil."""
    fund = world.fund
    return [
        world.usdt.call("balanceOf", fund, block=block),
        world.usdt.call("decimals", block=block),
        world.multicall.call("getEthBalance", fund, block=block),
        world.wsteth.call("balanceOf", fund, block=block),
        world.wsteth.call("stEthPerToken", block=block),
        world.weeth.call("balanceOf", fund, block=block),
        world.weeth.call("getRate", block=block),
        world.a_weth.call("balanceOf", fund, block=block),
        world.debt_weth.call("balanceOf", fund, block=block),
        world.pool.call("getUserAccountData", fund, block=block),
        world.pool.call("getReservesList", block=block),
        world.pool.call("getReserveData", world.weth.address, block=block),
        world.withdrawals.call("getRequest", world.request_id, block=block),
        world.withdrawals.call("ownerOf", world.request_id, block=block),
        world.eth_usd.call("latestRoundData", block=block),
        world.vault.call("convertToAssets", 10**6, block=block),
    ]


@pytest.mark.anyio
async def test_a_book_at_a_pinned_block_in_one_eth_call(
    world: World, proxy: RpcProxy, endpoint: RpcEndpoint
) -> None:
    chain = world.chain
    pinned = chain.block_number()
    before = direct_reads(world, pinned)
    # the chain moves on: rates, indexes and balances change in later blocks
    world.wsteth.transact("set_st_eth_per_token", 1_250_000_000_000_000_000)
    world.pool.transact("set_indexes", world.weth.address, RAY * 2, RAY * 2)
    world.usdt.transact("mint", world.fund, 1)
    chain.mine(3)
    proxy.reset()

    result = await aggregate3(endpoint, book_calls(world), block=pinned)

    assert proxy.methods == ["eth_call"]
    assert [r.value for r in result.results] == before
    assert result.results[4].value == 1_210_000_000_000_000_000
    assert result.results[7].value == 412 * WAD
    reserve = result.results[11].value
    assert (reserve[8], reserve[10]) == (
        world.a_weth.address.lower(),
        world.debt_weth.address.lower(),
    )
    assert result.block.number == pinned


@pytest.mark.anyio
async def test_the_answer_proves_the_block_it_was_read_at(
    world: World, endpoint: RpcEndpoint
) -> None:
    chain = world.chain
    chain.mine(2)
    pinned = chain.block_number() - 1
    header = chain.block(pinned)

    result = await aggregate3(endpoint, [], block=pinned)

    assert result.block == Block(
        number=pinned,
        timestamp=datetime.fromtimestamp(int(header["timestamp"], 16), UTC),
        parent_hash=bytes.fromhex(header["parentHash"][2:]),
    )


@pytest.mark.anyio
async def test_failing_calls_fail_alone(
    world: World, proxy: RpcProxy, endpoint: RpcEndpoint
) -> None:
    nft = world.withdrawals.address
    calls = [
        balance_call(world.usdt.address, world.fund),
        Call.of(nft, "ownerOf(uint256)", 999, returns=["address"]),
        balance_call(world.nobody, world.fund),
        Call.of(nft, "getClaimableAmount(uint256)", world.request_id, returns=["uint256"]),
        Call.of(world.usdt.address, "decimals()", returns=["uint256", "uint256"]),
        Call.of(world.wsteth.address, "stEthPerToken()", returns=["uint256"]),
    ]
    proxy.reset()

    results = (await aggregate3(endpoint, calls, block=world.chain.block_number())).results

    assert proxy.methods == ["eth_call"]
    assert [r.error for r in results] == [
        None,
        "reverted: ERC721: invalid token ID",
        "no code at target or empty return",
        "reverted: RequestNotFinalized",
        "answer of 32 bytes does not decode as (uint256,uint256)",
        None,
    ]
    assert (results[0].value, results[5].value) == (1_250_000 * 10**6, 1_210_000_000_000_000_000)


@pytest.mark.anyio
async def test_a_contract_deployed_after_the_pinned_block_has_no_code_there(
    world: World, endpoint: RpcEndpoint
) -> None:
    pinned = world.chain.block_number()
    token = world.chain.deploy(world.usdt.artifact, "Late", "LATE", 18)
    token.transact("mint", world.fund, 5)
    call = balance_call(token.address, world.fund)

    (then,) = (await aggregate3(endpoint, [call], block=pinned)).results
    (now,) = (await aggregate3(endpoint, [call], block=world.chain.block_number())).results

    assert then.error == "no code at target or empty return"
    assert now.value == 5


@pytest.mark.anyio
async def test_without_multicall3_at_the_address_nothing_is_believed(
    world: World, endpoint: RpcEndpoint
) -> None:
    with pytest.raises(MulticallError, match="answered nothing"):
        await aggregate3(
            endpoint,
            [balance_call(world.usdt.address, world.fund)],
            block=world.chain.block_number(),
            multicall=world.nobody,
        )


@pytest.mark.anyio
async def test_past_max_calls_the_calls_are_split_and_all_prove_one_block(
    world: World, proxy: RpcProxy, endpoint: RpcEndpoint
) -> None:
    pinned = world.chain.block_number()
    expected = direct_reads(world, pinned)
    proxy.reset()

    result = await aggregate3(endpoint, book_calls(world), block=pinned, max_calls=8)

    assert proxy.methods == ["eth_call"] * 4  # 16 calls, 5 per aggregate3 beside the block calls
    assert [r.value for r in result.results] == expected
    assert result.block.number == pinned


@pytest.mark.anyio
async def test_the_test_multicall_bounds_are_the_default(
    world: World, endpoint: RpcEndpoint
) -> None:
    """64 calls per aggregate3 is the module's default (our Vyper Multicall3 takes up to 1,024)."""
    calls = [balance_call(world.usdt.address, world.fund)] * 200
    result = await aggregate3(endpoint, calls, block=world.chain.block_number())
    assert {r.value for r in result.results} == {1_250_000 * 10**6}


@pytest.mark.anyio
async def test_snapshot_and_revert(world: World, endpoint: RpcEndpoint) -> None:
    chain, nft, fund = world.chain, world.withdrawals, world.fund
    calls = [
        Call.of(world.weeth.address, "getRate()", returns=["uint256"]),
        Call.of(nft.address, "ownerOf(uint256)", world.request_id, returns=["address"]),
        Call.of(
            nft.address,
            "getRequest(uint256)",
            world.request_id,
            returns=["(uint96,uint96,bool,uint32)"],
        ),
    ]
    start = chain.block_number()
    snapshot = chain.snapshot()
    world.weeth.transact("set_rate", 1_100_000_000_000_000_000)
    nft.transact("finalizeRequests", world.request_id)
    nft.transact("claimWithdraw", world.request_id, sender=fund)

    after = await aggregate3(endpoint, calls, block=chain.block_number())
    assert after.results[0].value == 1_100_000_000_000_000_000
    assert after.results[1].error == "reverted: ERC721: invalid token ID"
    assert after.results[2].value == (0, 0, False, 0)

    chain.revert(snapshot)
    assert chain.block_number() == start
    restored = await aggregate3(endpoint, calls, block=start)
    assert [r.value for r in restored.results] == [
        1_060_000_000_000_000_000,
        fund.lower(),
        (5 * WAD, 4_800_000_000_000_000_000, True, 0),
    ]
    assert restored.block.number == start


def test_call_result_of_several_values_without_error() -> None:
    result = CallResult(balance_call(), values=(1, 2))
    assert result.ok
    assert result.value == (1, 2)


def test_block_calls_target_the_multicall() -> None:
    assert [c.label for c in block_calls(USDT)] == [
        "getBlockNumber",
        "getCurrentBlockTimestamp",
        "getLastBlockHash",
    ]
    assert {c.target for c in block_calls(USDT)} == {USDT}
