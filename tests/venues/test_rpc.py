"""web3 set up for a daemon: one call is one request, nothing retried, short timeouts,
kept-alive connections, and no RPC URL in any error or log line.

Every test talks to anvil through the counting proxy, whose URL carries a fake API key.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr
from web3 import AsyncHTTPProvider
from web3.exceptions import BadResponseFormat, ContractLogicError, Web3Exception, Web3RPCError

from equity_daemon.errors import VenueDataError, VenueError, VenueUnavailable
from equity_daemon.venues.rpc import (
    RpcEndpoint,
    connect_web3,
    describe,
    open_session,
    scrub,
)
from tests.chain import free_port
from tests.rpc_proxy import Mode, RpcProxy
from tests.venues.conftest import World

pytestmark = pytest.mark.anyio

LABEL = "rpc endpoint 2 of 3"


@pytest.fixture
async def endpoint(proxy: RpcProxy) -> AsyncIterator[RpcEndpoint]:
    async with RpcEndpoint(SecretStr(proxy.url), venue="chain", label=LABEL, timeout=2) as rpc:
        yield rpc


def balance_of(world: World) -> bytes:
    return world.usdt.calldata("balanceOf", world.fund)


async def test_one_eth_call_is_one_request(
    world: World, proxy: RpcProxy, endpoint: RpcEndpoint
) -> None:
    block = world.chain.block_number()
    proxy.reset()

    answer = await endpoint.eth_call(world.usdt.address, balance_of(world), block)

    assert int.from_bytes(answer, "big") == 1_250_000 * 10**6
    assert proxy.methods == ["eth_call"]
    raw = await endpoint.web3.eth.call(
        {"to": world.usdt.address, "data": balance_of(world)}, block_identifier=block
    )
    assert bytes(raw) == answer
    assert proxy.methods == ["eth_call", "eth_call"]  # no eth_chainId from a middleware


async def test_head_and_chain_id_are_one_request_each(
    world: World, proxy: RpcProxy, endpoint: RpcEndpoint
) -> None:
    proxy.reset()
    assert await endpoint.block_number() == world.chain.block_number()
    assert await endpoint.chain_id() == 31337
    assert proxy.methods == ["eth_blockNumber", "eth_chainId"]


async def test_requests_share_one_kept_alive_connection(
    world: World, proxy: RpcProxy, endpoint: RpcEndpoint
) -> None:
    block = world.chain.block_number()
    for _ in range(5):
        await endpoint.eth_call(world.usdt.address, balance_of(world), block)
    assert proxy.requests == 5
    assert proxy.connections == 1


async def test_the_provider_is_set_up_for_a_daemon(proxy: RpcProxy) -> None:
    async with open_session(3) as session:
        web3 = await connect_web3(SecretStr(proxy.url), session, request_timeout=3)
        provider = web3.provider
        assert isinstance(provider, AsyncHTTPProvider)
        assert provider.exception_retry_configuration is None
        assert provider.global_ccip_read_enabled is False
        assert provider.get_request_kwargs()["timeout"] == aiohttp.ClientTimeout(total=3)
        assert list(web3.middleware_onion) == []
        assert await provider.cache_async_session(session) is session  # ours, kept alive


async def test_an_http_error_is_not_retried(
    world: World, proxy: RpcProxy, endpoint: RpcEndpoint
) -> None:
    proxy.mode = "http_error"
    with pytest.raises(VenueUnavailable) as raised:
        await endpoint.eth_call(world.usdt.address, balance_of(world), 1)
    assert str(raised.value) == f"chain: {LABEL}: rate limited (HTTP 429)"
    assert proxy.requests == 1

    proxy.status = 503
    with pytest.raises(VenueUnavailable, match=f"{LABEL}: HTTP 503$"):
        await endpoint.block_number()
    assert proxy.requests == 2


async def test_a_stalled_endpoint_times_out_quickly_and_once(proxy: RpcProxy) -> None:
    proxy.mode = "stall"
    started = time.monotonic()
    async with RpcEndpoint(SecretStr(proxy.url), venue="chain", label=LABEL, timeout=0.3) as rpc:
        with pytest.raises(VenueUnavailable) as raised:
            await rpc.block_number()
    assert time.monotonic() - started < 2
    assert raised.value.reason == f"{LABEL}: timeout"
    assert proxy.requests == 1


async def test_a_block_the_node_does_not_have_is_unavailable(
    world: World, endpoint: RpcEndpoint
) -> None:
    future = world.chain.block_number() + 1000
    with pytest.raises(VenueUnavailable, match=f"chain: {LABEL}: JSON-RPC error -?[0-9]+: "):
        await endpoint.eth_call(world.usdt.address, balance_of(world), future)


async def test_a_reverting_call_is_a_data_error(world: World, endpoint: RpcEndpoint) -> None:
    calldata = world.withdrawals.calldata("ownerOf", 999)
    with pytest.raises(VenueDataError) as raised:
        await endpoint.eth_call(world.withdrawals.address, calldata, world.chain.block_number())
    assert raised.value.reason == f"{LABEL}: call reverted: ERC721: invalid token ID"


def every_text(exc: BaseException) -> str:
    """Everything an operator could see of `exc`: message, repr and the formatted traceback."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


@pytest.mark.parametrize(
    ("mode", "kind", "reason"),
    [
        ("stall", VenueUnavailable, "timeout"),
        ("http_error", VenueUnavailable, "rate limited (HTTP 429)"),
        ("hang_up", VenueUnavailable, "server disconnected"),
        ("garbage", VenueDataError, "answer is not JSON-RPC"),
        ("rpc_error", VenueUnavailable, "JSON-RPC error -32001: project *** over capacity at ***"),
    ],
)
async def test_no_failure_shows_the_url(
    world: World,
    proxy: RpcProxy,
    caplog: pytest.LogCaptureFixture,
    mode: Mode,
    kind: type[VenueError],
    reason: str,
) -> None:
    proxy.mode = mode
    caplog.set_level(logging.DEBUG)
    async with RpcEndpoint(SecretStr(proxy.url), venue="chain", label=LABEL, timeout=0.5) as rpc:
        with pytest.raises(VenueError) as raised:
            await rpc.eth_call(world.usdt.address, balance_of(world), 1)
        await rpc.web3.provider.disconnect()  # web3 logs the URL here, unless silenced

    assert type(raised.value) is kind
    assert raised.value.reason == f"{LABEL}: {reason}"
    assert proxy.requests == 1  # never retried
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    seen = every_text(raised.value) + caplog.text
    assert proxy.key not in seen
    assert proxy.url.split("/v3/")[0] not in seen


async def test_a_refused_connection_shows_no_url(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"http://127.0.0.1:{free_port()}/v3/k3ySeCrEt0123456789"
    async with RpcEndpoint(SecretStr(url), venue="chain", label=LABEL) as rpc:
        with pytest.raises(VenueUnavailable) as raised:
            await rpc.block_number()
    assert raised.value.reason == f"{LABEL}: cannot connect"
    assert "k3ySeCrEt" not in every_text(raised.value) + caplog.text
    assert "127.0.0.1" not in every_text(raised.value)


async def test_a_closed_endpoint_says_so() -> None:
    rpc = RpcEndpoint(SecretStr("http://127.0.0.1:1/"), venue="chain", label=LABEL)
    with pytest.raises(RuntimeError, match=f"{LABEL} is not open"):
        await rpc.block_number()


@pytest.mark.parametrize(
    ("exc", "kind", "reason"),
    [
        (aiohttp.ServerDisconnectedError(), VenueUnavailable, "server disconnected"),
        (
            aiohttp.ClientPayloadError("cut"),
            VenueUnavailable,
            "transport error (ClientPayloadError)",
        ),
        (Web3RPCError("boom"), VenueUnavailable, "JSON-RPC error"),
        (
            Web3RPCError(
                "x",
                rpc_response={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "error": {"code": -32000, "message": "header\nnot found"},
                },
            ),
            VenueUnavailable,
            "JSON-RPC error -32000: header?not found",
        ),
        (BadResponseFormat("no result"), VenueDataError, "answer is not JSON-RPC"),
        (json.JSONDecodeError("bad", "<html>", 0), VenueDataError, "answer is not JSON-RPC"),
        (Web3Exception("odd"), VenueUnavailable, "web3 error (Web3Exception)"),
        (KeyError("result"), VenueDataError, "unexpected KeyError"),
        (
            ContractLogicError("reverted", data="0xnothex"),
            VenueDataError,
            "call reverted without a reason",
        ),
    ],
)
def test_describe(exc: Exception, kind: type[VenueError], reason: str) -> None:
    assert describe(exc) == (kind, reason)


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("https://eth-mainnet.example/v2/AbCdEf123456", ("AbCdEf123456", "eth-mainnet.example")),
        ("https://user:pa55word@rpc.example/", ("pa55word", "rpc.example")),
        ("https://rpc.example/?apikey=AbCdEf123456&chain=1", ("AbCdEf123456", "rpc.example")),
    ],
)
def test_scrub_hides_every_secret_part_of_the_url(url: str, secrets: tuple[str, ...]) -> None:
    scrubbed = scrub(f"failed: {url} said {' and '.join(secrets)}", SecretStr(url))
    assert scrubbed == f"failed: *** said {' and '.join('***' for _ in secrets)}"
