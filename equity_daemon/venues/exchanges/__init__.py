"""Per-exchange field mappings: an exchange's raw answers (ccxt's `info`) -> position lines.

The mechanics (ccxt instances, requests, errors, shutdown) live once, in `venues/exchange.py`;
each module here only says which raw field becomes which line, for one exchange:

| module       | account types                                                              |
|--------------|----------------------------------------------------------------------------|
| `binance`    | spot, cross_margin, isolated_margin, usdm, portfolio_margin, funding       |
| `bybit`      | unified, funding                                                           |
| `okx`        | trading, funding                                                           |

This module holds what they share: `Lines` (a builder of one account's lines and reported
totals) and `Perp` (one open perpetual, turned into a hedge line and its two equity legs).

**Both legs at one price.** An open perpetual's unrealised PnL is not taken from the exchange's
figure (valued at the exchange's mark, at the moment of the fetch). It enters equity as two
lines whose *amounts* do not depend on any price, valued by the calculator at the book's own
prices of the same cycle as the spot leg it hedges:

| contract | line 1 (asset)            | line 2 (asset, opposite sign) | sum at price P        |
|----------|---------------------------|-------------------------------|-----------------------|
| linear   | `size` base (− for short) | `size × entry` settle coin    | `size × (P − entry)`  |
| inverse  | `Q / entry` base coin     | `Q` USD (contracts × USD size)| `Q × (P / entry − 1)` |

which is exactly the uPnL at price P. The exchange's own uPnL stays in the hedge line's
details and in the account's reported total (reconciliation), never in equity.

**Reconciliation, like with like.** An account with perpetuals reports its total with the uPnL
the same answer holds (`Lines.total(..., unrealized_pnl=...)`: Binance `totalUnrealizedProfit`,
Bybit coin `unrealisedPnl`, OKX coin `upl`). The calculator then compares the total without
that uPnL with the account's lines without the legs (the legs share the hedge line's id): the
exchange's total is read at its mark at one moment, our legs are valued at the book's price
now, and on a leveraged account any difference between the two is many times the equity.
What is left is the wallet, which no perpetual's price moves. A coin other than the total's
currency is still valued at the exchange's price in its total and at the book's in ours: that
difference is the coin's share of the account times the price difference, never leveraged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from equity_daemon.model import Asset, Position, PositionKind, ReportedTotal, decimal_str

ZERO = Decimal(0)
# `PUSH_KEEPS_TOTAL` of an account whose every total is in its own coin, moved by that coin's push
EVERY_COIN = "*"


class BadField(ValueError):
    """Raised when a raw answer lacks a field or holds a non-number; the message names it."""


def number(row: Any, key: str, *, default: Decimal | None = None) -> Decimal:
    """`row[key]` as a Decimal, parsed from the exchange's string (never through a float).

    An empty string reads as `default` when one is given (exchanges send `""` for "none").
    """
    if not isinstance(row, Mapping):
        raise BadField(f"expected an object holding {key}, got {type(row).__name__}")
    raw = row.get(key)
    if raw is None or raw == "":
        if default is not None:
            return default
        raise BadField(f"no {key}")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise BadField(f"{key} is not a decimal string")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise BadField(f"{key} is not a number") from None
    if not value.is_finite():
        raise BadField(f"{key} is {value}")
    return value


def text(row: Any, key: str) -> str:
    """`row[key]` as a non-empty string."""
    raw = row.get(key) if isinstance(row, Mapping) else None
    if not isinstance(raw, str) or not raw:
        raise BadField(f"no {key}")
    return raw


def rows(node: Any, what: str) -> list[Mapping[str, Any]]:
    """`node` as a list of objects."""
    if not isinstance(node, list) or not all(isinstance(r, Mapping) for r in node):
        raise BadField(f"{what} is not a list of objects")
    return node


class Lines:
    """The lines and reported totals of one account of one venue, built field by field."""

    def __init__(self, venue: str, account: str) -> None:
        self.venue = venue
        self.account = account
        self.positions: list[Position] = []
        self.reported: list[ReportedTotal] = []

    def add(
        self,
        kind: PositionKind,
        symbol: str,
        amount: Decimal,
        line_id: str | None = None,
        details: Mapping[str, str | Decimal] | None = None,
    ) -> None:
        """One line; zero amounts are left out (exchanges list hundreds of empty coins)."""
        if amount == 0:
            return
        self.positions.append(
            Position(
                self.venue, self.account, Asset(symbol), amount, kind, dict(details or {}), line_id
            )
        )

    def asset(self, symbol: str, amount: Decimal, line_id: str | None = None) -> None:
        """A holding; a negative one is debt (the calculator subtracts it)."""
        self.add(PositionKind.ASSET, symbol, amount, line_id)

    def debt(self, symbol: str, amount: Decimal, line_id: str | None = None) -> None:
        """A borrowed amount or accrued interest, as the positive amount owed."""
        if amount < 0:
            raise BadField(f"{symbol} debt is negative ({decimal_str(amount)})")
        self.add(PositionKind.DEBT, symbol, amount, line_id)

    def total(
        self,
        amount: Decimal,
        currency: str,
        label: str,
        unrealized_pnl: Sequence[tuple[str, Decimal]] | None = None,
        uncounted: Iterable[str] = (),
    ) -> None:
        """What the exchange itself says this account is worth (reconciliation), the
        perpetuals' uPnL inside that figure, by currency, read from the same answer, and the
        assets of the account it leaves out (`ReportedTotal.uncounted`)."""
        pnl = None if unrealized_pnl is None else tuple(unrealized_pnl)
        self.reported.append(
            ReportedTotal(
                self.account,
                amount,
                currency,
                label,
                uncounted=frozenset(uncounted),
                unrealized_pnl=pnl,
            )
        )

    def perp(self, perp: Perp, line_id: str | None = None) -> None:
        """An open perpetual: its hedge line (excluded) and its two equity legs, under one
        `line_id`: `symbol:position_side` unless the mapping names it (OKX, whose symbol and
        side do not tell a cross and an isolated position apart)."""
        if perp.contracts == 0:
            return
        line_id = line_id or f"{perp.symbol}:{perp.position_side}"
        self.add(PositionKind.HEDGE, perp.base, perp.base_size, line_id, perp.details())
        for symbol, amount in perp.legs():
            self.asset(symbol, amount, line_id)


@dataclass(frozen=True, slots=True)
class Perp:
    """One open perpetual as an exchange reports it.

    `contracts` is unsigned, `side` says `long` or `short`; `contract_size` is in base units per
    contract for a linear contract, in USD per contract for an inverse one. `position_side`
    keeps apart the long and short positions of one symbol in hedge mode (`BOTH`, `LONG`…).
    """

    symbol: str
    base: str
    settle: str
    side: str
    contracts: Decimal
    contract_size: Decimal
    entry_price: Decimal
    mark_price: Decimal | None
    unrealized_pnl: Decimal
    liquidation_price: Decimal | None = None
    leverage: Decimal | None = None
    margin_mode: str | None = None
    position_side: str = "BOTH"
    inverse: bool = False

    @property
    def sign(self) -> Decimal:
        return Decimal(1) if self.side == "long" else Decimal(-1)

    @property
    def usd(self) -> Decimal:
        """An inverse contract's size in USD."""
        return self.contracts * self.contract_size

    @property
    def base_size(self) -> Decimal:
        """Signed exposure in base units (an inverse contract's at its mark, else its entry)."""
        if not self.inverse:
            return self.sign * self.contracts * self.contract_size
        price = self.mark_price or self.entry_price
        return self.sign * self.usd / price if price else ZERO

    def legs(self) -> tuple[tuple[str, Decimal], tuple[str, Decimal]]:
        """The two equity lines whose value at any price P is the uPnL at P (module table)."""
        if not self.inverse:
            size = self.base_size
            return (self.base, size), (self.settle, -size * self.entry_price)
        if not self.entry_price:
            raise BadField(f"{self.symbol} has no entry price")
        return (self.base, self.sign * self.usd / self.entry_price), ("USD", -self.sign * self.usd)

    @property
    def notional(self) -> Decimal | None:
        """In the settle currency (linear: quote units; inverse: USD)."""
        if self.inverse:
            return self.usd
        return None if self.mark_price is None else abs(self.base_size) * self.mark_price

    def details(self) -> dict[str, str | Decimal]:
        found: dict[str, Decimal | str | None] = {
            "symbol": self.symbol,
            "side": self.side,
            "contracts": self.contracts,
            "contract_size": self.contract_size,
            "notional": self.notional,
            "entry_price": self.entry_price,
            "mark_price": self.mark_price,
            "unrealized_pnl": self.unrealized_pnl,
            "pnl_currency": self.base if self.inverse else self.settle,
            "liquidation_price": self.liquidation_price,
            "leverage": self.leverage,
            "margin_mode": self.margin_mode,
            "settle": self.settle,
            "contract": "inverse" if self.inverse else "linear",
        }
        return {k: v for k, v in found.items() if v is not None}


@dataclass(frozen=True, slots=True)
class TransferFields:
    """Where a deposit or withdrawal record keeps what `transfers` reads, and which of the
    exchange's own raw status codes mean "not yet credited" (deposit) or "not yet completed"
    (withdrawal). ccxt's unified status is not used: it files credited deposits as pending on
    OKX and credited-but-locked ones as ok on Binance (venue-pitfalls 26)."""

    asset: str
    amount: str
    status: str
    txid: str
    id: str
    in_transit: frozenset[str]


def transfers(lines: Lines, direction: str, records: Sequence[Any], fields: TransferFields) -> None:
    """`in_transit` lines for the records still under way, one per transaction id.

    A record is keyed by its transaction id (its exchange id while it has none). Records that
    share a key are one transfer: if any of them is credited (or completed), none of them is in
    transit, so a deposit credited to the balance is never also counted as arriving.
    """
    pending: dict[str, tuple[str, Decimal]] = {}
    settled: set[str] = set()
    for record in rows(list(records), f"{direction} records"):
        txid = record.get(fields.txid)
        key = str(txid) if txid else f"id:{record.get(fields.id)}"
        if str(record.get(fields.status)) in fields.in_transit:
            pending[key] = (text(record, fields.asset), abs(number(record, fields.amount)))
        else:
            settled.add(key)
    for key, (asset, amount) in sorted(pending.items()):
        if key not in settled:
            details = {"direction": direction, "txid": key}
            lines.add(PositionKind.IN_TRANSIT, asset, amount, f"{direction}:{key}", details)


def contract_of(market: Mapping[str, Any]) -> tuple[str, str, str, bool, Decimal]:
    """What only ccxt's market metadata knows about a contract (none of it is a balance):
    unified symbol, base, settle coin, inverse or not, and contract size."""
    symbol, base, settle = text(market, "symbol"), text(market, "base"), text(market, "settle")
    size = market.get("contractSize")
    contract_size = Decimal(str(size)) if size not in (None, "") else Decimal(1)
    return symbol, base, settle, bool(market.get("inverse")), contract_size


def optional(row: Any, key: str) -> Decimal | None:
    """A number the exchange may leave empty (`""`, `"0"` for "no liquidation price")."""
    value = number(row, key, default=ZERO)
    return None if value == 0 else value
