"""Human-readable text for a snapshot, as `equity-daemon once` prints it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal

from equity_daemon.line_notes import excluded_note
from equity_daemon.model import ExcludedLine, PositionLine, PriceUsed, Snapshot, decimal_str

UNKNOWN = "unknown"
NAME_WIDTH = 20  # the first column of the breakdowns and prices, unless a name is longer


def money(value: Decimal | None, places: int = 2) -> str:
    """Grouped and rounded for reading only; JSON output keeps every digit."""
    if value is None:
        return "unpriced"
    return f"{value:,.{places}f}"


def figure(value: Decimal | None, places: int = 2) -> str:
    """A total or breakdown entry: `unknown` where the snapshot does not know it (never 0)."""
    return UNKNOWN if value is None else money(value, places)


def snapshot_table(snap: Snapshot) -> str:
    unit = snap.share_class.value
    places = 2 if unit == "USDT" else 6
    state = "complete" if snap.complete else "INCOMPLETE"
    if snap.equity is None:
        state += ", EQUITY UNKNOWN"
    lines = [
        f"book {snap.book}  #{snap.sequence}  {snap.at:%Y-%m-%d %H:%M:%S} UTC  {state}",
        f"  equity        {figure(snap.equity, places):>24} {unit}",
        *(f"    unknown: {reason}" for reason in snap.unknown_because()),
        *(
            f"    would be {money(c.equity, places)} {unit} by {', '.join(c.sources)}"
            for c in snap.equity_candidates
        ),
        f"  assets        {figure(snap.total_assets, places):>24} {unit}",
        f"  debt          {figure(snap.total_debt, places):>24} {unit}",
        f"  uPnL          {figure(snap.unrealized_pnl, places):>24} {unit}",
        "  by venue",
        *_breakdown(snap.equity_by_venue, places),
        "  by asset",
        *_breakdown(snap.equity_by_asset, places),
    ]
    line_columns = _line_columns([*snap.excluded, *snap.unvalued, *snap.ignored])
    if snap.excluded:
        lines.append("  excluded from equity")
        for line in snap.excluded:
            side = f" {line.side}" if line.side else ""
            note = excluded_note(line.kind.value, line.details)
            lines.append(
                line_columns(line.kind.value, line.venue, line.asset, line.amount)
                + f"{side}  value {money(line.value, places)}"
                + (f"  {note}" if note else "")
            )
    lines.extend(_held("unvalued (no price, not in equity)", snap.unvalued, line_columns))
    lines.extend(_held("ignored (configured, not in equity)", snap.ignored, line_columns))
    lines.append("  prices")
    width = _width((price.asset for price in snap.prices), NAME_WIDTH)
    for price in snap.prices:
        age = (snap.at - price.as_of).total_seconds()
        lines.append(
            f"    {price.asset:<{width}}{decimal_str(price.price):>24} {unit}  "
            f"via {' > '.join(price.sources) or '-'}  {age:.0f}s old{_flags(price)}"
        )
    lines.extend(
        f"  quote failed: {f.edge} from {f.source}: {f.reason}" for f in snap.quote_failures
    )
    lines.extend(f"  problem: {p.kind.value} {p.subject}: {p.detail}" for p in snap.problems)
    return "\n".join(lines)


def _width(names: Iterable[str], least: int, gap: int = 2) -> int:
    """A column as wide as `least`, or as its longest name and a gap: long venue and asset
    names push the next column right instead of running into it."""
    return max([least, *(len(name) + gap for name in names)])


def _breakdown(figures: Mapping[str, Decimal | None], places: int) -> list[str]:
    width = _width(figures, NAME_WIDTH)
    return [f"    {name:<{width}}{figure(value, places):>20}" for name, value in figures.items()]


def _line_columns(
    shown: Sequence[ExcludedLine | PositionLine],
) -> Callable[[str, str, str, Decimal], str]:
    """Formats a line's kind, venue, asset and amount in columns wide enough for all `shown`."""
    kind = _width((line.kind.value for line in shown), 11, gap=1)
    venue = _width((line.venue for line in shown), 10, gap=1)
    asset = _width((line.asset for line in shown), 8, gap=1)

    def columns(kind_value: str, venue_name: str, asset_name: str, amount: Decimal) -> str:
        return (
            f"    {kind_value:<{kind}}{venue_name:<{venue}}{asset_name:<{asset}}"
            f"{decimal_str(amount):>14}"
        )

    return columns


def _held(
    title: str,
    held: tuple[PositionLine, ...],
    columns: Callable[[str, str, str, Decimal], str],
) -> list[str]:
    if not held:
        return []
    lines = (columns(line.kind.value, line.venue, line.asset, line.amount) for line in held)
    return [f"  {title}", *lines]


def _flags(price: PriceUsed) -> str:
    names = [("SUSPECT", price.suspect), ("FALLBACK", price.fallback), ("STALE", price.stale)]
    return "".join(f"  {name}" for name, on in names if on)
