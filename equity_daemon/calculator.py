"""The equity calculator: venue states + quotes + now -> `Snapshot`. Pure and O(positions).

    equity = assets - debt, in the share-class currency

* `asset` lines add their value; a negative `asset` amount is debt (spec-notes row 15).
* `debt` lines subtract the absolute value of their amount.
* `unrealized_pnl` lines (an open perpetual's legs, at its contract's mark) add their value to
  equity and to `unrealized_pnl`, never to assets or debt. The legs of one perpetual are valued
  together or not at all: one leg alone is the position's notional, not its uPnL.
* `locked`, `in_transit` and `hedge` lines are reported in `excluded`, never in equity.
* Lines of an asset the book ignores (`Limits.ignore_assets`: dust, airdrops) are listed in
  `ignored` with their amounts, and nowhere else.
* A zero line holds nothing: it needs no price and never makes a book incomplete (exchanges list
  hundreds of zero coins), so it is skipped.
* A line without a fresh price is valued at the asset's last good price (the last clean price an
  earlier snapshot used, which the caller remembers), marked `stale`; the snapshot is incomplete
  with a `stale_price` problem giving that price's age. Only an asset never priced is
  `unpriced`: its lines are left out of the totals, never valued at zero (row 4), and listed in
  `unvalued`, so readers know the equity is partial rather than low.
* Every line value is rounded to `VALUE_QUANTUM` before it is summed: the totals, the venue
  breakdown and the asset breakdown then add up exactly.
* A venue keeps counting with its last good report. When that report is older than the venue's
  max age the snapshot is incomplete: `failed_venue` when the latest fetch failed (with its reason),
  `stale_venue` when fetches succeed but stopped arriving (row 5). A failure while the last good
  report is still fresh shows in the venue's status (`failing`) without making the book incomplete:
  a single timeout is not an outage.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from types import MappingProxyType

from equity_daemon.model import (
    EXCLUDED_KINDS,
    ExcludedLine,
    Position,
    PositionKind,
    PositionLine,
    PriceUsed,
    Problem,
    ProblemKind,
    Reconciliation,
    ReportedTotal,
    ShareClass,
    Snapshot,
    VenueState,
    VenueSummary,
    decimal_str,
)
from equity_daemon.pegs import Peg, apply_pegs
from equity_daemon.prices import PRICE_PRECISION, PriceTable, Quote, QuoteFailure, resolve

ZERO = Decimal(0)
# One wei in an ETH share class, far below a cent in USDT: rounding each line value to it keeps
# every sum of line values exact at PRICE_PRECISION for values below 10^32 units.
VALUE_PLACES = 18
VALUE_QUANTUM = Decimal(1).scaleb(-VALUE_PLACES)
_QUANTIZABLE_BELOW = PRICE_PRECISION - VALUE_PLACES  # adjusted exponent of the largest value
_NO_PRICES: Mapping[str, PriceUsed] = MappingProxyType({})

# (latest fetch succeeded, last good report within max age) -> the venue's status
_STATUS = {
    (True, True): "ok",
    (True, False): "stale",
    (False, True): "failing",
    (False, False): "failed",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """How old data may be, and how far sources may disagree, before a snapshot is incomplete;
    and which assets the book ignores (symbols, as prices are keyed)."""

    venue_max_age: timedelta = timedelta(minutes=5)
    venue_max_ages: Mapping[str, timedelta] = field(default_factory=dict)
    max_deviation_bps: Decimal = Decimal(50)
    ignore_assets: Collection[str] = ()
    pegs: Mapping[str, Peg] = field(default_factory=dict)  # by edge (`stETH/ETH`)

    def max_age_of(self, venue: str) -> timedelta:
        return self.venue_max_ages.get(venue, self.venue_max_age)


def calculate(
    *,
    book: str,
    share_class: ShareClass,
    venues: Sequence[VenueState],
    quotes: Iterable[Quote],
    now: datetime,
    sequence: int,
    limits: Limits,
    quote_failures: Sequence[QuoteFailure] = (),
    last_good_prices: Mapping[str, PriceUsed] = _NO_PRICES,
    previously_suspect: Collection[str] = frozenset(),
) -> Snapshot:
    """Value one book at `now`. Never raises on data: every gap becomes a named `Problem`.

    `quote_failures` are the sources that gave no quote this cycle (named, never a problem by
    themselves). `last_good_prices` (the last fresh, clean price of each asset) and
    `previously_suspect` (the edges suspect last time, for the hysteresis of `prices.resolve`)
    carry state from the caller's earlier snapshots; `BookTracker` keeps it.
    """
    with localcontext() as ctx:
        ctx.prec = PRICE_PRECISION
        quotes, peg_checks = apply_pegs(quotes, limits.pegs, now)
        table = resolve(
            quotes,
            share_class.value,
            now,
            limits.max_deviation_bps,
            previously_suspect=previously_suspect,
            quote_failures=quote_failures,
        )
        summaries, problems, positions, reported = _venue_positions(venues, now, limits)
        totals = _Totals(table.prices, last_good_prices, frozenset(limits.ignore_assets))
        totals.add_all(positions)
        reconciliations = tuple(totals.reconcile(venue, total) for venue, total in reported)
        problems.extend(totals.unpriced_problems(share_class, table, now))
        problems.extend(totals.stale_problems(share_class, now))
        problems.extend(totals.suspect_problems(table))
        equity = totals.assets - totals.debt + totals.pnl

    problems.sort(key=lambda p: (p.kind, p.subject))
    return Snapshot(
        book=book,
        share_class=share_class,
        at=now,
        sequence=sequence,
        total_assets=totals.assets,
        total_debt=totals.debt,
        unrealized_pnl=totals.pnl,
        equity=equity,
        equity_by_venue=dict(sorted(totals.by_venue.items())),
        equity_by_asset=dict(sorted(totals.by_asset.items())),
        equity_by_account=totals.by_venue_account(),
        excluded=tuple(totals.excluded),
        prices=tuple(price for _, price in sorted(totals.used_prices.items())),
        venues=tuple(summaries),
        problems=tuple(problems),
        unvalued=tuple(totals.unvalued),
        ignored=tuple(totals.ignored),
        quote_failures=table.failures,
        suspect_edges=tuple(sorted(table.disagreements)),
        reconciliations=reconciliations,
        pegs=peg_checks,
    )


def _venue_positions(
    venues: Sequence[VenueState], now: datetime, limits: Limits
) -> tuple[list[VenueSummary], list[Problem], list[Position], list[tuple[str, ReportedTotal]]]:
    summaries: list[VenueSummary] = []
    problems: list[Problem] = []
    positions: list[Position] = []
    reported: list[tuple[str, ReportedTotal]] = []
    for state in sorted(venues, key=lambda s: s.venue):
        latest, good = state.latest, state.last_good
        age = None if good is None else now - good.data_time
        fresh = age is not None and age <= limits.max_age_of(state.venue)
        status = _STATUS[(latest.ok, fresh)]
        if status == "stale":
            detail = f"last report is {_age_text(age)} old"
            problems.append(Problem(ProblemKind.STALE_VENUE, state.venue, detail, age))
        elif status == "failed":
            since = "never succeeded" if age is None else f"last good {_age_text(age)} ago"
            detail = f"{latest.error} ({since})"
            problems.append(Problem(ProblemKind.FAILED_VENUE, state.venue, detail, age))
        summaries.append(
            VenueSummary(
                venue=state.venue,
                status=status,
                fetched_at=None if good is None else good.fetched_at,
                age=age,
                block_number=None if good is None else good.block_number,
                error=latest.error,
                note=state.note,
            )
        )
        if good is not None:
            positions.extend(good.positions)
            reported.extend((state.venue, total) for total in good.reported)
    return summaries, problems, positions, reported


class _Totals:
    """Accumulates one pass over the positions."""

    def __init__(
        self,
        prices: Mapping[str, PriceUsed],
        last_good: Mapping[str, PriceUsed],
        ignore: frozenset[str],
    ) -> None:
        self.prices = prices
        self.last_good = last_good
        self.ignore = ignore
        self.assets = ZERO
        self.debt = ZERO
        self.pnl = ZERO
        self.by_venue: dict[str, Decimal] = {}
        self.by_asset: dict[str, Decimal] = {}
        self.by_account: dict[tuple[str, str], Decimal] = {}
        # (venue, account, line id): the values of identified equity lines, and which ids are
        # perpetuals (an open perpetual's two legs share its hedge line's id)
        self.by_line: dict[tuple[str, str, str], Decimal] = {}
        self.hedge_ids: set[tuple[str, str, str]] = set()
        self.hedge_lines: dict[int, tuple[str, str, str]] = {}  # index in `excluded` -> line
        # asset lines' values by (venue, account, symbol): for a venue total that leaves some out
        self.account_assets: dict[tuple[str, str, str], Decimal] = {}
        self.excluded: list[ExcludedLine] = []
        self.ignored: list[PositionLine] = []
        self.unvalued: list[PositionLine] = []
        self.used_prices: dict[str, PriceUsed] = {}
        self.unpriced: dict[str, set[str]] = {}
        self.in_equity: set[str] = set()

    def price_of(self, symbol: str, *, stale_ok: bool = False) -> Decimal | None:
        """The fresh price, or with `stale_ok` the last good one marked stale; None if neither.

        Only equity lines take a stale price: an excluded line or a hedge's PnL is not worth an
        incomplete book, and stays unvalued instead.
        """
        used = self.used_prices.get(symbol)
        if used is not None and (stale_ok or not used.stale):
            return used.price
        price = self.prices.get(symbol)
        if price is None and stale_ok and symbol in self.last_good:
            price = replace(self.last_good[symbol], stale=True)
        if price is None:
            return None
        self.used_prices[symbol] = price
        return price.price

    def add_all(self, positions: Iterable[Position]) -> None:
        """Every position; the legs of each perpetual (`unrealized_pnl` lines sharing a line
        id) together: when one of them has no price at all, none is valued."""
        legs: dict[tuple[str, str, str], list[Position]] = {}
        for position in positions:
            pnl = position.kind is PositionKind.UNREALIZED_PNL and position.line_id is not None
            if pnl and position.asset.symbol not in self.ignore and position.amount != 0:
                key = (position.venue, position.account, position.line_id or "")
                legs.setdefault(key, []).append(position)
            else:
                self.add(position)
        for group in legs.values():
            prices = [self.price_of(leg.asset.symbol, stale_ok=True) for leg in group]
            if all(price is not None for price in prices):
                for leg in group:
                    self.add(leg)
                continue
            for leg, price in zip(group, prices, strict=True):
                if price is None:
                    self.unpriced.setdefault(leg.asset.symbol, set()).add(leg.venue)
                self.unvalued.append(PositionLine.of(leg))
        # a hedge's uPnL is the one in equity (its legs' at its mark) where they were valued,
        # else the exchange's own figure of its read
        for index, key in self.hedge_lines.items():
            if key in self.by_line:
                self.excluded[index] = replace(
                    self.excluded[index], unrealized_pnl=self.by_line[key]
                )

    def add(self, position: Position) -> None:
        symbol, venue = position.asset.symbol, position.venue
        if symbol in self.ignore:
            self.ignored.append(PositionLine.of(position))
            return
        if position.kind in EXCLUDED_KINDS:
            self.excluded.append(self._excluded_line(position))
            if position.kind is PositionKind.HEDGE and position.line_id is not None:
                key = (venue, position.account, position.line_id)
                self.hedge_ids.add(key)
                self.hedge_lines[len(self.excluded) - 1] = key
            return
        if position.amount == 0:
            return
        price = self.price_of(symbol, stale_ok=True)
        if price is None:
            self.unpriced.setdefault(symbol, set()).add(venue)
            self.unvalued.append(PositionLine.of(position))
            return
        self.in_equity.add(symbol)
        amount = -abs(position.amount) if position.kind is PositionKind.DEBT else position.amount
        value = _value(amount, price)
        breakdown = symbol
        if position.kind is PositionKind.UNREALIZED_PNL:
            self.pnl += value
            breakdown = str(position.details.get("contract_asset", symbol))
        elif value >= 0:
            self.assets += value
        else:
            self.debt -= value
        self.by_venue[venue] = self.by_venue.get(venue, ZERO) + value
        self.by_asset[breakdown] = self.by_asset.get(breakdown, ZERO) + value
        account = (venue, position.account)
        self.by_account[account] = self.by_account.get(account, ZERO) + value
        if position.line_id is not None:
            line = (venue, position.account, position.line_id)
            self.by_line[line] = self.by_line.get(line, ZERO) + value
        if position.kind is PositionKind.ASSET:
            line = (venue, position.account, symbol)
            self.account_assets[line] = self.account_assets.get(line, ZERO) + value

    def by_venue_account(self) -> dict[str, dict[str, Decimal]]:
        """Equity by venue, then by account (a chain venue's accounts are its protocols)."""
        nested: dict[str, dict[str, Decimal]] = {}
        for (venue, account), value in sorted(self.by_account.items()):
            nested.setdefault(venue, {})[account] = value
        return nested

    def reconcile(self, venue: str, total: ReportedTotal) -> Reconciliation:
        """The account's equity lines as valued here, beside what the venue says they are worth.

        The venue's figure is converted at this snapshot's fresh price of its currency (USD needs
        an edge like any asset); without one it stays unconverted, never compared with a guess.
        When the venue also valued the lines at its own prices, that figure is the computed side
        (converted at the same price): the comparison is then independent of the book's prices.
        When the venue's total holds its perpetuals' uPnL (`ReportedTotal.unrealized_pnl`),
        the legs are valued at the venue's marks of its read on our side (`_at_venue_marks`).
        """
        price = self.price_of(total.currency)
        computed = self.by_account.get((venue, total.account), ZERO) - sum(
            (self.account_assets.get((venue, total.account, s), ZERO) for s in total.uncounted),
            ZERO,
        )
        if total.computed_at_venue_prices is not None and price is not None:
            # the venue valued our lines at its own prices: compare like with like
            computed = _value(total.computed_at_venue_prices, price)
        reported = None if price is None else _value(total.amount, price)
        pnl = unexplained = None
        if total.unrealized_pnl is not None:
            computed, reported, pnl, unexplained = self._at_venue_marks(
                venue, total, computed, reported
            )
        return Reconciliation(
            venue=venue,
            account=total.account,
            label=total.label,
            computed=computed,
            reported=reported,
            reported_amount=total.amount,
            reported_currency=total.currency,
            unrealized_pnl=pnl,
            unexplained_pnl=unexplained,
        )

    def _at_venue_marks(
        self, venue: str, total: ReportedTotal, computed: Decimal, reported: Decimal | None
    ) -> tuple[Decimal, Decimal | None, Decimal | None, Decimal | None]:
        """(computed, reported, the venue's uPnL, the part of it our positions do not explain).

        The venue's total holds its perpetuals' uPnL at its marks at the moment it was read;
        our legs are at each contract's mark now. On a leveraged account a move between the two
        moments is the notional times the move: a large difference that says nothing about the
        account. So our side takes the legs out and puts in the positions' uPnL at the marks the
        venue's own answer gave them (`ReportedTotal.positions_pnl`): what is left to differ is
        the wallet and what the positions read do not explain. Without those figures our side
        takes the venue's own uPnL (only the wallet is compared). Every uPnL is converted at
        the book's prices of its currency; one without a fresh price leaves the total
        uncompared.
        """
        account = (venue, total.account)
        legs = (self.by_line.get(line, ZERO) for line in self.hedge_ids if line[:2] == account)
        computed -= sum(legs, ZERO)
        theirs = self._pnl_value(total.unrealized_pnl or ())
        ours = None if total.positions_pnl is None else self._pnl_value(total.positions_pnl)
        if theirs is None or (total.positions_pnl is not None and ours is None):
            return computed, None, None, None
        if ours is None:
            return computed + theirs, reported, theirs, None
        return computed + ours, reported, theirs, theirs - ours

    def _pnl_value(self, amounts: Iterable[tuple[str, Decimal]]) -> Decimal | None:
        """Amounts by currency, in the share class at fresh prices; None if one has none."""
        found = ZERO
        for currency, amount in amounts:
            if amount == 0:
                continue
            price = self.price_of(currency)
            if price is None:
                return None
            found += _value(amount, price)
        return found

    def _excluded_line(self, position: Position) -> ExcludedLine:
        price = self.price_of(position.asset.symbol)
        value = None if price is None else _value(abs(position.amount), price)
        side = pnl = None
        if position.kind is PositionKind.HEDGE:
            side = "short" if position.amount < 0 else "long"
            pnl = self._hedge_pnl(position)
        # every kind's details, as text (a withdrawal request's id and state, a transfer's id)
        details = {
            key: decimal_str(value) if isinstance(value, Decimal) else value
            for key, value in position.details.items()
        }
        return ExcludedLine(
            venue=position.venue,
            account=position.account,
            asset=position.asset.symbol,
            kind=position.kind,
            amount=position.amount,
            value=value,
            side=side,
            unrealized_pnl=pnl,
            details=details,
        )

    def _hedge_pnl(self, position: Position) -> Decimal | None:
        """The unrealised PnL in the share class, when the venue gave it and it can be priced."""
        raw = position.details.get("unrealized_pnl")
        currency = position.details.get("pnl_currency")
        if raw is None or not isinstance(currency, str):
            return None
        try:
            pnl = Decimal(raw)
        except InvalidOperation:
            return None
        price = self.price_of(currency)
        return None if price is None else _value(pnl, price)

    def unpriced_problems(
        self, share_class: ShareClass, table: PriceTable, now: datetime
    ) -> list[Problem]:
        stale = ", ".join(
            f"{q.edge} from {q.source} is {_age_text(now - q.at)} old" for q in table.stale
        )
        problems = []
        for symbol, venues in sorted(self.unpriced.items()):
            held = ", ".join(sorted(venues))
            detail = (
                f"no fresh price path to {share_class.value} (held on {held}); no last good price"
            )
            if stale:
                detail += f"; stale quotes: {stale}"
            problems.append(Problem(ProblemKind.UNPRICED, symbol, detail))
        return problems

    def stale_problems(self, share_class: ShareClass, now: datetime) -> list[Problem]:
        """Every asset valued at its last good price, with that price, its path and its age."""
        problems = []
        for symbol, price in sorted(self.used_prices.items()):
            if not price.stale:
                continue
            age = now - price.as_of
            detail = (
                f"no fresh price path to {share_class.value}; valued at its last good price "
                f"{decimal_str(price.price)} via {' > '.join(price.path)} "
                f"({', '.join(price.sources)}), {_age_text(age)} old"
            )
            problems.append(Problem(ProblemKind.STALE_PRICE, symbol, detail, age))
        return problems

    def suspect_problems(self, table: PriceTable) -> list[Problem]:
        """Only prices that feed equity can make it untrustworthy; a hedge's cannot."""
        return [
            Problem(
                ProblemKind.SUSPECT_PRICE,
                symbol,
                "; ".join(found.describe() for found in table.disagreements_on(price)),
            )
            for symbol, price in sorted(self.used_prices.items())
            if price.suspect and symbol in self.in_equity
        ]


def _value(amount: Decimal, price: Decimal) -> Decimal:
    """`amount` × `price`, rounded to `VALUE_QUANTUM` so that sums of values are exact."""
    value = amount * price
    if value.is_finite() and value.adjusted() < _QUANTIZABLE_BELOW:
        return value.quantize(VALUE_QUANTUM)
    return value  # 10^32 units or more cannot be quantized at this precision; never raise on data


def _age_text(age: timedelta | None) -> str:
    if age is None:
        return "unknown"
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
