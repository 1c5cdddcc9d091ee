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

    [[reported]]                # optional: what a statement says an account is worth,
    account = "cold-wallet"     # reconciled with the account's lines every cycle
    amount = "125000"
    currency = "USD"
    label = "custodian statement"

Amounts and rates are finite, below 1e30 in magnitude and have at most 36 decimal places (rates
are also positive). A file without a `positions` key (empty, or only comments) is not believed: a
venue that holds nothing says `positions = []` (in JSON `{"positions": []}`).

The file is read at every fetch and parsed again only when its content changes (its hash: an edit
can keep both size and modification time). The hash is the report's `revision`, so an edit of
the quotes alone wakes the calculator too. A file that cannot be read or parsed raises
`VenueDataError` naming the line at fault; the poller then marks the venue failed and the last
good report stays in use.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from equity_daemon.errors import VenueDataError
from equity_daemon.model import Asset, Position, PositionKind, ReportedTotal, VenueReport
from equity_daemon.oracle import Observation
from equity_daemon.prices import SourceKind
from equity_daemon.validation import Amount, Rate, describe_errors


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = "main"
    asset: str = Field(min_length=1)
    chain: str | None = None
    contract: str | None = None
    amount: Amount
    kind: PositionKind = PositionKind.ASSET
    unrealized_pnl: Amount | None = None
    pnl_currency: str | None = None


class _Rate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base: str
    quote: str
    rate: Rate


class _Reported(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = "main"
    amount: Amount
    currency: str = Field(min_length=1)
    label: str = "reported"


class ManualFile(BaseModel):
    """A manual venue's file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    positions: tuple[_Line, ...]  # required: see `parse`
    quotes: tuple[_Rate, ...] = ()
    reported: tuple[_Reported, ...] = ()


class ManualVenue:
    """A venue whose positions are whatever the file says."""

    kind = SourceKind.FIXED
    cache_seconds = 0.0  # answers from the file it has read

    def __init__(self, name: str, path: Path, clock: Callable[[], datetime]) -> None:
        self.name = name
        self._path = path
        self._clock = clock
        self._revision: str | None = None  # the hash of the content last parsed
        self._positions: tuple[Position, ...] = ()
        self._rates: dict[tuple[str, str], Decimal] = {}
        self._reported: tuple[ReportedTotal, ...] = ()

    async def fetch(self) -> VenueReport:
        now = self._clock()
        try:
            raw = await anyio.Path(self._path).read_bytes()
        except OSError as exc:
            raise VenueDataError(
                self.name, f"cannot read {self._path.name}: {exc.strerror}"
            ) from None
        # size and mtime can both survive an edit (same length within the clock's granularity,
        # a copy that keeps the old mtime): only the content tells
        revision = hashlib.blake2b(raw, digest_size=16).hexdigest()
        if revision != self._revision:
            parsed = self.parse(raw)
            self._positions = tuple(self._position(line) for line in parsed.positions)
            self._rates = {(r.base, r.quote): r.rate for r in parsed.quotes}
            self._reported = tuple(
                ReportedTotal(r.account, r.amount, r.currency, r.label) for r in parsed.reported
            )
            self._revision = revision
        return VenueReport(
            self.name, now, self._positions, revision=revision, reported=self._reported
        )

    async def observe(self, base: str, quote: str) -> Observation:
        try:
            return Observation(self._rates[(base, quote)], self._clock())
        except KeyError:
            raise LookupError(f"{self._path.name} has no rate for {base}/{quote}") from None

    def parse(self, raw: bytes) -> ManualFile:
        """The file's content, checked.

        Raises:
            VenueDataError: not a valid file, naming what is wrong.
        """
        data = self._decode(raw)
        if isinstance(data, dict) and "positions" not in data:
            # an editor's half-saved or truncated-to-nothing file must not read as "holds nothing"
            say_so = '{"positions": []}' if self._is_json else "positions = []"
            raise self._invalid(
                f"no positions (an empty file is not believed; write `{say_so}` to say the venue "
                "holds nothing)"
            )
        try:
            return ManualFile.model_validate(data)
        except ValidationError as exc:
            raise self._invalid("; ".join(describe_errors(exc))) from None

    @property
    def _is_json(self) -> bool:
        return self._path.suffix == ".json"

    def _decode(self, raw: bytes) -> object:
        """The file's document; a blank JSON file reads as `{}`, like a blank TOML file."""
        try:
            if self._is_json:
                return json.loads(raw, parse_float=Decimal) if raw.strip() else {}
            return tomllib.loads(raw.decode(), parse_float=Decimal)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors too
            raise self._invalid(
                f"not valid {self._path.suffix.lstrip('.') or 'toml'}: {exc}"
            ) from None

    def _invalid(self, reason: str) -> VenueDataError:
        return VenueDataError(self.name, f"{self._path.name}: {reason}")

    def _position(self, line: _Line) -> Position:
        details: dict[str, str | Decimal] = {}
        if line.unrealized_pnl is not None and line.pnl_currency is not None:
            details = {"unrealized_pnl": line.unrealized_pnl, "pnl_currency": line.pnl_currency}
        asset = Asset(line.asset, line.chain, line.contract)
        return Position(self.name, line.account, asset, line.amount, line.kind, details)
