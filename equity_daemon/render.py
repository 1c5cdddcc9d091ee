"""Human-readable text for a snapshot, as `equity-daemon once` prints it."""

from __future__ import annotations

from decimal import Decimal

from equity_daemon.line_notes import excluded_note
from equity_daemon.model import PositionLine, PriceUsed, Snapshot, decimal_str

UNKNOWN = "unknown"


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
        *(f"    {k:<20}{figure(v, places):>20}" for k, v in snap.equity_by_venue.items()),
        "  by asset",
        *(f"    {k:<20}{figure(v, places):>20}" for k, v in snap.equity_by_asset.items()),
    ]
    if snap.excluded:
        lines.append("  excluded from equity")
        for line in snap.excluded:
            side = f" {line.side}" if line.side else ""
            note = excluded_note(line.kind.value, line.details)
            lines.append(
                f"    {line.kind.value:<11}{line.venue:<10}{line.asset:<8}"
                f"{decimal_str(line.amount):>14}{side}  value {money(line.value, places)}"
                + (f"  {note}" if note else "")
            )
    lines.extend(_held("unvalued (no price, not in equity)", snap.unvalued))
    lines.extend(_held("ignored (configured, not in equity)", snap.ignored))
    lines.append("  prices")
    for price in snap.prices:
        age = (snap.at - price.as_of).total_seconds()
        lines.append(
            f"    {price.asset:<20}{decimal_str(price.price):>24} {unit}  "
            f"via {' > '.join(price.sources) or '-'}  {age:.0f}s old{_flags(price)}"
        )
    lines.extend(
        f"  quote failed: {f.edge} from {f.source}: {f.reason}" for f in snap.quote_failures
    )
    lines.extend(f"  problem: {p.kind.value} {p.subject}: {p.detail}" for p in snap.problems)
    return "\n".join(lines)


def _held(title: str, held: tuple[PositionLine, ...]) -> list[str]:
    if not held:
        return []
    return [
        f"  {title}",
        *(
            f"    {line.kind.value:<11}{line.venue:<10}{line.asset:<8}"
            f"{decimal_str(line.amount):>14}"
            for line in held
        ),
    ]


def _flags(price: PriceUsed) -> str:
    names = [("SUSPECT", price.suspect), ("FALLBACK", price.fallback), ("STALE", price.stale)]
    return "".join(f"  {name}" for name, on in names if on)
