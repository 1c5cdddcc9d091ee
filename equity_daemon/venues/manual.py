"""Positions from a file the operator edits (TOML or JSON, by extension).

    [[positions]]
    account = "cold-wallet"     # optional, default "main"
    asset = "USDT"
    amount = "125000.50"        # a string or a number; read as Decimal, never as float
    kind = "asset"              # asset | debt | locked | in_transit | hedge

    [[quotes]]                  # optional: operator-set rates, usable as a price source
    base = "GHO"
    quote = "USDT"
    rate = "0.998"

The file is parsed again only when its size or modification time changes. A file that cannot be
read or parsed raises `VenueDataError` naming the line at fault; the poller then marks the venue
failed and the last good report stays in use.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from equity_daemon.errors import VenueDataError
from equity_daemon.model import Asset, Position, PositionKind, VenueReport
from equity_daemon.oracle import Observation
from equity_daemon.prices import SourceKind
from equity_daemon.validation import describe_errors


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = "main"
    asset: str = Field(min_length=1)
    chain: str | None = None
    contract: str | None = None
    amount: Decimal = Field(allow_inf_nan=False)
    kind: PositionKind = PositionKind.ASSET
    unrealized_pnl: Decimal | None = Field(default=None, allow_inf_nan=False)
    pnl_currency: str | None = None


class _Rate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base: str
    quote: str
    rate: Decimal = Field(gt=0, allow_inf_nan=False)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    positions: tuple[_Line, ...] = ()
    quotes: tuple[_Rate, ...] = ()


class ManualVenue:
    """A venue whose positions are whatever the file says."""

    kind = SourceKind.FIXED
    cache_seconds = 0.0  # answers from the file it has read

    def __init__(self, name: str, path: Path, clock: Callable[[], datetime]) -> None:
        self.name = name
        self._path = path
        self._clock = clock
        self._seen: tuple[int, int] | None = None
        self._positions: tuple[Position, ...] = ()
        self._rates: dict[tuple[str, str], Decimal] = {}

    async def fetch(self) -> VenueReport:
        now = self._clock()
        try:
            stat = await anyio.Path(self._path).stat()
            signature = (stat.st_mtime_ns, stat.st_size)
            if signature != self._seen:
                raw = await anyio.Path(self._path).read_bytes()
                self._positions, self._rates = self._parse(raw)
                self._seen = signature
        except OSError as exc:
            raise VenueDataError(
                self.name, f"cannot read {self._path.name}: {exc.strerror}"
            ) from None
        return VenueReport(self.name, now, self._positions)

    async def observe(self, base: str, quote: str) -> Observation:
        try:
            return Observation(self._rates[(base, quote)], self._clock())
        except KeyError:
            raise LookupError(f"{self._path.name} has no rate for {base}/{quote}") from None

    def _parse(self, raw: bytes) -> tuple[tuple[Position, ...], dict[tuple[str, str], Decimal]]:
        try:
            if self._path.suffix == ".json":
                data = json.loads(raw, parse_float=Decimal)
            else:
                data = tomllib.loads(raw.decode(), parse_float=Decimal)
            parsed = _File.model_validate(data)
        except (ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, ValidationError):
                reason = "; ".join(describe_errors(exc))
            else:
                reason = f"not valid {self._path.suffix.lstrip('.') or 'toml'}: {exc}"
            raise VenueDataError(self.name, f"{self._path.name}: {reason}") from None
        positions = tuple(self._position(line) for line in parsed.positions)
        rates = {(r.base, r.quote): r.rate for r in parsed.quotes}
        return positions, rates

    def _position(self, line: _Line) -> Position:
        details: dict[str, str | Decimal] = {}
        if line.unrealized_pnl is not None and line.pnl_currency is not None:
            details = {"unrealized_pnl": line.unrealized_pnl, "pnl_currency": line.pnl_currency}
        asset = Asset(line.asset, line.chain, line.contract)
        return Position(self.name, line.account, asset, line.amount, line.kind, details)
