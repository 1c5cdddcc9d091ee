"""A real local chain for the chain-venue tests: anvil, our Vyper contracts, a deploy helper.

* **anvil** comes from npm (`@foundry-rs/anvil`, pinned): the test session installs it into
  `.cache/npm` in the clone when it is missing (tests/provision.py); locally a binary on PATH
  does as well. One anvil serves the whole test session.
* **Contracts** are ours, in `tests/contracts/*.vy`, written to the mainnet ABIs the daemon
  reads (same selectors, same return encodings). They are compiled once per run with the
  Vyper of the test extras, offline, and cached in `.cache/contracts/` by the hash of every
  source and the compiler's version.
* **`Chain`** talks JSON-RPC to anvil directly (never through a test's proxy), synchronously:
  deploy, transact from anvil's unlocked accounts, call, snapshot and revert.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from eth_abi.abi import decode, encode
from eth_utils.abi import (
    abi_to_signature,
    function_abi_to_4byte_selector,
    get_abi_input_types,
    get_abi_output_types,
)
from eth_utils.address import to_checksum_address

from tests.provision import ANVIL_INSTALL, find_anvil
from tests.tools import tool_missing

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = Path(__file__).resolve().parent / "contracts"
COMPILED = ROOT / ".cache" / "contracts"

RAY = 10**27
WAD = 10**18


def require_anvil() -> str:
    """anvil's path; a missing anvil skips locally and fails under CI=true."""
    found = find_anvil()
    if found is None:
        tool_missing("anvil", ANVIL_INSTALL)
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Anvil:
    """One anvil process on a free loopback port; `url` once `start` returned."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())

    def start(self, timeout: float = 20.0, attempts: int = 3) -> str:
        """Start anvil and wait until it answers; its URL. A port taken meanwhile is retried."""
        for attempt in range(attempts):
            try:
                return self._start(timeout)
            except RuntimeError:
                self.stop()
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> str:
        port = free_port()
        self._log.seek(0)
        self._log.truncate()
        self._process = subprocess.Popen(
            [self.binary, "--host", "127.0.0.1", "--port", str(port), "--silent"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                self._log.seek(0)
                output = self._log.read().decode(errors="replace")
                raise RuntimeError(f"anvil exited with {self._process.returncode}: {output}")
            try:
                httpx.post(self.url, json=_request("eth_chainId", []), timeout=1).raise_for_status()
                return self.url
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"anvil did not answer within {timeout}s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def close(self) -> None:
        self.stop()
        self._log.close()


@dataclass(frozen=True)
class Artifact:
    """A compiled contract: its ABI, creation code and runtime code."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    runtime: bytes

    def function(self, name: str) -> dict[str, Any]:
        matches = [e for e in self.abi if e.get("type") == "function" and e["name"] == name]
        if len(matches) != 1:
            raise KeyError(f"{self.name} has {len(matches)} functions named {name}")
        return matches[0]


def compile_contracts(cache: Path = COMPILED) -> dict[str, Artifact]:
    """Every `tests/contracts/*.vy`, by file stem, compiled once per sources-and-compiler hash."""
    sources = sorted(CONTRACTS.glob("*.vy"))
    digest = hashlib.sha256(metadata.version("vyper").encode())
    for source in sources:
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    cached = cache / f"{digest.hexdigest()[:32]}.json"
    if not cached.exists():
        compiled = subprocess.run(
            [sys.executable, "-m", "vyper", "-p", ".", "-f", "combined_json"]
            + [source.name for source in sources],
            cwd=CONTRACTS,
            capture_output=True,
            check=False,
            timeout=300,
        )
        if compiled.returncode != 0:
            raise RuntimeError(f"vyper failed:\n{compiled.stderr.decode(errors='replace')}")
        cache.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(compiled.stdout)
        partial.replace(cached)  # atomic: a parallel run never reads half a file
    output = json.loads(cached.read_text())
    return {
        Path(path).stem: Artifact(
            name=Path(path).stem,
            abi=entry["abi"],
            bytecode=bytes.fromhex(entry["bytecode"].removeprefix("0x")),
            runtime=bytes.fromhex(entry["bytecode_runtime"].removeprefix("0x")),
        )
        for path, entry in output.items()
        if path.endswith(".vy")
    }


def _request(method: str, params: list[Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


class RpcFailed(RuntimeError):
    """anvil answered a JSON-RPC error (a reverted transaction, a bad request)."""


class Chain:
    """anvil over JSON-RPC, synchronous: for setting up state, not for the code under test."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(timeout=30)
        self.accounts: list[str] = [to_checksum_address(a) for a in self.rpc("eth_accounts")]

    def close(self) -> None:
        self._http.close()

    def rpc(self, method: str, *params: Any) -> Any:
        answer = self._http.post(self.url, json=_request(method, list(params))).json()
        if "error" in answer:
            raise RpcFailed(f"{method}: {answer['error']}")
        return answer["result"]

    def deploy(self, artifact: Artifact, *args: Any, sender: str | None = None) -> Contract:
        constructor = [e for e in artifact.abi if e.get("type") == "constructor"]
        types = get_abi_input_types(constructor[0]) if constructor else []  # type: ignore[arg-type]
        data = artifact.bytecode + encode(types, args)
        receipt = self.send({"from": sender or self.accounts[0], "data": "0x" + data.hex()})
        return Contract(self, to_checksum_address(receipt["contractAddress"]), artifact)

    def send(self, transaction: dict[str, Any]) -> dict[str, Any]:
        """Send from an unlocked account and wait for the (automined) receipt."""
        if "to" in transaction and "gas" not in transaction:
            # anvil's estimate has no margin: a write of `block.timestamp` estimated in the
            # second of the slot's last write (a no-op store) runs out of gas a second later
            transaction = {**transaction, "gas": hex(1_000_000)}
        tx_hash = self.rpc("eth_sendTransaction", transaction)
        deadline = time.monotonic() + 10
        receipt: dict[str, Any] | None = None
        while receipt is None and time.monotonic() < deadline:
            receipt = self.rpc("eth_getTransactionReceipt", tx_hash)
            if receipt is None:  # anvil mines right away, but may answer just before
                time.sleep(0.005)
        if receipt is None or receipt["status"] != "0x1":
            raise RpcFailed(f"transaction {tx_hash} failed: {receipt}")
        return receipt

    def at(self, address: str, artifact: Artifact) -> Contract:
        return Contract(self, to_checksum_address(address), artifact)

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def block(self, number: int) -> dict[str, Any]:
        block: dict[str, Any] = self.rpc("eth_getBlockByNumber", hex(number), False)
        return block

    def mine(self, blocks: int = 1) -> int:
        """Mine `blocks` empty blocks; the new head's number."""
        self.rpc("anvil_mine", hex(blocks))
        return self.block_number()

    def snapshot(self) -> str:
        snapshot: str = self.rpc("evm_snapshot")
        return snapshot

    def revert(self, snapshot: str) -> None:
        if self.rpc("evm_revert", snapshot) is not True:
            raise RpcFailed(f"evm_revert {snapshot} was refused")

    def set_code(self, address: str, code: bytes) -> None:
        self.rpc("anvil_setCode", to_checksum_address(address), "0x" + code.hex())

    def set_balance(self, address: str, wei: int) -> None:
        self.rpc("anvil_setBalance", to_checksum_address(address), hex(wei))


@dataclass(frozen=True)
class Contract:
    """A deployed contract: encode, call and transact its functions by name."""

    chain: Chain
    address: str
    artifact: Artifact

    def signature(self, function: str) -> str:
        return abi_to_signature(self.artifact.function(function))  # type: ignore[arg-type]

    def calldata(self, function: str, *args: Any) -> bytes:
        abi = self.artifact.function(function)
        selector = function_abi_to_4byte_selector(abi)  # type: ignore[arg-type]
        return selector + encode(get_abi_input_types(abi), args)  # type: ignore[arg-type]

    def call(self, function: str, *args: Any, block: int | str = "latest") -> Any:
        """The decoded answer: one value, or a tuple for several."""
        tag = hex(block) if isinstance(block, int) else block
        request = {"to": self.address, "data": "0x" + self.calldata(function, *args).hex()}
        raw = bytes.fromhex(self.chain.rpc("eth_call", request, tag).removeprefix("0x"))
        types = get_abi_output_types(self.artifact.function(function))  # type: ignore[arg-type]
        values = decode(types, raw)
        return values[0] if len(values) == 1 else values

    def transact(self, function: str, *args: Any, sender: str | None = None) -> dict[str, Any]:
        """Send the call as a transaction (mined at once); its receipt."""
        return self.chain.send(
            {
                "from": sender or self.chain.accounts[0],
                "to": self.address,
                "data": "0x" + self.calldata(function, *args).hex(),
            }
        )
