"""JSON-RPC endpoints for the chain venues: web3.py set up for a daemon, not a script.

web3's `AsyncHTTPProvider` defaults suit a script and hurt a daemon that reads a chain every few
seconds and fails over between endpoints itself:

* retries: web3 retries `eth_call` & co. 5 times with backoff; here none, the venue fails over;
* time per request: 30 s; here `timeout` (5 s);
* connections: a new TCP/TLS connection per request; here our own keep-alive `aiohttp` session;
* CCIP-Read: on, a revert may make web3 fetch URLs the contract names; here off, a reader makes
  no outbound calls;
* middleware: `validation` sends `eth_chainId` before every `eth_call`; here none, so one call is
  one request (check the chain id once per endpoint).

Behind one URL a load balancer may answer each request from another node, some behind the
others, and a node asked for logs past its head answers those up to its head without a word
(geth's does). So `eth_getLogs` goes in one JSON-RPC batch (one HTTP request, one node) with
`eth_blockNumber`, and an answer from a node that has not reached the range's end is refused
(`EndpointBehind`), never taken for "no logs there".

The RPC URL often carries an API key, so it is a `SecretStr`, the provider's logger (which logs
it) is silenced, and every failure is re-raised as a `VenueError` that names the endpoint by its
label (`rpc endpoint 2 of 3: timeout`), without the URL and without the library's exception
chained to it (whose text would hold it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import anyio
from pydantic import SecretStr
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import (
    BadResponseFormat,
    ContractLogicError,
    Web3Exception,
    Web3RPCError,
)

from equity_daemon.errors import VenueDataError, VenueError, VenueUnavailable
from equity_daemon.venues.multicall import revert_reason

DEFAULT_TIMEOUT: Final = 5.0
"""Seconds one JSON-RPC request may take, connecting included."""

_REASON_LIMIT: Final = 160
_SHORTEST_SECRET: Final = 6  # URL pieces shorter than this ("v3", "/") are not worth hiding

# web3 logs the endpoint URL (the provider at debug on every request and at info on disconnect,
# its session manager at debug when it caches a session) and the node's error messages, which
# may echo the URL's key (the request manager, at debug). A logger made outside logging's
# registry, and disabled, keeps them quiet without touching global logging.
_QUIET = logging.Logger("equity_daemon.venues.rpc.web3")
_QUIET.disabled = True


def open_session(
    timeout: float = DEFAULT_TIMEOUT, *, connections: int = 4
) -> aiohttp.ClientSession:
    """A keep-alive HTTP session for one endpoint: at most `connections` sockets, reused."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=60),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


async def connect_web3(
    url: SecretStr, session: aiohttp.ClientSession, *, request_timeout: float = DEFAULT_TIMEOUT
) -> AsyncWeb3[AsyncHTTPProvider]:
    """An `AsyncWeb3` for `url` that sends its requests through `session`, as the table above.

    Nothing is sent yet. The caller owns `session` and closes it.
    """
    provider = AsyncHTTPProvider(
        url.get_secret_value(),
        request_kwargs={"timeout": aiohttp.ClientTimeout(total=request_timeout)},
        exception_retry_configuration=None,
    )
    provider.global_ccip_read_enabled = False
    provider.logger = _QUIET
    provider._request_session_manager.logger = _QUIET  # no public way; tests/venues/test_rpc.py
    await provider.cache_async_session(session)
    web3 = AsyncWeb3(provider, middleware=[])
    web3.manager.logger = _QUIET
    return web3


class EndpointBehind(VenueUnavailable):
    """Raised when the node answering has not reached a block the fetch needs: its head is
    before `needed` (the block a venue read last, or the end of a log range). Another
    endpoint, or the same one later, may serve."""

    def __init__(self, venue: str, label: str, head: int, needed: int) -> None:
        super().__init__(venue, f"{label}: behind: its head {head} is before block {needed}")
        self.label = label
        self.head = head
        self.needed = needed


class RpcEndpoint:
    """One JSON-RPC endpoint of a chain venue, used as `async with RpcEndpoint(...) as rpc`.

    Its methods each send exactly one JSON-RPC request, and raise only `VenueError`:
    `VenueUnavailable` when another try or another endpoint may do better (timeouts, refused
    connections, HTTP errors, node errors such as `header not found`), `VenueDataError` when
    the answer cannot be used (not JSON-RPC, or the call reverted). Messages start with
    `label` and never hold the URL.

    Args:
        url: the endpoint; often holds an API key.
        venue: the venue whose errors these are.
        label: how messages name the endpoint: `"rpc endpoint 2 of 3"`.
        timeout: seconds per request.
    """

    def __init__(
        self, url: SecretStr, *, venue: str, label: str, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.venue = venue
        self.label = label
        self._url = url
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._web3: AsyncWeb3[AsyncHTTPProvider] | None = None

    async def __aenter__(self) -> Self:
        self._session = open_session(self._timeout)
        self._web3 = await connect_web3(self._url, self._session, request_timeout=self._timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            with anyio.CancelScope(shield=True):
                await self._session.close()
        self._session = self._web3 = None

    @property
    def web3(self) -> AsyncWeb3[AsyncHTTPProvider]:
        """The configured `AsyncWeb3` (its exceptions are not translated: prefer the methods)."""
        if self._web3 is None:
            raise RuntimeError(f"{self.label} is not open (use `async with`)")
        return self._web3

    async def eth_call(self, to: str, data: bytes, block: int) -> bytes:
        """`eth_call` of `data` on `to` at `block`: what the EVM returned."""
        web3 = self.web3
        with self._translated():
            answer = await web3.eth.call(
                {"to": AsyncWeb3.to_checksum_address(to), "data": data}, block_identifier=block
            )
        return bytes(answer)

    async def logs(
        self, address: str, topics: list[bytes | None], from_block: int, to_block: int
    ) -> list[tuple[list[bytes], bytes]]:
        """`eth_getLogs` of `address` matching `topics` in [from_block, to_block]: each log's
        topics and data. One HTTP request, batched with `eth_blockNumber` (see the module doc).

        Raises:
            EndpointBehind: the node that answered has not reached `to_block`.
        """
        web3 = self.web3
        query: Any = {
            "address": AsyncWeb3.to_checksum_address(address),
            "topics": [None if t is None else "0x" + t.hex() for t in topics],
            "fromBlock": from_block,
            "toBlock": to_block,
        }
        with self._translated():
            async with web3.batch_requests() as batch:
                batch.add(web3.eth.get_block_number())
                batch.add(web3.eth.get_logs(query))
                # web3 types a batch's answers as raw responses; they come formatted
                answers: list[Any] = await batch.async_execute()
            head, found = int(answers[0]), answers[1]
        if head < to_block:
            raise EndpointBehind(self.venue, self.label, head, to_block)
        return [
            ([bytes(topic) for topic in entry["topics"]], bytes(entry["data"])) for entry in found
        ]

    async def block_number(self) -> int:
        """`eth_blockNumber`: the endpoint's head."""
        web3 = self.web3
        with self._translated():
            return await web3.eth.block_number

    async def chain_id(self) -> int:
        """`eth_chainId`: check it once per endpoint, not per call."""
        web3 = self.web3
        with self._translated():
            return await web3.eth.chain_id

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # every library failure leaves as a VenueError, URL-free
            raise self.failure(exc) from None

    def failure(self, exc: Exception) -> VenueError:
        """The `VenueError` to raise for `exc`, raised by web3 or aiohttp for this endpoint."""
        kind, reason = describe(exc)
        return kind(self.venue, scrub(f"{self.label}: {reason}", self._url))


def describe(exc: Exception) -> tuple[type[VenueError], str]:
    """Which `VenueError` `exc` is, and a reason built without the exception's own text.

    aiohttp's messages carry the request URL, so only their kind and status are used; a node's
    JSON-RPC error message is kept, shortened (`scrub` it before showing).
    """
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutError too
        return VenueUnavailable, "timeout"
    if isinstance(exc, aiohttp.ClientResponseError):
        if exc.status == 429:
            return VenueUnavailable, "rate limited (HTTP 429)"
        return VenueUnavailable, f"HTTP {exc.status}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return VenueUnavailable, "cannot connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return VenueUnavailable, "server disconnected"
    if isinstance(exc, aiohttp.ClientError):
        return VenueUnavailable, f"transport error ({type(exc).__name__})"
    if isinstance(exc, ContractLogicError):
        data = exc.data if isinstance(exc.data, str) else ""
        return VenueDataError, f"call {revert_reason(_hex_bytes(data))}"
    if isinstance(exc, Web3RPCError):
        return VenueUnavailable, _rpc_error(exc)
    if isinstance(exc, BadResponseFormat | json.JSONDecodeError):
        return VenueDataError, "answer is not JSON-RPC"
    if isinstance(exc, Web3Exception):
        return VenueUnavailable, f"web3 error ({type(exc).__name__})"
    return VenueDataError, f"unexpected {type(exc).__name__}"


def _rpc_error(exc: Web3RPCError) -> str:
    error = exc.rpc_response.get("error") if exc.rpc_response else None
    if not isinstance(error, dict):
        return "JSON-RPC error"
    message = "".join(ch if ch.isprintable() else "?" for ch in str(error.get("message", "")))
    return f"JSON-RPC error {error.get('code')}: {message[:_REASON_LIMIT]}"


def _hex_bytes(text: str) -> bytes:
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        return b""


def scrub(text: str, url: SecretStr) -> str:
    """`text` with the URL, and every part of it that could be a key, replaced by `***`."""
    secret = url.get_secret_value()
    parts = urlsplit(secret)
    pieces = {secret, parts.netloc, parts.hostname, parts.path, parts.query}
    pieces.update((parts.username, parts.password))
    pieces.update(segment for segment in parts.path.split("/"))
    pieces.update(value for _, value in parse_qsl(parts.query))
    for piece in sorted((p for p in pieces if p and len(p) >= _SHORTEST_SECRET), key=len)[::-1]:
        text = text.replace(piece, "***")
    return text
