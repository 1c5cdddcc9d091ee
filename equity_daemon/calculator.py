"""The equity calculator: venue states + quotes + now -> `Snapshot`. Pure and O(positions).

    equity = assets - debt + unrealized_pnl, in the share-class currency

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
  `unvalued`, and the equity is unknown (None) rather than low.
* A line whose price is suspect (its sources disagree) is valued at the last price they agreed
  on (the last good price, marked `stale` and `suspect`), never at one side of the
  disagreement; with none, it is left out like an unpriced line, and when that is the only gap
  the snapshot shows what each side would make the equity (`equity_candidates`).
* Every line value is rounded to `VALUE_QUANTUM` before it is summed: the totals, the venue
  breakdown and the asset breakdown then add up exactly.
* A venue keeps counting with its last good report. When that report is older than the venue's
  max age the snapshot is incomplete: `failed_venue` when the latest fetch failed (with its reason),
  `stale_venue` when fetches succeed but stopped arriving (row 5). A failure while the last good
  report is still fresh shows in the venue's status (`failing`) without making the book incomplete:
  a single timeout is not an outage.
* A venue with no good report at all leaves the equity unknown, never a sum without it
  (`holdings`: it is `waiting` for its max age from when the daemon began following it, then
  `failed`). What a gap makes unknown is `unknown.Gaps`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from types import MappingProxyType

from equity_daemon.builtin_edges import builtin_quotes
from equity_daemon.holdings import age_text, holdings
from equity_daemon.model import (
    EXCLUDED_KINDS,
    EquityCandidate,
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
    decimal_str,
)
from equity_daemon.pegs import Peg, apply_pegs
from equity_daemon.prices import PRICE_PRECISION, PriceTable, Quote, QuoteFailure, resolve
from equity_daemon.unknown import Gaps

ZERO = Decimal(0)
# One wei in an ETH share class, far below a cent in USDT: rounding each line value to it keeps
# every sum of line values exact at PRICE_PRECISION for values below 10^32 units.
VALUE_PLACES = 18
VALUE_QUANTUM = Decimal(1).scaleb(-VALUE_PLACES)
_QUANTIZABLE_BELOW = PRICE_PRECISION - VALUE_PLACES  # adjusted exponent of the largest value
_NO_PRICES: Mapping[str, PriceUsed] = MappingProxyType({})


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
        held = holdings(venues, now, limits.max_age_of)
        quotes = list(quotes)
        quotes += _builtin(quotes, quote_failures, held.positions, now)
        quotes, peg_checks = apply_pegs(quotes, limits.pegs, now)
        table = resolve(
            quotes,
            share_class.value,
            now,
            limits.max_deviation_bps,
            previously_suspect=previously_suspect,
            quote_failures=quote_failures,
        )
        totals = _Totals(table.prices, last_good_prices, frozenset(limits.ignore_assets))
        totals.add_all(held.positions)
        reconciliations = tuple(totals.reconcile(venue, total) for venue, total in held.reported)
        problems = held.problems
        problems.extend(totals.unpriced_problems(share_class, table, now))
        problems.extend(totals.stale_problems(share_class, now))
        problems.extend(totals.suspect_problems(table, now))
        gaps = Gaps(held.unreported, tuple(totals.unvalued), frozenset(totals.unvalued_assets))
        known = gaps.figures(
            totals.assets,
            totals.debt,
            totals.pnl,
            totals.by_venue,
            totals.by_asset,
            totals.by_account,
        )
        candidates = () if held.unreported or totals.unpriced else totals.candidates(table)

    problems.sort(key=lambda p: (p.kind, p.subject))
    return Snapshot(
        book=book,
        share_class=share_class,
        at=now,
        sequence=sequence,
        total_assets=known.assets,
        total_debt=known.debt,
        unrealized_pnl=known.unrealized_pnl,
        equity=known.equity,
        equity_candidates=candidates,  # what each side of a dispute would make an unknown one
        equity_by_venue=known.by_venue,
        equity_by_asset=known.by_asset,
        equity_by_account=known.by_account,
        unreported=held.unreported,
        excluded=tuple(totals.excluded),
        prices=tuple(price for _, price in sorted(totals.used_prices.items())),
        venues=tuple(held.summaries),
        problems=tuple(problems),
        unvalued=tuple(totals.unvalued),
        ignored=tuple(totals.ignored),
        quote_failures=table.failures,
        suspect_edges=tuple(sorted(table.disagreements)),
        reconciliations=reconciliations,
        pegs=peg_checks,
    )


def _builtin(
    quotes: Sequence[Quote],
    failures: Sequence[QuoteFailure],
    positions: Iterable[Position],
    now: datetime,
) -> list[Quote]:
    """The built-in 1:1 edges the positions need (WETH = ETH, an Aave token = its underlying),
    less those the book prices itself: an edge it configured has quotes, or failures, here."""
    configured = {quote.edge for quote in quotes} | {failure.edge for failure in failures}
    return builtin_quotes({p.asset.symbol for p in positions}, configured, now)


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
        self.equity_prices: dict[str, PriceUsed | None] = {}
        self.unpriced: dict[str, set[str]] = {}
        # assets of lines left out that have a fresh price (suspect, with no agreed price to
        # fall back on; or a perpetual's leg whose partner has none), and the signed amounts of
        # those lines (for `candidates`)
        self.disputed: dict[str, list[Decimal]] = {}
        # such legs with only a last good price: their value, the same in every candidate
        self.aside = ZERO
        # the breakdown assets (`equity_by_asset` keys) of the lines left out
        self.unvalued_assets: set[str] = set()

    def price_of(self, symbol: str) -> Decimal | None:
        """The fresh price (suspect or not) for a line beside equity; None without one.

        An excluded line or a hedge's PnL is not worth an incomplete book: it takes no stale
        price, and a disagreement on it makes nothing suspect (`suspect_problems`).
        """
        price = self.prices.get(symbol)
        if price is None:
            return None
        self.used_prices.setdefault(symbol, price)  # an equity line's choice stays the one shown
        return price.price

    def equity_price(self, symbol: str) -> PriceUsed | None:
        """The price a line in equity is valued at: the fresh one when its sources agree; else
        the last good one (the last clean price an earlier snapshot used), marked `stale`, and
        `suspect` when the fresh one is; None when there is none: the line is left out.

        One side of a disagreement is never the equity: the last price both sides agreed on
        is a figure somebody vouched for, named and aged like a stale one.
        """
        if symbol in self.equity_prices:
            return self.equity_prices[symbol]
        fresh = self.prices.get(symbol)
        chosen = fresh
        if fresh is None or fresh.suspect:
            last = self.last_good.get(symbol)
            chosen = None if last is None else replace(last, stale=True, suspect=fresh is not None)
        self.equity_prices[symbol] = chosen
        if chosen is not None:
            self.used_prices[symbol] = chosen
        elif fresh is not None:  # shown, flagged suspect, beside the candidates it gives
            self.used_prices.setdefault(symbol, fresh)
        return chosen

    def add_all(self, positions: Iterable[Position]) -> None:
        """Every position; the legs of each perpetual (`unrealized_pnl` lines sharing a line
        id) together: when one of them has no price to be valued at, none is valued."""
        legs: dict[tuple[str, str, str], list[Position]] = {}
        for position in positions:
            pnl = position.kind is PositionKind.UNREALIZED_PNL and position.line_id is not None
            if pnl and position.asset.symbol not in self.ignore and position.amount != 0:
                key = (position.venue, position.account, position.line_id or "")
                legs.setdefault(key, []).append(position)
            else:
                self.add(position)
        for group in legs.values():
            prices = [self.equity_price(leg.asset.symbol) for leg in group]
            if all(price is not None for price in prices):
                for leg in group:
                    self.add(leg)
                continue
            for leg, price in zip(group, prices, strict=True):
                self._leave_out(leg, leg.amount, price)  # a priced one is only half a uPnL
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
        amount = -abs(position.amount) if position.kind is PositionKind.DEBT else position.amount
        price = self.equity_price(symbol)
        if price is None:
            self._leave_out(position, amount)
            return
        value = _value(amount, price.price)
        if position.kind is PositionKind.UNREALIZED_PNL:
            self.pnl += value
        elif value >= 0:
            self.assets += value
        else:
            self.debt -= value
        self.by_venue[venue] = self.by_venue.get(venue, ZERO) + value
        breakdown = _breakdown_asset(position)
        self.by_asset[breakdown] = self.by_asset.get(breakdown, ZERO) + value
        account = (venue, position.account)
        self.by_account[account] = self.by_account.get(account, ZERO) + value
        if position.line_id is not None:
            line = (venue, position.account, position.line_id)
            self.by_line[line] = self.by_line.get(line, ZERO) + value
        if position.kind is PositionKind.ASSET:
            held = (venue, position.account, symbol)
            self.account_assets[held] = self.account_assets.get(held, ZERO) + value

    def _leave_out(
        self, position: Position, amount: Decimal, price: PriceUsed | None = None
    ) -> None:
        """A line in equity left out: it has no price to be valued at (unpriced, or a fresh
        price whose sources disagree and none they agreed on), or, with its `price`, it is a
        perpetual's leg whose partner has none. Each candidate values a line with a fresh
        price as its side would, and one with only a last good price at that price."""
        symbol = position.asset.symbol
        if symbol in self.prices:
            self.disputed.setdefault(symbol, []).append(amount)
        elif price is not None:
            self.aside += _value(amount, price.price)
        else:
            self.unpriced.setdefault(symbol, set()).add(position.venue)
        self.unvalued.append(PositionLine.of(position))
        self.unvalued_assets.add(_breakdown_asset(position))

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
        computed = self.by_account.get((venue, total.account), ZERO) - self._uncounted(venue, total)
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

    def _uncounted(self, venue: str, total: ReportedTotal) -> Decimal:
        """The value of the account's holdings of the assets `total` leaves out (a perpetual's
        legs are uPnL lines, never holdings: `_at_venue_marks` handles them)."""
        return sum(
            (self.account_assets.get((venue, total.account, s), ZERO) for s in total.uncounted),
            ZERO,
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
        takes the venue's own uPnL (only the wallet is compared). Our uPnL in a currency the
        total leaves out (`ReportedTotal.uncounted`: a contract settled in a wallet outside it)
        is outside it too. Every uPnL is converted at the book's prices of its currency; one
        without a fresh price leaves the total uncompared.
        """
        account = (venue, total.account)
        legs = (self.by_line.get(line, ZERO) for line in self.hedge_ids if line[:2] == account)
        computed -= sum(legs, ZERO)
        theirs = self._pnl_value(total.unrealized_pnl or ())
        ours = None
        if total.positions_pnl is not None:
            counted = [(c, pnl) for c, pnl in total.positions_pnl if c not in total.uncounted]
            ours = self._pnl_value(counted)
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
            f"{q.edge} from {q.source} is {age_text(now - q.at)} old" for q in table.stale
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
            if not price.stale or price.suspect:
                continue
            detail = f"no fresh price path to {share_class.value}; " + _held_at(price, now)
            problems.append(Problem(ProblemKind.STALE_PRICE, symbol, detail, now - price.as_of))
        return problems

    def suspect_problems(self, table: PriceTable, now: datetime) -> list[Problem]:
        """Only prices that feed equity can make it untrustworthy; a hedge's cannot. Each names
        the disagreement, and the last agreed price used instead (or that there is none)."""
        problems = []
        for symbol, price in sorted(self.equity_prices.items()):
            fresh = self.prices.get(symbol)
            if fresh is None or not fresh.suspect:
                continue
            disagreement = "; ".join(found.describe() for found in table.disagreements_on(fresh))
            if price is None:
                detail = f"{disagreement}; no price they agreed on yet: left out of equity"
                problems.append(Problem(ProblemKind.SUSPECT_PRICE, symbol, detail))
                continue
            detail = f"{disagreement}; {_held_at(price, now, 'last agreed')}"
            age = now - price.as_of
            problems.append(Problem(ProblemKind.SUSPECT_PRICE, symbol, detail, age))
        return problems

    def candidates(self, table: PriceTable) -> tuple[EquityCandidate, ...]:
        """When the only lines left out are disputed: the equity as the used sources would
        make it, and as the cross-checking ones would; () otherwise."""
        if not self.disputed:
            return ()
        primary = checked = self.assets - self.debt + self.pnl + self.aside
        used: set[str] = set()
        others: set[str] = set()
        for symbol, amounts in sorted(self.disputed.items()):
            price = self.prices[symbol]
            cross = table.cross_checked(price)
            for amount in amounts:
                primary += _value(amount, price.price)
                checked += _value(amount, cross)
            for found in table.disagreements_on(price):
                used.add(found.used.source)
                others.add(found.other.source)
        return (
            EquityCandidate(tuple(sorted(used)), primary),
            EquityCandidate(tuple(sorted(others)), checked),
        )


def _breakdown_asset(position: Position) -> str:
    """The `equity_by_asset` key of a line: its asset, or a perpetual's leg's contract."""
    if position.kind is PositionKind.UNREALIZED_PNL:
        return str(position.details.get("contract_asset", position.asset.symbol))
    return position.asset.symbol


def _value(amount: Decimal, price: Decimal) -> Decimal:
    """`amount` × `price`, rounded to `VALUE_QUANTUM` so that sums of values are exact."""
    value = amount * price
    if value.is_finite() and value.adjusted() < _QUANTIZABLE_BELOW:
        return value.quantize(VALUE_QUANTUM)
    return value  # 10^32 units or more cannot be quantized at this precision; never raise on data


def _held_at(price: PriceUsed, now: datetime, name: str = "last good") -> str:
    return (
        f"valued at its {name} price {decimal_str(price.price)} via {' > '.join(price.path)} "
        f"({', '.join(price.sources)}), {age_text(now - price.as_of)} old"
    )
