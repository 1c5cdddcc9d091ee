"""The equity calculator: venue states + quotes + now -> `Snapshot`. Pure and O(positions).

    equity = assets - debt, in the share-class currency

* `asset` lines add their value; a negative `asset` amount is debt (spec-notes row 15).
* `debt` lines subtract the absolute value of their amount.
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
        for position in held.positions:
            totals.add(position)
        reconciliations = tuple(totals.reconcile(venue, total) for venue, total in held.reported)
        problems = held.problems
        problems.extend(totals.unpriced_problems(share_class, table, now))
        problems.extend(totals.stale_problems(share_class, now))
        problems.extend(totals.suspect_problems(table, now))
        known = Gaps(held.unreported, tuple(totals.unvalued)).figures(
            totals.assets, totals.debt, totals.by_venue, totals.by_asset, totals.by_account
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
        equity=known.equity,
        equity_by_venue=known.by_venue,
        equity_by_asset=known.by_asset,
        equity_by_account=known.by_account,
        unreported=held.unreported,
        equity_candidates=candidates,
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
        self.by_venue: dict[str, Decimal] = {}
        self.by_asset: dict[str, Decimal] = {}
        self.by_account: dict[tuple[str, str], Decimal] = {}
        # (venue, account, line id): the values of identified equity lines, and which ids are
        # perpetuals (an open perpetual's two legs share its hedge line's id)
        self.by_line: dict[tuple[str, str, str], Decimal] = {}
        self.hedge_ids: set[tuple[str, str, str]] = set()
        # asset lines' values by (venue, account, symbol, line id): for a venue total that leaves
        # some assets out
        self.account_assets: dict[tuple[str, str, str, str | None], Decimal] = {}
        self.excluded: list[ExcludedLine] = []
        self.ignored: list[PositionLine] = []
        self.unvalued: list[PositionLine] = []
        self.used_prices: dict[str, PriceUsed] = {}
        self.equity_prices: dict[str, PriceUsed | None] = {}
        self.unpriced: dict[str, set[str]] = {}
        # assets whose only fresh price is suspect, with no agreed price to fall back on, and the
        # signed amounts of their lines in equity (for `candidates`)
        self.disputed: dict[str, list[Decimal]] = {}

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

    def add(self, position: Position) -> None:
        symbol, venue = position.asset.symbol, position.venue
        if symbol in self.ignore:
            self.ignored.append(PositionLine.of(position))
            return
        if position.kind in EXCLUDED_KINDS:
            self.excluded.append(self._excluded_line(position))
            if position.kind is PositionKind.HEDGE and position.line_id is not None:
                self.hedge_ids.add((venue, position.account, position.line_id))
            return
        if position.amount == 0:
            return
        amount = -abs(position.amount) if position.kind is PositionKind.DEBT else position.amount
        price = self.equity_price(symbol)
        if price is None:
            if symbol in self.prices:  # fresh, but its sources disagree
                self.disputed.setdefault(symbol, []).append(amount)
            else:
                self.unpriced.setdefault(symbol, set()).add(venue)
            self.unvalued.append(PositionLine.of(position))
            return
        value = _value(amount, price.price)
        if value >= 0:
            self.assets += value
        else:
            self.debt -= value
        self.by_venue[venue] = self.by_venue.get(venue, ZERO) + value
        self.by_asset[symbol] = self.by_asset.get(symbol, ZERO) + value
        account = (venue, position.account)
        self.by_account[account] = self.by_account.get(account, ZERO) + value
        if position.line_id is not None:
            line = (venue, position.account, position.line_id)
            self.by_line[line] = self.by_line.get(line, ZERO) + value
        if position.kind is PositionKind.ASSET:
            held = (venue, position.account, symbol, position.line_id)
            self.account_assets[held] = self.account_assets.get(held, ZERO) + value

    def reconcile(self, venue: str, total: ReportedTotal) -> Reconciliation:
        """The account's equity lines as valued here, beside what the venue says they are worth.

        The venue's figure is converted at this snapshot's fresh price of its currency (USD needs
        an edge like any asset); without one it stays unconverted, never compared with a guess.
        When the venue also valued the lines at its own prices, that figure is the computed side
        (converted at the same price): the comparison is then independent of the book's prices.
        When the venue's total holds its perpetuals' uPnL (`ReportedTotal.unrealized_pnl`),
        both sides leave the perpetuals out (see `_without_perpetuals`).
        """
        price = self.price_of(total.currency)
        computed = self.by_account.get((venue, total.account), ZERO) - self._uncounted(venue, total)
        if total.computed_at_venue_prices is not None and price is not None:
            # the venue valued our lines at its own prices: compare like with like
            computed = _value(total.computed_at_venue_prices, price)
        reported = None if price is None else _value(total.amount, price)
        pnl = None
        if total.unrealized_pnl is not None:
            computed, reported, pnl = self._without_perpetuals(venue, total, computed, reported)
        return Reconciliation(
            venue=venue,
            account=total.account,
            label=total.label,
            computed=computed,
            reported=reported,
            reported_amount=total.amount,
            reported_currency=total.currency,
            unrealized_pnl=pnl,
        )

    def _uncounted(self, venue: str, total: ReportedTotal) -> Decimal:
        """The value of the account's holdings of the assets `total` leaves out; a perpetual's
        leg in one of them is no holding (`_without_perpetuals` takes the legs out)."""
        return sum(
            (
                value
                for (v, account, symbol, line), value in self.account_assets.items()
                if (v, account) == (venue, total.account)
                and symbol in total.uncounted
                and (venue, account, line) not in self.hedge_ids
            ),
            ZERO,
        )

    def _without_perpetuals(
        self, venue: str, total: ReportedTotal, computed: Decimal, reported: Decimal | None
    ) -> tuple[Decimal, Decimal | None, Decimal | None]:
        """(computed, reported, the venue's uPnL) with the account's perpetuals taken out.

        The venue's total holds its perpetuals' uPnL at its mark at the moment it was read; our
        lines hold their legs at the book's price now. On a leveraged account each is the
        notional times a price, so a move between the two moments (or a mark that differs from
        the book's price) is a large difference that says nothing about the balances. Without
        them both sides are the wallet (collateral less debt): the venue's uPnL (read with its
        total) is converted at the book's prices of its currencies, and our side drops the legs.
        An uPnL currency without a fresh price leaves the total uncompared.
        """
        account = (venue, total.account)
        legs = (self.by_line.get(line, ZERO) for line in self.hedge_ids if line[:2] == account)
        computed -= sum(legs, ZERO)
        pnl = ZERO
        for currency, amount in total.unrealized_pnl or ():
            if amount == 0:
                continue
            price = self.price_of(currency)
            if price is None:
                return computed, None, None
            pnl += _value(amount, price)
        return computed, None if reported is None else reported - pnl, pnl

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
        primary = checked = self.assets - self.debt
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
