"""EtherFi: eETH and weETH balances (account `etherfi:0x…`), the weETH/eETH rate, and ETH in
pending withdrawal requests.

A request is a `locked` line (reported beside equity, not in it) of `amountOfEEth` in ETH, the
upper bound of what it pays (venue-pitfalls 47), with its id, its NFT contract and whether it
is finalized and valid in `details`. An address may hold requests in several NFT contracts
(venue-pitfalls 48); the lines of one other than the venue's own carry its address in their
`line_id`, as ids repeat across contracts. `WeETHWithdrawAdapter.requestWithdraw` mints the
same NFT to its recipient, so its requests are found like any other. A request whose NFT is
burned (claimed: `ownerOf` reverts) or no longer ours drops out; an invalidated one stays, with
`valid = false` in its details, as value at risk. A request that was made by the block read
(its id below the NFT's `nextRequestId()`) and is burned is closed for good: the readout says
so (`Readout.closed_requests`), and the venue stops reading it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from equity_daemon.model import Asset, Position, PositionKind, decimal_str
from equity_daemon.venues.multicall import Call, CallResult
from equity_daemon.venues.protocols import (
    RateReader,
    ReadFailed,
    Readout,
    account,
    need,
    units,
)

ETH_DECIMALS = 18
_REQUEST = ("(uint96,uint96,bool,uint32)",)
# ERC-721 `Transfer(from, to, tokenId)`: all three indexed, stable across EtherFi's upgrades
# (unlike `WithdrawRequestCreated`, whose signature changed in June 2026)
TRANSFER = keccak(text="Transfer(address,address,uint256)")
_ZERO_TOPIC = bytes(32)


def mint_topics(holder: str) -> list[bytes | None]:
    """`eth_getLogs` topics of the NFT's mints to `holder`."""
    return [TRANSFER, _ZERO_TOPIC, bytes(12) + bytes.fromhex(holder.removeprefix("0x"))]


def minted_ids(logs: list[tuple[list[bytes], bytes]]) -> set[int]:
    """The token ids (request ids) of mint logs found with `mint_topics`."""
    return {int.from_bytes(topics[3], "big") for topics, _ in logs if len(topics) == 4}


def weeth_rate(weeth: str) -> RateReader:
    """weETH → eETH: `getRate()` (eETH for 1 weETH, 1e18 scale)."""
    return RateReader("weETH", "eETH", weeth, "getRate()")


@dataclass(frozen=True, slots=True)
class WithdrawalReader:
    """The withdrawal requests of `address` on the `nft` contract; with `count` (its mint logs
    are scanned), also how many request NFTs it holds (more than the lines read: ids not known
    yet, scan the logs) and which requests were made by the block read (`nextRequestId`)."""

    address: str
    nft: str
    request_ids: tuple[int, ...]
    count: bool = False
    own: bool = True  # the venue's own NFT (contracts.etherfi_withdrawals): short line ids

    @property
    def account(self) -> str:
        return account("etherfi", self.address)

    def line_id(self, request: int) -> str:
        return f"etherfi-request-{request}" if self.own else f"etherfi-request-{self.nft}-{request}"

    def calls(self) -> Sequence[Call]:
        calls = []
        for request in self.request_ids:
            calls += [
                Call.of(self.nft, "ownerOf(uint256)", request, returns=("address",)),
                Call.of(self.nft, "getRequest(uint256)", request, returns=_REQUEST),
                Call.of(self.nft, "isFinalized(uint256)", request, returns=("bool",)),
            ]
        if self.count and self.request_ids:
            # which were made by the block read: one found in logs and burned since is closed
            calls.append(Call.of(self.nft, "nextRequestId()", returns=("uint256",)))
        if self.count:
            calls.append(
                Call.of(self.nft, "balanceOf(address)", self.address, returns=("uint256",))
            )
        return calls

    def read(self, results: Sequence[CallResult], out: Readout) -> None:
        if self.count:
            held = need(results[-1], f"{self.account}/withdrawal requests held")
            out.nft_balances[(self.address, self.nft)] = int(held)
        checked = self.count and self.request_ids
        made_before = _next_id(results[3 * len(self.request_ids)]) if checked else 0
        for index, request in enumerate(self.request_ids):
            owner, data, finalized = results[3 * index : 3 * index + 3]
            if not owner.ok and request < made_before:
                # made by this block and burned since: claimed, it never comes back
                out.closed_requests.setdefault((self.address, self.nft), set()).add(request)
            if not owner.ok or str(owner.value).lower() != self.address.lower():
                continue  # claimed (burned) or transferred away: not ours any more
            what = f"{self.account}/withdrawal request {request}"
            amount, _shares, valid, _fee = need(data, what)
            is_finalized = bool(need(finalized, what))
            out.positions.append(
                Position(
                    out.venue,
                    self.account,
                    Asset("ETH", out.chain),
                    units(int(amount), ETH_DECIMALS),
                    PositionKind.LOCKED,
                    details={
                        "request_id": str(request),
                        "contract": self.nft,
                        "finalized": str(is_finalized).lower(),
                        "valid": str(bool(valid)).lower(),
                    },
                    line_id=self.line_id(request),
                )
            )


def _next_id(result: CallResult) -> int:
    """`nextRequestId()`, or 0 (no request known to be made) from an NFT without it: its
    burned requests are then read on, never taken for closed on a guess."""
    return int(result.value) if result.ok else 0


# --- PriorityWithdrawalQueue ---------------------------------------------------------------
# Whitelisted addresses' requests, kept in the queue's own sets by the hash of the request
# struct (no NFT): found from its `WithdrawRequestCreated` logs (user indexed), each then
# confirmed with `requestExists` / `isFinalized` at the block read. A claimed, cancelled or
# invalidated request leaves the sets (its eETH or ETH went back to the user) and drops out;
# made by the block read (its nonce below the queue's) and gone, it is closed for good
# (`Readout.closed_queued`). The queue's global `nonce()` moves with every request: read each
# fetch, a change means the logs since the last scan may hold a new request of ours.

QUEUE_CREATED = keccak(
    text="WithdrawRequestCreated(bytes32,address,uint96,uint96,uint96,uint32,uint32)"
)
_QUEUED_DATA = ("uint96", "uint96", "uint96", "uint32", "uint32")


@dataclass(frozen=True, slots=True)
class QueuedRequest:
    """A request in the PriorityWithdrawalQueue: its id (hash), amounts and the queue's nonce
    it was made with, from its log."""

    request_id: bytes
    amount_of_eeth: int
    amount_with_fee: int
    nonce: int


def queue_topics(holder: str) -> list[bytes | None]:
    """`eth_getLogs` topics of the queue's requests made by `holder`."""
    return [QUEUE_CREATED, None, bytes(12) + bytes.fromhex(holder.removeprefix("0x"))]


def queued_requests(logs: list[tuple[list[bytes], bytes]]) -> list[QueuedRequest]:
    """The requests of logs found with `queue_topics`.

    Raises:
        ReadFailed: a log does not decode as `WithdrawRequestCreated` (not this ABI).
    """
    found = []
    for topics, data in logs:
        try:
            amount, _shares, with_fee, nonce, _created = decode(_QUEUED_DATA, data)
        except DecodingError:
            raise ReadFailed(f"a WithdrawRequestCreated log of {len(data)} bytes") from None
        found.append(QueuedRequest(topics[1], int(amount), int(with_fee), int(nonce)))
    return found


@dataclass(frozen=True, slots=True)
class PriorityQueueReader:
    """The PriorityWithdrawalQueue requests of `address` at `queue`, and the queue's nonce."""

    address: str
    queue: str
    requests: tuple[QueuedRequest, ...]

    @property
    def account(self) -> str:
        return account("etherfi", self.address)

    def calls(self) -> Sequence[Call]:
        calls = []
        for request in self.requests:
            calls += [
                Call.of(
                    self.queue, "requestExists(bytes32)", request.request_id, returns=("bool",)
                ),
                Call.of(self.queue, "isFinalized(bytes32)", request.request_id, returns=("bool",)),
            ]
        calls.append(Call.of(self.queue, "nonce()", returns=("uint32",)))
        return calls

    def read(self, results: Sequence[CallResult], out: Readout) -> None:
        nonce = int(need(results[-1], f"{self.account}/priority queue nonce"))
        out.queue_nonces[(self.address, self.queue)] = nonce
        for index, request in enumerate(self.requests):
            exists, finalized = results[2 * index : 2 * index + 2]
            hexid = "0x" + request.request_id.hex()
            what = f"{self.account}/priority withdrawal {hexid}"
            if not need(exists, what):
                if request.nonce < nonce:  # made by this block: gone for good
                    closed = out.closed_queued.setdefault((self.address, self.queue), set())
                    closed.add(request.request_id)
                continue  # claimed, cancelled or invalidated: not pending any more
            out.positions.append(
                Position(
                    out.venue,
                    self.account,
                    Asset("ETH", out.chain),
                    units(request.amount_with_fee, ETH_DECIMALS),  # what its claim pays
                    PositionKind.LOCKED,
                    details={
                        "request_id": hexid,
                        "contract": self.queue,
                        "finalized": str(bool(need(finalized, what))).lower(),
                        "amount_of_eeth": decimal_str(units(request.amount_of_eeth, ETH_DECIMALS)),
                    },
                    line_id=f"etherfi-priority-{hexid}",
                )
            )
