"""Wallet: native ETH and configured ERC-20 balances of one address (account `wallet:0x…`).

Only configured contracts count: a token airdropped to the address that calls itself "USDT"
is never read, let alone valued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from equity_daemon.model import Asset, Position
from equity_daemon.venues.multicall import Call, CallResult
from equity_daemon.venues.protocols import (
    Readout,
    Token,
    account,
    balance_call,
    need,
    units,
)

NATIVE = "ETH"
NATIVE_DECIMALS = 18


@dataclass(frozen=True, slots=True)
class WalletReader:
    """Balances of `address`: native (through Multicall3's `getEthBalance`) and tokens."""

    address: str
    native: bool
    tokens: tuple[Token, ...]
    multicall: str

    @property
    def account(self) -> str:
        return account("wallet", self.address)

    def calls(self) -> Sequence[Call]:
        calls = [
            balance_call(token, self.address, f"{token.symbol}.balanceOf") for token in self.tokens
        ]
        if self.native:
            calls.append(
                Call.of(
                    self.multicall,
                    "getEthBalance(address)",
                    self.address,
                    returns=("uint256",),
                    label="getEthBalance",
                )
            )
        return calls

    def read(self, results: Sequence[CallResult], out: Readout) -> None:
        holdings: list[tuple[str, int, str | None]] = [
            (token.symbol, token.decimals, token.address) for token in self.tokens
        ]
        if self.native:
            holdings.append((NATIVE, NATIVE_DECIMALS, None))
        for (symbol, decimals, contract), result in zip(holdings, results, strict=True):
            raw = int(need(result, f"{self.account}/{symbol}"))
            if raw:
                asset = Asset(symbol, out.chain, contract)
                out.positions.append(Position(out.venue, self.account, asset, units(raw, decimals)))
