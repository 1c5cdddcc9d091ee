"""Many contract reads in one `eth_call`, at one block: Multicall3 `aggregate3`.

    calls = [
        Call.of(usdt, "balanceOf(address)", wallet, returns=("uint256",)),
        Call.of(wsteth, "stEthPerToken()", returns=("uint256",)),
    ]
    answer = await aggregate3(endpoint, calls, block=head - 3)
    answer.block.number, answer.block.timestamp        # the block that answered, proven
    answer.results[0].value                            # 1250000000 (or CallFailed)

Every call is sent with `allowFailure = true`, so one bad read (a token that reverts, an address
with no code) fails alone and the others still answer. A call's answer is believed only when it
decodes as the ABI types the caller expects: Multicall3 reports `success = true` with empty
return data for an address that has no code (a wrong address, a block before deployment), and
that must read as a failure, never as a zero balance.

Each `aggregate3` also asks Multicall3 itself for `getBlockNumber()`,
`getCurrentBlockTimestamp()` and `getLastBlockHash()`: behind a load balancer the block a caller
pins is not always the block that answers, and the answer then says which one did. Past
`max_calls` the calls are split over several `aggregate3`, each proving its block; all must
agree.

Everything here but `aggregate3` is pure: it encodes and decodes bytes, and does no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from eth_abi.abi import decode, encode, is_encodable_type
from eth_abi.exceptions import DecodingError, EncodingError
from eth_abi.grammar import TupleType, normalize, parse
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

MULTICALL3_ADDRESS: Final = "0xcA11bde05977b3631167028862bE2a173976CA11"
"""Where Multicall3 is deployed on Ethereum and most EVM chains (the same CREATE2 address)."""

DEFAULT_MAX_CALLS: Final = 64
"""Calls per `aggregate3`, the three block calls included: well inside the gas and response
limits public RPC nodes put on one `eth_call`."""

_CALL3: Final = "(address,bool,bytes)[]"
_AGGREGATE3: Final = keccak(text=f"aggregate3({_CALL3})")[:4]
_RESULT: Final = "(bool,bytes)[]"
_ERROR_STRING: Final = keccak(text="Error(string)")[:4]
_PANIC: Final = keccak(text="Panic(uint256)")[:4]
_REASON_LIMIT: Final = 160


class MulticallError(ValueError):
    """Raised when an `aggregate3` answer as a whole cannot be used: it does not decode, holds
    the wrong number of results, or its block calls failed or name another block. The message
    says which, and never holds an RPC URL."""


class CallFailed(ValueError):
    """Raised by `CallResult.value` for a call that gave no usable answer."""


def selector(signature: str) -> bytes:
    """The 4-byte selector of a function signature: `selector("balanceOf(address)")`."""
    return keccak(text=signature)[:4]


def _abi_type(type_str: str) -> str:
    """`type_str` in canonical form (`uint` -> `uint256`); ValueError if eth-abi cannot code it."""
    normalized: str = normalize(type_str)  # type: ignore[no-untyped-call]  # unannotated in eth-abi
    if not is_encodable_type(normalized):  # False for anything it cannot parse, too
        raise ValueError(f"not an ABI type: {type_str!r}")
    return str(parse(normalized).to_type_str())


def _canonical(signature: str) -> tuple[str, tuple[str, ...]]:
    """`"f(uint,address)"` -> `("f(uint256,address)", ("uint256", "address"))`."""
    name, paren, rest = signature.partition("(")
    if not name.isidentifier() or not paren:
        raise ValueError(f"not a function signature: {signature!r}")
    if rest == ")":
        return f"{name}()", ()
    try:
        arguments = parse(_abi_type(paren + rest))
    except ValueError:
        raise ValueError(f"not a function signature: {signature!r}") from None
    if not isinstance(arguments, TupleType) or arguments.is_array:
        raise ValueError(f"not a function signature: {signature!r}")
    types = tuple(component.to_type_str() for component in arguments.components)
    return f"{name}({','.join(types)})", types


@dataclass(frozen=True, slots=True)
class Call:
    """One read inside an `aggregate3`: calldata for `target`, and the ABI types of its answer.

    | field      | example                                         |
    |------------|-------------------------------------------------|
    | `target`   | `0xdAC17F958D2ee523a2206206994597C13D831ec7`    |
    | `data`     | `selector("balanceOf(address)") + encode(...)`  |
    | `returns`  | `("uint256",)`; at least one type               |
    | `label`    | `"USDT.balanceOf"`, shown in failure reasons    |

    Build one with `Call.of`, which encodes the arguments from the signature.
    """

    target: str
    data: bytes
    returns: tuple[str, ...]
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", to_checksum_address(self.target))
        if not self.returns:
            raise ValueError("a call must say what it returns: an empty answer is a failure")
        object.__setattr__(self, "returns", tuple(_abi_type(t) for t in self.returns))

    @classmethod
    def of(
        cls, target: str, signature: str, *args: Any, returns: Sequence[str], label: str = ""
    ) -> Call:
        """`target.signature(*args)`, expecting `returns`; the label defaults to the name.

        Raises:
            ValueError: the signature, an argument or a return type is not valid ABI.
        """
        canonical, types = _canonical(signature)
        if len(args) != len(types):
            raise ValueError(f"{canonical} takes {len(types)} arguments, got {len(args)}")
        try:
            encoded = encode(types, args)
        except EncodingError as exc:
            raise ValueError(f"cannot encode the arguments of {canonical}: {exc}") from exc
        return cls(
            target=target,
            data=selector(canonical) + encoded,
            returns=tuple(returns),
            label=label or signature.partition("(")[0],
        )


@dataclass(frozen=True, slots=True)
class CallResult:
    """What one call answered: its decoded `values`, or the `error` that makes it unusable;
    `data` is the raw return data of a call that did not revert (for a caller that knows
    another encoding), empty for one that did."""

    call: Call
    values: tuple[Any, ...] = ()
    error: str | None = None
    data: bytes = b""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def value(self) -> Any:
        """The only value of a call with one return type (the tuple of values otherwise).

        Raises:
            CallFailed: the call gave no usable answer; the message says why.
        """
        if self.error is not None:
            name = self.call.label or self.call.target
            raise CallFailed(f"{name} at {self.call.target}: {self.error}")
        return self.values[0] if len(self.values) == 1 else self.values


@dataclass(frozen=True, slots=True)
class Block:
    """The block an `aggregate3` was executed in, as Multicall3 read it from the EVM."""

    number: int
    timestamp: datetime
    parent_hash: bytes


@dataclass(frozen=True, slots=True)
class Aggregate:
    """The answer to a list of calls: one result per call, in order, and the block read."""

    block: Block
    results: tuple[CallResult, ...]


def encode_aggregate3(calls: Sequence[Call]) -> bytes:
    """The calldata of `aggregate3(calls)`, every call with `allowFailure = true`."""
    items = [(call.target, True, call.data) for call in calls]
    return _AGGREGATE3 + encode([_CALL3], [items])


def decode_aggregate3(data: bytes) -> list[tuple[bool, bytes]]:
    """The `(success, returnData)` pairs of an `aggregate3` answer.

    Raises:
        MulticallError: the answer is empty (no Multicall3 at the address called, or a block
            before it was deployed) or does not decode as `(bool,bytes)[]`.
    """
    if not data:
        raise MulticallError("aggregate3 answered nothing: no Multicall3 at that address?")
    try:
        (pairs,) = decode([_RESULT], data)
    except DecodingError as exc:
        raise MulticallError(f"aggregate3 answer does not decode: {exc}") from exc
    return [(bool(success), bytes(return_data)) for success, return_data in pairs]


def interpret(call: Call, success: bool, data: bytes) -> CallResult:
    """One call's `(success, returnData)` read against what it should return.

    A revert is a failure with its reason; so is a "success" whose data does not decode as
    `call.returns`: empty (no code at the target) or too short.
    """
    if not success:
        return CallResult(call, error=revert_reason(data))
    if not data:
        return CallResult(call, error="no code at target or empty return")
    try:
        values = decode(call.returns, data)
    except DecodingError:
        types = ",".join(call.returns)
        return CallResult(
            call, error=f"answer of {len(data)} bytes does not decode as ({types})", data=data
        )
    return CallResult(call, values=tuple(values), data=data)


def decode_results(calls: Sequence[Call], data: bytes) -> tuple[CallResult, ...]:
    """`data`, the answer of `aggregate3(calls)`, as one `CallResult` per call.

    Raises:
        MulticallError: the answer cannot be decoded or has another number of results.
    """
    pairs = decode_aggregate3(data)
    if len(pairs) != len(calls):
        raise MulticallError(f"aggregate3 answered {len(pairs)} results for {len(calls)} calls")
    return tuple(
        interpret(call, success, return_data)
        for call, (success, return_data) in zip(calls, pairs, strict=True)
    )


def revert_reason(data: bytes) -> str:
    """A short, printable description of revert data (`Error(string)`, `Panic`, custom)."""
    if not data:
        return "reverted without a reason"
    if data[:4] == _ERROR_STRING:
        try:
            (message,) = decode(["string"], data[4:])
        except DecodingError:
            return "reverted with a malformed reason"
        text = "".join(ch if ch.isprintable() else "?" for ch in message)[:_REASON_LIMIT]
        return f"reverted: {text}"
    if data[:4] == _PANIC:
        try:
            (code,) = decode(["uint256"], data[4:])
        except DecodingError:
            return "panicked"
        return f"panicked (code {code:#04x})"
    return f"reverted with error 0x{data[:4].hex()}"


def block_calls(multicall: str = MULTICALL3_ADDRESS) -> tuple[Call, Call, Call]:
    """Multicall3's own `getBlockNumber`, `getCurrentBlockTimestamp` and `getLastBlockHash`.

    `getLastBlockHash` is the parent's hash: the EVM cannot see the hash of its own block.
    """
    return (
        Call.of(multicall, "getBlockNumber()", returns=("uint256",)),
        Call.of(multicall, "getCurrentBlockTimestamp()", returns=("uint256",)),
        Call.of(multicall, "getLastBlockHash()", returns=("bytes32",)),
    )


def read_block(results: Sequence[CallResult]) -> Block:
    """The block named by the results of `block_calls`.

    Raises:
        MulticallError: one of them failed.
    """
    try:
        number, timestamp, parent_hash = (result.value for result in results)
    except CallFailed as exc:
        raise MulticallError(f"the block calls failed: {exc}") from exc
    return Block(
        number=int(number),
        timestamp=datetime.fromtimestamp(int(timestamp), UTC),
        parent_hash=bytes(parent_hash),
    )


def split(calls: Sequence[Call], max_calls: int) -> list[tuple[Call, ...]]:
    """`calls` in order, in chunks of at most `max_calls` (one empty chunk for no calls)."""
    if max_calls < 1:
        raise ValueError(f"max_calls must be at least 1, got {max_calls}")
    if not calls:
        return [()]
    return [tuple(calls[i : i + max_calls]) for i in range(0, len(calls), max_calls)]


class EthCaller(Protocol):
    """**Protocol**: something that runs one `eth_call` (`rpc.RpcEndpoint` does)."""

    async def eth_call(self, to: str, data: bytes, block: int) -> bytes: ...


async def aggregate3(
    caller: EthCaller,
    calls: Sequence[Call],
    *,
    block: int,
    multicall: str = MULTICALL3_ADDRESS,
    max_calls: int = DEFAULT_MAX_CALLS,
) -> Aggregate:
    """Run `calls` at `block` through Multicall3: one `eth_call` per `max_calls` calls.

    Each `eth_call` carries the three block calls as well, so `max_calls` must leave room for
    at least one call of the caller's. Chunks run one after the other, all at `block`.

    Raises:
        MulticallError: an answer is unusable, or a block other than `block` answered.
        VenueError: whatever `caller` raises (transport and node failures).
    """
    proof_calls = block_calls(multicall)
    if max_calls <= len(proof_calls):
        raise ValueError(f"max_calls must be above {len(proof_calls)}, got {max_calls}")
    answered: Block | None = None
    results: list[CallResult] = []
    for chunk in split(calls, max_calls - len(proof_calls)):
        batch = (*proof_calls, *chunk)
        data = await caller.eth_call(multicall, encode_aggregate3(batch), block)
        decoded = decode_results(batch, data)
        proven = read_block(decoded[: len(proof_calls)])
        if proven.number != block:
            raise MulticallError(f"asked for block {block}, block {proven.number} answered")
        if answered is not None and proven != answered:
            raise MulticallError(f"block {block} changed between two aggregate3 calls")
        answered = proven
        results.extend(decoded[len(proof_calls) :])
    assert answered is not None  # split() yields at least one chunk
    return Aggregate(block=answered, results=tuple(results))
