"""EtherFi: eETH and weETH balances (account `etherfi:0x…`), the weETH/eETH rate, and ETH in
pending withdrawal requests.

A request is a `locked` line (reported beside equity, not in it) of `amountOfEEth` in ETH, the
upper bound of what it pays (venue-pitfalls 47), with its id, its NFT contract and whether it
is finalized and valid in `details`. An address may hold requests in several NFT contracts
(venue-pitfalls 48); the lines of one other than the venue's own carry its address in their
`line_id`, as ids repeat across contracts. `WeETHWithdrawAdapter.requestWithdraw` mints the
same NFT to its recipient, so its requests are found like any other. A request whose NFT is
burned (claimed: `ownerOf` reverts) or no longer ours drops out; an invalidated one stays, with
`valid = false` in its details, as value at risk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_utils.crypto import keccak

from equity_daemon.model import Asset, Position, PositionKind
from equity_daemon.venues.multicall import Call, CallResult
from equity_daemon.venues.protocols import RateReader, Readout, account, need, units

ETH_DECIMALS = 18
_REQUEST = ("(uint96,uint96,bool,uint32)",)
# ERC-721 `Transfer(from, to, tokenId)`: all three indexed, stable across EtherFi's upgrades
# (unlike `WithdrawRequestCreated`, whose signature changed in June 2026)
TRANSFER = keccak(text="Transfer(address,address,uint256)")
_ZERO_TOPIC = bytes(32)


def mint_topics(holder: str) -> list[bytes | None]:
    """`eth_getLogs` topics of the NFT's mints to `holder`."""
    return [TRANSFER, _ZERO_TOPIC, bytes(12) + bytes.fromhex(holder.removeprefix("0x"))]


def minted_ids(logs: list[list[bytes]]) -> set[int]:
    """The token ids (request ids) of mint logs found with `mint_topics`."""
    return {int.from_bytes(topics[3], "big") for topics in logs if len(topics) == 4}


def weeth_rate(weeth: str) -> RateReader:
    """weETH → eETH: `getRate()` (eETH for 1 weETH, 1e18 scale)."""
    return RateReader("weETH", "eETH", weeth, "getRate()")


@dataclass(frozen=True, slots=True)
class WithdrawalReader:
    """The withdrawal requests of `address` on the `nft` contract; with `count`, also how many
    request NFTs it holds (more than the lines read: ids not known yet, scan the logs)."""

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
        if self.count:
            calls.append(
                Call.of(self.nft, "balanceOf(address)", self.address, returns=("uint256",))
            )
        return calls

    def read(self, results: Sequence[CallResult], out: Readout) -> None:
        if self.count:
            held = need(results[-1], f"{self.account}/withdrawal requests held")
            out.nft_balances[(self.address, self.nft)] = int(held)
        for index, request in enumerate(self.request_ids):
            owner, data, finalized = results[3 * index : 3 * index + 3]
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
