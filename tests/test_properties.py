"""Properties of the arithmetic and the monitor, over generated books and paths."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, localcontext

from hypothesis import given
from hypothesis import strategies as st

from equity_daemon.calculator import VALUE_QUANTUM, Limits
from equity_daemon.model import PositionKind
from equity_daemon.monitor import EventKind, Reference, ThresholdRule, observe
from equity_daemon.prices import resolve
from tests.reports import NOW, book_at, equity_of, known, ok, pos, quote, snapshot

QUOTES = (quote("ETH", "USDT", "3000.5"), quote("stETH", "ETH", "0.9991"))
PRICES = {"USDT": Decimal(1), "ETH": Decimal("3000.5"), "stETH": Decimal("2997.799550")}
# Far more digits than any sum below needs: arithmetic in it is exact.
EXACT = 200

amounts = st.decimals(min_value=-(10**9), max_value=10**9, places=18, allow_nan=False)
lines = st.lists(
    st.tuples(
        st.sampled_from(["binance", "aave", "lido"]),
        st.sampled_from(sorted(PRICES)),
        amounts,
        st.sampled_from([PositionKind.ASSET, PositionKind.DEBT]),
    ),
    max_size=30,
)


def value(
    lines: list[tuple[str, str, Decimal, PositionKind]], scale: Decimal = Decimal(1)
) -> Decimal:
    states = [ok(pos(v, a, amount * scale, kind), venue=v) for v, a, amount, kind in lines]
    return equity_of(snapshot(*states, quotes=QUOTES)) if states else Decimal(0)


@given(lines)
def test_equity_is_the_sum_of_assets_minus_the_sum_of_debts(
    book: list[tuple[str, str, Decimal, PositionKind]],
) -> None:
    states = [ok(pos(v, a, amount, kind), venue=v) for v, a, amount, kind in book]
    snap = snapshot(*states, quotes=QUOTES)
    with localcontext(prec=EXACT):
        signed = [
            ((-abs(amount) if kind is PositionKind.DEBT else amount) * PRICES[a]).quantize(
                VALUE_QUANTUM
            )
            for _, a, amount, kind in book
            if amount != 0
        ]
        assert snap.total_assets == sum(v for v in signed if v > 0)
        assert snap.total_debt == -sum(v for v in signed if v < 0)
        assert snap.equity == snap.total_assets - snap.total_debt
        assert snap.equity == sum(known(snap.equity_by_venue.values()), Decimal(0))
        assert snap.equity == sum(known(snap.equity_by_asset.values()), Decimal(0))


@given(lines, st.randoms())
def test_the_order_of_positions_changes_nothing(
    book: list[tuple[str, str, Decimal, PositionKind]], rng: object
) -> None:
    shuffled = list(book)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert value(shuffled) == value(book)


@given(lines, st.decimals(min_value=Decimal("0.001"), max_value=1000, places=3))
def test_scaling_every_amount_scales_equity(
    book: list[tuple[str, str, Decimal, PositionKind]], k: Decimal
) -> None:
    # each line value is rounded to half a quantum at most, before and after scaling
    with localcontext(prec=EXACT):
        rounding = len(book) * VALUE_QUANTUM / 2 * (1 + k)
        assert abs(value(book, k) - value(book) * k) <= rounding


# rates quoted from USDT to the asset: walking them backwards inverts them, so prices carry all
# fifty digits and line values of different sizes round when added
inverted_rates = st.decimals(min_value=Decimal("0.0001"), max_value=10_000, places=4).filter(
    lambda rate: rate > 0
)
random_books = st.lists(
    st.tuples(
        st.sampled_from(["binance", "aave", "lido"]),
        st.sampled_from(["A", "B", "C"]),
        amounts,
        st.sampled_from([PositionKind.ASSET, PositionKind.DEBT]),
    ),
    max_size=30,
)


@given(random_books, st.tuples(inverted_rates, inverted_rates, inverted_rates))
def test_equity_by_venue_asset_and_account_sum_exactly_to_equity(
    book: list[tuple[str, str, Decimal, PositionKind]], rates: tuple[Decimal, Decimal, Decimal]
) -> None:
    quotes = tuple(quote("USDT", asset, rate) for asset, rate in zip("ABC", rates, strict=True))
    states = [ok(pos(v, a, amount, kind), venue=v) for v, a, amount, kind in book]
    snap = snapshot(*states, quotes=quotes)
    with localcontext(prec=EXACT):
        assert sum(known(snap.equity_by_venue.values()), Decimal(0)) == snap.equity
        assert sum(known(snap.equity_by_asset.values()), Decimal(0)) == snap.equity
        assets, debt = known([snap.total_assets, snap.total_debt])
        assert assets - debt == snap.equity
        for venue, accounts in snap.equity_by_account.items():
            assert sum(known(accounts.values()), Decimal(0)) == snap.equity_by_venue[venue]


steps = st.lists(st.decimals(min_value=-5, max_value=5, places=4), min_size=1, max_size=60)


@given(steps)
def test_a_drift_fires_exactly_once_per_crossing_whatever_the_step_sizes(
    moves: list[Decimal],
) -> None:
    rule = ThresholdRule(percent=Decimal("0.1"))
    ref, _ = observe(Reference("basis"), book_at("10000"), rule)
    equity = Decimal(10000)
    expected = fired = 0
    notified = Decimal(10000)
    for i, move in enumerate(moves, start=2):
        equity += move
        # an oracle for the rule: a crossing is a move of >= 0.1 % away from the last notice
        if equity != notified and abs(equity - notified) >= abs(notified) / 1000:
            expected += 1
            notified = equity
        ref, events = observe(ref, book_at(str(equity), sequence=i), rule)
        fired += sum(e.kind is EventKind.THRESHOLD for e in events)
        assert ref.equity == notified
    assert fired == expected


@given(st.lists(st.tuples(amounts, st.booleans()), min_size=1, max_size=30))
def test_an_incomplete_snapshot_never_fires_a_change_event(
    path: list[tuple[Decimal, bool]],
) -> None:
    ref = Reference("basis")
    for i, (equity, complete) in enumerate(path, start=1):
        before = ref.equity
        ref, events = observe(
            ref, book_at(str(equity), complete=complete, sequence=i), ThresholdRule()
        )
        if not complete:
            assert [e.kind for e in events] in ([], [EventKind.INCOMPLETE])
            assert ref.equity == before


symbols = st.sampled_from(["USDT", "ETH", "stETH", "wstETH", "weETH", "eETH", "A", "B"])
quote_lists = st.lists(
    st.tuples(
        symbols,
        symbols,
        st.decimals(min_value=Decimal("0.001"), max_value=10_000, places=3),
        st.integers(min_value=0, max_value=600),
        st.sampled_from(["binance", "okx", "chainlink"]),
    ).filter(lambda q: q[0] != q[1]),
    max_size=15,
)


@given(quote_lists, st.randoms())
def test_the_same_quotes_in_any_order_give_the_same_prices(
    raw: list[tuple[str, str, Decimal, int, str]], rng: object
) -> None:
    quotes = [
        quote(base, q, rate, source, age=timedelta(seconds=age))
        for base, q, rate, age, source in raw
    ]
    shuffled = list(quotes)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    first = resolve(quotes, "USDT", NOW, Decimal(50))
    second = resolve(shuffled, "USDT", NOW, Decimal(50))
    assert first.prices == second.prices
    for price in first.prices.values():
        assert price.path[-1] == "USDT"
        assert len(price.path) == len(price.sources) + 1
        assert price.price > 0


noise = st.lists(
    st.tuples(
        st.sampled_from(["binance", "aave", "lido"]),
        st.sampled_from(["PEPE", "DUST", "ETH"]),
        st.sampled_from([PositionKind.ASSET, PositionKind.DEBT]),
        amounts,
    ),
    max_size=20,
)


@given(lines, noise)
def test_zero_lines_and_ignored_assets_change_neither_equity_nor_completeness(
    book: list[tuple[str, str, Decimal, PositionKind]],
    extra: list[tuple[str, str, PositionKind, Decimal]],
) -> None:
    """Zero lines of any asset, priced or not, and lines of an ignored asset (`DUST`)."""
    base = [pos(v, a, amount, kind) for v, a, amount, kind in book]
    added = [
        pos(v, a, amount if a == "DUST" else Decimal(0), kind, account="extra")
        for v, a, kind, amount in extra
    ]
    limits = Limits(ignore_assets=("DUST",))
    plain = snapshot(ok(*base, venue="all"), quotes=QUOTES, limits=limits)
    noisy = snapshot(ok(*base, *added, venue="all"), quotes=QUOTES, limits=limits)
    assert (noisy.equity, noisy.equity_by_venue, noisy.equity_by_asset, noisy.problems) == (
        plain.equity,
        plain.equity_by_venue,
        plain.equity_by_asset,
        plain.problems,
    )
    assert len(noisy.ignored) == sum(a == "DUST" for _, a, _, _ in extra)
