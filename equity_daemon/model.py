"""Frozen value types shared by venues, the calculator, the monitor and history.

Money is `Decimal` from the wire to the snapshot.

Every value in a `Snapshot` is in the book's share-class currency (USDT or ETH), never in USD.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    # prices and pegs import this module; a snapshot only carries their results
    from equity_daemon.pegs import PegCheck
    from equity_daemon.prices import QuoteFailure


class ShareClass(enum.StrEnum):
    """The currency a book's equity is measured in."""

    USDT = "USDT"
    ETH = "ETH"


class PositionKind(enum.StrEnum):
    """How a position enters (or stays out of) equity.

    | kind         | in equity | example                                          |
    |--------------|-----------|--------------------------------------------------|
    | `asset`          | +value    | wstETH in a wallet, a futures wallet balance   |
    | `debt`           | -value    | Aave variableDebtWETH, a CEX margin loan       |
    | `unrealized_pnl` | +value    | a perpetual's leg: its uPnL at its own mark    |
    | `locked`         | excluded  | ETH waiting in an EtherFi withdrawal request   |
    | `in_transit`     | excluded  | a transfer between venues not yet credited     |
    | `hedge`          | excluded  | a perpetual futures position (its notional)    |

    An `asset` with a negative amount is debt (portfolio-margin balances go negative). An
    `unrealized_pnl` line is neither held nor owed, whatever its sign: it is in equity but in
    neither `total_assets` nor `total_debt` (`Snapshot.unrealized_pnl`). An open perpetual is
    two of them sharing its hedge line's `line_id` (`venues/exchanges`), valued together or not
    at all; `equity_by_asset` shows them under the contract (`details["contract_asset"]`).
    """

    ASSET = "asset"
    DEBT = "debt"
    UNREALIZED_PNL = "unrealized_pnl"
    LOCKED = "locked"
    IN_TRANSIT = "in_transit"
    HEDGE = "hedge"


EXCLUDED_KINDS = frozenset({PositionKind.LOCKED, PositionKind.IN_TRANSIT, PositionKind.HEDGE})


@dataclass(frozen=True, slots=True)
class Asset:
    """An asset's identity. Prices are keyed by `symbol`: USDT on two chains is one asset."""

    symbol: str
    chain: str | None = None
    contract: str | None = None

    def __str__(self) -> str:
        return self.symbol if self.chain is None else f"{self.symbol}@{self.chain}"


@dataclass(frozen=True, slots=True)
class Position:
    """One balance line of one venue account.

    `details` carries what a kind needs beyond the amount; a `hedge` uses the keys
    `unrealized_pnl` and `pnl_currency` (and may add `entry_price`, `mark_price`).

    `line_id` keeps apart lines a venue says are separate although they share account, asset
    and kind (two isolated-margin positions, two withdrawal requests); without one, two such
    lines in one report are a malformed report.
    """

    venue: str
    account: str
    asset: Asset
    amount: Decimal
    kind: PositionKind = PositionKind.ASSET
    details: Mapping[str, str | Decimal] = field(default_factory=dict)
    line_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReportedTotal:
    """What a venue itself says one account is worth, in the currency it says it in.

    Bybit `totalEquity` (USD), OKX `totalEq` (USD), Binance futures `totalMarginBalance`, Binance
    margin `totalNetAssetOfBtc` (BTC), Aave `totalCollateralBase - totalDebtBase` (USD): the
    calculator values the account's own lines and compares (`Reconciliation`). `label` names the
    venue's field, for the operator.

    `computed_at_venue_prices`, when the venue gives its own prices (Aave's oracle), is the
    account's lines as we read them valued at those prices, in `currency`: the calculator then
    compares it with `amount` (like with like, both converted at the same price of `currency`)
    instead of valuing the lines at the book's prices, so a difference means the balances or
    the venue's figure disagree, not the two price sets.

    `uncounted` names assets whose asset lines in the account the venue's figure leaves out
    (Aave supplies not enabled as collateral, Binance USDⓈ-M's other wallets in single-asset
    mode): they are equity, but not compared, and neither is the uPnL of `positions_pnl` in
    them (a contract settled in a wallet the figure leaves out).

    `unrealized_pnl`, when the account holds perpetuals, is the venue's own unrealised PnL
    inside `amount`, read from the same answer as `amount` (so of the same moment), as amounts
    by currency. `positions_pnl` is the uPnL of the positions the venue read, as our legs value
    them at the mark each position's own answer gave (by currency): the same moment again, so
    the two differ only by what the positions read do not explain (a position never asked for,
    PnL already settled into the wallet). None when some position came without a mark or the
    total and the positions are not of one moment (a push patched either). The calculator then
    compares `amount` with the account's lines whose legs are replaced by `positions_pnl`: both
    sides at the venue's marks of its read, so a price move since is no difference, and the
    positions' share of any difference is named (`Reconciliation.unexplained_pnl`).
    """

    account: str
    amount: Decimal
    currency: str
    label: str
    computed_at_venue_prices: Decimal | None = None
    uncounted: frozenset[str] = frozenset()
    unrealized_pnl: tuple[tuple[str, Decimal], ...] | None = None
    positions_pnl: tuple[tuple[str, Decimal], ...] | None = None


@dataclass(frozen=True, slots=True)
class HealthFactor:
    """A lending account's health factor as its protocol reports it (Aave `getUserAccountData`).

    `value` is `Decimal("Infinity")` for an account without debt (Aave answers uint256 max).
    `collateral` and `debt` are the protocol's own totals (`totalCollateralBase`,
    `totalDebtBase`) in its base `currency` (USD on Ethereum), when it gives them.
    """

    market: str
    address: str
    value: Decimal
    collateral: Decimal | None = None
    debt: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class VenueReport:
    """What one fetch of a venue returned: its positions, or the reason it failed.

    `fetched_at` is our clock when the answer arrived; `as_of` is the venue's own time for the
    data (an exchange's event time, a block's timestamp) where it gives one. The age of the data
    is measured from `data_time`.

    `revision` is an opaque token that changes whenever anything the venue serves changed,
    positions or quotes; the store wakes the calculator when it changes. None: the venue keeps
    no such token.

    `health` carries lending accounts' health factors (exported as metrics, not valued).

    `refused`: the fetch failed because the venue refused our key or a permission
    (`VenueAuthError`); retrying does not fix that, so the monitor says so (`venue_refused`).
    """

    venue: str
    fetched_at: datetime
    positions: tuple[Position, ...] = ()
    block_number: int | None = None
    error: str | None = None
    as_of: datetime | None = None
    revision: str | None = None
    reported: tuple[ReportedTotal, ...] = ()
    health: tuple[HealthFactor, ...] = ()
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def data_time(self) -> datetime:
        return self.fetched_at if self.as_of is None else self.as_of

    @classmethod
    def failed(cls, venue: str, at: datetime, reason: str, *, refused: bool = False) -> VenueReport:
        return cls(venue=venue, fetched_at=at, error=reason, refused=refused)


@dataclass(frozen=True, slots=True)
class VenueState:
    """A venue's latest report and its last good one (the same object when the latest succeeded).

    `note` says how the runtime follows the venue when that is worth knowing
    (`stream silent for 40s; polling`). `followed_since` is when this process began following
    the venue (None: unknown): one that has not delivered a good report yet is awaited for its
    max age from then, as a failing venue is, before it counts as an outage.
    """

    latest: VenueReport
    last_good: VenueReport | None
    note: str | None = None
    followed_since: datetime | None = None

    @property
    def venue(self) -> str:
        return self.latest.venue


class ProblemKind(enum.StrEnum):
    """Why a snapshot is incomplete.

    `unpriced`: an asset in equity has no price at all, now or remembered; its lines are left out
    of equity (`Snapshot.unvalued`). `stale_price`: it has no fresh price and is valued at the
    last good one, whose age the problem gives. `suspect_price`: its sources disagree; it is
    valued at the last price they agreed on, or, with none, left out of equity like an unpriced
    one (`Snapshot.equity_candidates` shows what each side would make the equity).
    `unreported_venue`: a venue has not delivered a good report since the daemon started, for
    less than its max age (past it, it is a `failed_venue`); its holdings are unknown, and so
    is the book's equity (`Snapshot.unreported`). The monitor raises no event for it alone: a
    restart during a short outage is not an outage of the book.
    """

    UNPRICED = "unpriced"
    STALE_PRICE = "stale_price"
    STALE_VENUE = "stale_venue"
    FAILED_VENUE = "failed_venue"
    SUSPECT_PRICE = "suspect_price"
    CYCLE_FAILED = "cycle_failed"
    UNREPORTED_VENUE = "unreported_venue"


@dataclass(frozen=True, slots=True)
class Problem:
    """One named reason a snapshot cannot be trusted; `subject` is an asset or a venue."""

    kind: ProblemKind
    subject: str
    detail: str
    age: timedelta | None = None


@dataclass(frozen=True, slots=True)
class PriceUsed:
    """The share-class price of one asset and how it was reached.

    `path` runs from the asset to the share class (`wstETH, stETH, ETH, USDT`), with one source
    per hop; `as_of` is the time of the oldest quote on the path.

    `suspect`: two sources of an edge on the path disagree. `fallback`: an edge on the path was
    quoted by a fallback source, the preferred one having no fresh quote. `stale`: no fresh path
    existed, and this is the last good price of an earlier snapshot (its `as_of` tells how old).
    Both `suspect` and `stale`: the sources disagree now, and this is the last price they
    agreed on.
    """

    asset: str
    price: Decimal
    path: tuple[str, ...]
    sources: tuple[str, ...]
    as_of: datetime
    suspect: bool = False
    fallback: bool = False
    stale: bool = False


@dataclass(frozen=True, slots=True)
class ExcludedLine:
    """A position reported beside equity but not in it. Values are `None` when unpriced.

    A hedge's `unrealized_pnl` is the one in equity, its legs at its contract's mark, in the
    share class (the exchange's own figure of its read for a hedge without legs). `details` is
    what the venue says about the line, as text. A hedge: `symbol`, `side`, `contracts`,
    `contract_size`, `notional` (in the settle currency), `entry_price`, `settled_price`,
    `mark_price` (of the read), `unrealized_pnl` (the exchange's own figure),
    `liquidation_price`, `leverage`, `margin_mode`, `settle`, `contract_asset` (the priced leg's
    asset). An EtherFi withdrawal request (`locked`): `request_id`, `contract`, `finalized`,
    `valid` (`line_notes.excluded_note` says it in words).
    """

    venue: str
    account: str
    asset: str
    kind: PositionKind
    amount: Decimal
    value: Decimal | None
    side: str | None = None
    unrealized_pnl: Decimal | None = None
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PositionLine:
    """A position a snapshot names without valuing it: an ignored asset, or an unvalued line."""

    venue: str
    account: str
    asset: str
    kind: PositionKind
    amount: Decimal

    @classmethod
    def of(cls, position: Position) -> PositionLine:
        return cls(
            position.venue, position.account, position.asset.symbol, position.kind, position.amount
        )


@dataclass(frozen=True, slots=True)
class EquityCandidate:
    """What the equity would be if one side of every disagreement on the lines left out were
    right (`sources`: that side's sources). Shown beside an unknown equity, never as it."""

    sources: tuple[str, ...]
    equity: Decimal


@dataclass(frozen=True, slots=True)
class VenueSummary:
    """How fresh a venue's numbers in a snapshot are."""

    venue: str
    status: str
    fetched_at: datetime | None
    age: timedelta | None
    block_number: int | None
    error: str | None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """One account's equity as we compute it, beside the total the venue reports for it.

    Both in the share class. `reported` is None when the venue's currency has no price; then so
    are `difference` (computed - reported) and `ratio` (difference / |reported|). `computed` is
    the account's lines at the venue's own prices when the venue gave them
    (`ReportedTotal.computed_at_venue_prices`), else at the book's.

    `unrealized_pnl` (None: the account's total holds no perpetuals' uPnL) is the venue's own
    uPnL of the account's perpetuals, in the share class, inside `reported`. `computed` then
    holds the account's lines with the perpetuals' legs valued at the venue's marks of its read
    (`ReportedTotal.positions_pnl`), and `unexplained_pnl` is the venue's uPnL less ours at
    those marks: what the positions read do not explain (a position never asked for, PnL counted
    twice). Without `positions_pnl` (a position without a mark, a pushed total), `computed`
    takes the venue's own uPnL in place of the legs, so only the wallet is compared, and
    `unexplained_pnl` is None.
    """

    venue: str
    account: str
    label: str
    computed: Decimal
    reported: Decimal | None
    reported_amount: Decimal
    reported_currency: str
    unrealized_pnl: Decimal | None = None
    unexplained_pnl: Decimal | None = None

    @property
    def difference(self) -> Decimal | None:
        return None if self.reported is None else self.computed - self.reported

    @property
    def ratio(self) -> Decimal | None:
        if self.reported is None or self.reported == 0:
            return None
        return (self.computed - self.reported) / abs(self.reported)

    @property
    def key(self) -> str:
        return f"{self.venue}/{self.account}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A book's equity at one moment, and everything needed to judge it.

    `complete` is false whenever `problems` is not empty; an incomplete snapshot still carries the
    best estimate (last good venue reports, last good prices marked `stale`), but nothing acts on
    it.

    `equity` is `total_assets - total_debt + unrealized_pnl`: `total_assets` and `total_debt`
    hold what is held and what is owed, and `unrealized_pnl` the open perpetuals' uPnL, each
    valued at its own contract's mark (`PositionKind.UNREALIZED_PNL` lines).

    **Unknown is None.** The equity is unknown when a venue has never delivered a good report
    (`unreported`) or a line in equity has no price anyone vouches for (`unvalued`: no price at
    all, or sources that disagree and never agreed; `equity_candidates` then shows each side's
    figure when that is the only gap). `equity`, `total_assets`, `total_debt` and
    `unrealized_pnl` are then None, and so is every breakdown entry the gap reaches: the venues
    and accounts of the lines left out, an unreported venue, and every asset while a venue is
    unreported (it may hold any). Such a snapshot is always incomplete: a sum of what could be
    valued is never shown as the equity. Every line value is rounded to
    `calculator.VALUE_QUANTUM` before it is summed, so the known `equity_by_venue` and
    `equity_by_asset` each add up to `equity` exactly, and each venue's `equity_by_account` to
    its `equity_by_venue`.

    `ignored` lists the lines of assets the book is configured to ignore (dust, airdrops): never
    in equity, never a problem. `quote_failures` names the sources that gave no usable quote
    (a fallback may have covered them; they make nothing incomplete by themselves).
    `suspect_edges` are the edges whose sources disagree (the next cycle needs them).
    `reconciliations` compare accounts with the totals their venues report; `pegs` compare
    pegged assets' market rates with their protocol values.
    """

    book: str
    share_class: ShareClass
    at: datetime
    sequence: int
    total_assets: Decimal | None
    total_debt: Decimal | None
    equity: Decimal | None
    equity_by_venue: Mapping[str, Decimal | None]
    equity_by_asset: Mapping[str, Decimal | None]
    excluded: tuple[ExcludedLine, ...]
    prices: tuple[PriceUsed, ...]
    venues: tuple[VenueSummary, ...]
    problems: tuple[Problem, ...]
    unvalued: tuple[PositionLine, ...] = ()
    ignored: tuple[PositionLine, ...] = ()
    quote_failures: tuple[QuoteFailure, ...] = ()
    suspect_edges: tuple[str, ...] = ()
    reconciliations: tuple[Reconciliation, ...] = ()
    pegs: tuple[PegCheck, ...] = ()
    # by venue, then account: a chain venue's accounts name the protocol (`aave-core:0x…`)
    equity_by_account: Mapping[str, Mapping[str, Decimal | None]] = field(default_factory=dict)
    unrealized_pnl: Decimal | None = Decimal(0)
    unreported: tuple[str, ...] = ()  # venues with no good report yet: holdings unknown
    equity_candidates: tuple[EquityCandidate, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.problems

    @property
    def equity_is_partial(self) -> bool:
        """True when the equity is unknown (None): see `unknown_because`."""
        return self.equity is None

    def unknown_because(self) -> list[str]:
        """Why the equity is unknown, one phrase per reason (none when it is known)."""
        if self.equity is not None:
            return []
        reasons = [
            f"{venue} has not reported since the daemon started" for venue in self.unreported
        ]
        disputed = {p.subject for p in self.problems if p.kind is ProblemKind.SUSPECT_PRICE}
        unpriced = {p.subject for p in self.problems if p.kind is ProblemKind.UNPRICED}
        # a perpetual's leg left out with its partner has a price: its partner's is the reason
        for asset in sorted({line.asset for line in self.unvalued}):
            if asset in disputed:
                reasons.append(f"{asset} has no price its sources agree on")
            elif asset in unpriced:
                reasons.append(f"{asset} has no price")
        return reasons

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready document; every money value is a decimal string."""
        return {
            "book": self.book,
            "share_class": self.share_class.value,
            "at": self.at.isoformat(),
            "sequence": self.sequence,
            "complete": self.complete,
            "equity_is_partial": self.equity_is_partial,
            "equity_unknown_because": self.unknown_because(),
            "total_assets": decimal_str_or_none(self.total_assets),
            "total_debt": decimal_str_or_none(self.total_debt),
            "unrealized_pnl": decimal_str_or_none(self.unrealized_pnl),
            "equity": decimal_str_or_none(self.equity),
            "equity_candidates": [
                {"sources": list(c.sources), "equity": decimal_str(c.equity)}
                for c in self.equity_candidates
            ],
            "equity_by_venue": _breakdown_json(self.equity_by_venue),
            "equity_by_asset": _breakdown_json(self.equity_by_asset),
            "equity_by_account": {
                venue: _breakdown_json(accounts)
                for venue, accounts in self.equity_by_account.items()
            },
            "unreported": list(self.unreported),
            "unvalued": [_line_json(line) for line in self.unvalued],
            "ignored": [_line_json(line) for line in self.ignored],
            "excluded": [_excluded_json(line) for line in self.excluded],
            "prices": [_price_json(price, self.at) for price in self.prices],
            "suspect_edges": list(self.suspect_edges),
            "quote_failures": [
                {"edge": f.edge, "source": f.source, "reason": f.reason}
                for f in self.quote_failures
            ],
            "venues": [_venue_json(venue) for venue in self.venues],
            "problems": [_problem_json(problem) for problem in self.problems],
            "reconciliations": [_reconciliation_json(r) for r in self.reconciliations],
            "pegs": [_peg_json(peg) for peg in self.pegs],
        }


class EquityPoint(NamedTuple):
    """A book's equity at one recorded moment (from history, for charts); None: unknown."""

    at: datetime
    equity: Decimal | None
    complete: bool


def decimal_str(value: Decimal) -> str:
    """Plain notation, no exponent, no trailing zeros: `Decimal("1.50E+3")` -> `"1500"`."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def decimal_str_or_none(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(value)


def _breakdown_json(values: Mapping[str, Decimal | None]) -> dict[str, str | None]:
    return {key: decimal_str_or_none(value) for key, value in values.items()}


def _seconds(age: timedelta | None) -> float | None:
    return None if age is None else round(age.total_seconds(), 3)


def _line_json(line: PositionLine | ExcludedLine) -> dict[str, Any]:
    return {
        "venue": line.venue,
        "account": line.account,
        "asset": line.asset,
        "kind": line.kind.value,
        "amount": decimal_str(line.amount),
    }


def _excluded_json(line: ExcludedLine) -> dict[str, Any]:
    return {
        **_line_json(line),
        "value": decimal_str_or_none(line.value),
        "side": line.side,
        "unrealized_pnl": decimal_str_or_none(line.unrealized_pnl),
        "details": dict(line.details),
    }


def _price_json(price: PriceUsed, now: datetime) -> dict[str, Any]:
    return {
        "asset": price.asset,
        "price": decimal_str(price.price),
        "path": list(price.path),
        "sources": list(price.sources),
        "as_of": price.as_of.isoformat(),
        "age_seconds": _seconds(now - price.as_of),
        "suspect": price.suspect,
        "fallback": price.fallback,
        "stale": price.stale,
    }


def _venue_json(venue: VenueSummary) -> dict[str, Any]:
    return {
        "venue": venue.venue,
        "status": venue.status,
        "fetched_at": None if venue.fetched_at is None else venue.fetched_at.isoformat(),
        "age_seconds": _seconds(venue.age),
        "block_number": venue.block_number,
        "error": venue.error,
        "note": venue.note,
    }


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {
        "kind": problem.kind.value,
        "subject": problem.subject,
        "detail": problem.detail,
        "age_seconds": _seconds(problem.age),
    }


def _reconciliation_json(item: Reconciliation) -> dict[str, Any]:
    return {
        "venue": item.venue,
        "account": item.account,
        "label": item.label,
        "computed": decimal_str(item.computed),
        "reported": decimal_str_or_none(item.reported),
        "reported_amount": decimal_str(item.reported_amount),
        "reported_currency": item.reported_currency,
        "difference": decimal_str_or_none(item.difference),
        "ratio": decimal_str_or_none(item.ratio),
        "unrealized_pnl": decimal_str_or_none(item.unrealized_pnl),
        "unexplained_pnl": decimal_str_or_none(item.unexplained_pnl),
    }


def _peg_json(peg: PegCheck) -> dict[str, Any]:
    return {
        "base": peg.base,
        "quote": peg.quote,
        "protocol": decimal_str(peg.protocol),
        "market": decimal_str_or_none(peg.market),
        "source": peg.source,
        "basis_points": decimal_str_or_none(peg.basis_points),
        "valued_at_peg": peg.valued_at_peg,
    }
