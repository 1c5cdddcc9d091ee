"""Median time to compute one snapshot with 1k, 10k and 100k positions over 200 assets.

Prints one JSON object: {"results": [{"positions": 1000, "median_ms": 1.9}, ...]}, plus the
100k/10k ratio (linear is 10). Run: python benchmarks/bench_calculator.py
"""

from __future__ import annotations

import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from equity_daemon.calculator import Limits, calculate
from equity_daemon.model import Asset, Position, PositionKind, ShareClass, VenueReport, VenueState
from equity_daemon.prices import Quote

ASSETS = 200
VENUES = 20
NOW = datetime(2026, 11, 25, tzinfo=UTC)


def quotes(rng: random.Random) -> list[Quote]:
    """Half the assets quote against USDT directly, half through ETH (two hops)."""
    found = [Quote("ETH", "USDT", Decimal("3000.25"), "ticker", NOW, timedelta(minutes=5))]
    for i in range(ASSETS):
        quote = "USDT" if i % 2 else "ETH"
        rate = Decimal(rng.randint(1, 10**8)).scaleb(-6)
        found.append(Quote(f"T{i}", quote, rate, "ticker", NOW, timedelta(minutes=5)))
    return found


def venues(positions: int, rng: random.Random) -> list[VenueState]:
    """Each venue's positions are built together, as one parsed report would be."""
    kinds = [PositionKind.ASSET] * 8 + [PositionKind.DEBT, PositionKind.HEDGE]
    states = []
    for v in range(VENUES):
        name = f"v{v}"
        held = tuple(
            Position(
                name,
                "main",
                Asset(f"T{rng.randrange(ASSETS)}"),
                Decimal(rng.randint(-(10**24), 10**24)).scaleb(-18),
                rng.choice(kinds),
            )
            for _ in range(positions // VENUES)
        )
        report = VenueReport(name, NOW, held)
        states.append(VenueState(report, report))
    return states


def median_ms(positions: int, repeats: int) -> float:
    rng = random.Random(positions)
    states, edges = venues(positions, rng), quotes(rng)
    times = []
    for sequence in range(repeats):
        started = time.perf_counter()
        calculate(
            book="bench",
            share_class=ShareClass.USDT,
            venues=states,
            quotes=edges,
            now=NOW,
            sequence=sequence,
            limits=Limits(),
        )
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


def main() -> None:
    results = [
        {"positions": n, "median_ms": median_ms(n, repeats)}
        for n, repeats in ((1_000, 51), (10_000, 21), (100_000, 7))
    ]
    ratio = results[2]["median_ms"] / results[1]["median_ms"]
    print(json.dumps({"results": results, "ratio_100k_to_10k": round(ratio, 2)}))


if __name__ == "__main__":
    main()
