"""Per-exchange field mappings: an exchange's raw answers (ccxt's `info`) -> position lines.

The mechanics (ccxt instances, requests, errors, shutdown) live once, in `venues/exchange.py`;
each module here only says which raw field becomes which line, for one exchange:

| module       | account types                                                               |
|--------------|-----------------------------------------------------------------------------|
| `binance`    | spot, cross_margin, isolated_margin, usdm, portfolio_margin, funding, coinm |
| `bybit`      | unified, funding                                                            |
| `okx`        | trading, funding                                                            |

This module holds what they share: `Lines` (a builder of one account's lines and reported
totals, and of the accounts one answer holds: `sub_account`) and `Perp` (one open perpetual or
dated future, turned into a hedge line and two legs).

**Contracts** (`perp`): each open perpetual or dated future is a hedge line and two
`unrealized_pnl` legs valued at the contract's own mark; the account's total is reconciled
with its uPnL at the exchange's marks of the read, and each position's size is checked against
the exchange's notional (`perp` docstring).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from equity_daemon.model import Asset, Position, PositionKind, ReportedTotal, decimal_str
from equity_daemon.venues.exchanges.fields import ZERO, BadField, number, optional, rows, text
from equity_daemon.venues.exchanges.perp import (
    NOTIONAL_TOLERANCE,
    Perp,
    check_notional,
    contract_of,
    contract_symbol,
    market_ref,
)

__all__ = [
    "EVERY_COIN",
    "NOTIONAL_TOLERANCE",
    "ZERO",
    "BadField",
    "Lines",
    "Perp",
    "TransferFields",
    "check_notional",
    "contract_of",
    "contract_symbol",
    "market_ref",
    "number",
    "optional",
    "rows",
    "text",
    "transfers",
]

# `PUSH_KEEPS_TOTAL` of an account whose every total is in its own coin, moved by that coin's push
EVERY_COIN = "*"


class Lines:
    """The lines and reported totals of one account of one venue, built field by field."""

    def __init__(self, venue: str, account: str, exchange: str | None = None) -> None:
        self.venue = venue
        self.account = account
        self.exchange = exchange or venue  # names the contracts (`contract_symbol`)
        self.positions: list[Position] = []
        self.reported: list[ReportedTotal] = []
        # the perpetuals' uPnL at the marks their answers carried, by currency; None: unknown
        self._positions_pnl: dict[str, Decimal] | None = {}
        self._sub_accounts: dict[str, Lines] = {}

    def sub_account(self, account: str) -> Lines:
        """The builder of another account of the same answer (Binance COIN-M: one per margin
        coin), whose lines and totals are this one's too: one per account, so that the uPnL of
        its perpetuals joins its own total's `positions_pnl`."""
        sub = self._sub_accounts.get(account)
        if sub is None:
            sub = self._sub_accounts[account] = Lines(self.venue, account, self.exchange)
            sub.positions, sub.reported = self.positions, self.reported  # the same lists
            if self._positions_pnl is None:
                sub.split_moment()
        return sub

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
        self._attach_positions_pnl()

    def perp(self, perp: Perp, line_id: str | None = None) -> None:
        """An open contract: its hedge line (excluded) and its two uPnL legs, under one
        `line_id`: `symbol:position_side` unless the mapping names it (OKX, whose symbol and
        side do not tell a cross and an isolated position apart). Its uPnL at the mark its
        answer carried joins the account's `positions_pnl`."""
        if perp.contracts == 0:
            return
        line_id = line_id or f"{perp.symbol}:{perp.position_side}"
        contract = contract_symbol(self.exchange, perp.symbol)
        base, quote = perp.mark_edge(contract)
        details = perp.details() | {
            "exchange": self.exchange,
            "contract_asset": contract,
            "mark_base": base,
            "mark_quote": quote,
        }
        self.add(PositionKind.HEDGE, perp.base, perp.base_size, line_id, details)
        for symbol, amount in perp.legs(contract):
            leg = {"contract_asset": contract}
            self.add(PositionKind.UNREALIZED_PNL, symbol, amount, line_id, leg)
        if self._positions_pnl is not None:
            if perp.mark_price is None:
                self._positions_pnl = None
            else:
                currency = perp.pnl_currency
                found = self._positions_pnl.get(currency, ZERO)
                self._positions_pnl[currency] = found + perp.pnl_at(perp.mark_price)
        self._attach_positions_pnl()

    def exclude_pnl(self, currency: str, amount: Decimal) -> None:
        """Take `amount` of a position's uPnL out of the last total's `unrealized_pnl`: the
        position's own lines hold it (OKX's isolated `MARGIN` positions)."""
        if self.reported:
            total = self.reported[-1]
            pnl = (*(total.unrealized_pnl or ()), (currency, -amount))
            self.reported[-1] = replace(total, unrealized_pnl=pnl)

    def split_moment(self) -> None:
        """The totals and the positions are no longer of one moment (a push patched one of
        them): the positions' uPnL at their marks is not compared with the totals'."""
        self._positions_pnl = None
        self._attach_positions_pnl()
        for sub in self._sub_accounts.values():
            sub.split_moment()

    def _attach_positions_pnl(self) -> None:
        """Each of this account's totals with its perpetuals' uPnL (in place: a sub-account
        shares the list)."""
        found = self._positions_pnl
        pnl = None if found is None else tuple(sorted(found.items()))
        self.reported[:] = [
            replace(total, positions_pnl=pnl)
            if total.unrealized_pnl is not None and total.account == self.account
            else total
            for total in self.reported
        ]


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
