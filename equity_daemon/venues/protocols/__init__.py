"""What differs between the protocols a chain venue reads; the mechanics are in `chain.py`.

Each module turns its configuration into multicall `Call`s (a `Reader` per address, a rate
reader per venue) and their decoded answers into `Position` lines, rates, reported totals and
health factors, collected in one `Readout` per fetch. A reader that cannot use an answer raises
`ReadFailed` naming the line: the whole report then fails (the last good one stays in use),
never a zero.

Discovery (token decimals, Aave reserves, a vault's asset) runs through the same multicall at
start and on a slow refresh, never per cycle: `Run` is how a module asks for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from equity_daemon.model import Asset, HealthFactor, Position, ReportedTotal
from equity_daemon.venues.multicall import Block, Call, CallResult

RATE_DECIMALS = 18

Run = Callable[[Sequence[Call]], Awaitable[Sequence[CallResult]]]
"""Runs calls in one aggregate3 at the venue's pinned block (for discovery)."""


class ReadFailed(ValueError):
    """Raised when a call a line depends on failed or answered nonsense; the text names it."""


@dataclass(frozen=True, slots=True)
class Token:
    """An ERC-20 contract as configured, with the decimals it reported at discovery."""

    symbol: str
    address: str
    decimals: int


@dataclass
class Readout:
    """Everything one fetch read from a chain at `block`."""

    venue: str
    chain: str
    block: Block
    positions: list[Position] = field(default_factory=list)
    rates: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    rate_failures: dict[tuple[str, str], str] = field(default_factory=dict)
    reported: list[ReportedTotal] = field(default_factory=list)
    health: list[HealthFactor] = field(default_factory=list)
    # withdrawal NFTs held, by (holder, NFT contract)
    nft_balances: dict[tuple[str, str], int] = field(default_factory=dict)
    # PriorityWithdrawalQueue nonces, by (holder, queue contract)
    queue_nonces: dict[tuple[str, str], int] = field(default_factory=dict)
    # withdrawal requests closed for good (claimed, cancelled) by this block, by (holder,
    # contract): NFT request ids, and PriorityWithdrawalQueue request hashes
    closed_requests: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    closed_queued: dict[tuple[str, str], set[bytes]] = field(default_factory=dict)


class Reader(Protocol):
    """**Protocol**: one protocol's reads (for one address, or a venue's rates)."""

    def calls(self) -> Sequence[Call]: ...

    def read(self, results: Sequence[CallResult], out: Readout) -> None: ...


def need(result: CallResult, what: str) -> Any:
    """The call's value, or `ReadFailed` saying which line could not be read and why."""
    if result.error is not None:
        raise ReadFailed(f"{what}: {result.call.label} at {result.call.target} {result.error}")
    return result.value


def units(raw: int, decimals: int) -> Decimal:
    """`raw` base units of a token with `decimals` as an exact Decimal (1500000, 6 -> 1.5)."""
    return Decimal(raw).scaleb(-decimals)


def account(protocol: str, address: str) -> str:
    """The account a protocol's lines of one address carry: `aave-core:0xAbC…` in full."""
    return f"{protocol}:{address}"


def balance_call(token: Token | str, holder: str, label: str) -> Call:
    address = token.address if isinstance(token, Token) else token
    return Call.of(address, "balanceOf(address)", holder, returns=("uint256",), label=label)


async def discover_tokens(run: Run, tokens: Mapping[str, str]) -> dict[str, Token]:
    """Each configured token's `decimals()`, read once.

    Raises:
        ReadFailed: a token has no code or does not answer `decimals()`.
    """
    names = sorted(tokens)
    calls = [
        Call.of(tokens[name], "decimals()", returns=("uint8",), label=f"{name}.decimals")
        for name in names
    ]
    results = await run(calls)
    return {
        name: Token(name, tokens[name], int(need(result, f"token {name}")))
        for name, result in zip(names, results, strict=True)
    }


@dataclass(frozen=True, slots=True)
class TokenReader:
    """Balances of `address` in `tokens`, as lines of account `<protocol>:<address>`."""

    protocol: str
    address: str
    tokens: tuple[Token, ...]

    @property
    def account(self) -> str:
        return account(self.protocol, self.address)

    def calls(self) -> Sequence[Call]:
        return [balance_call(t, self.address, f"{t.symbol}.balanceOf") for t in self.tokens]

    def read(self, results: Sequence[CallResult], out: Readout) -> None:
        for token, result in zip(self.tokens, results, strict=True):
            raw = int(need(result, f"{self.account}/{token.symbol}"))
            if raw:
                asset = Asset(token.symbol, out.chain, token.address)
                out.positions.append(
                    Position(out.venue, self.account, asset, units(raw, token.decimals))
                )


@dataclass(frozen=True, slots=True)
class RateReader:
    """One exact protocol rate: 1 `base` = `signature()` / 1e18 `quote`."""

    base: str
    quote: str
    contract: str
    signature: str

    def calls(self) -> Sequence[Call]:
        label = f"{self.base}.{self.signature.partition('(')[0]}"
        return [Call.of(self.contract, self.signature, returns=("uint256",), label=label)]

    def read(self, results: Sequence[CallResult], out: Readout) -> None:
        (result,) = results
        raw = int(need(result, f"rate {self.base}/{self.quote}"))
        out.rates[(self.base, self.quote)] = units(raw, RATE_DECIMALS)
