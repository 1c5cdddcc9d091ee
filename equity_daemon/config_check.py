"""What a valid configuration will still get wrong at run time, found before it runs.

`equity-daemon check-config` reports, per book:

* every asset its venues can produce that has no price path to the share class (at run time it
  is `unpriced` and the book incomplete);
* every venue total that cannot be reconciled: no price path from the total's currency (a total
  in USD needs a USD edge);
* every source that cannot quote the edge naming it (it fails every cycle), and an edge none of
  whose sources can (it never has a price);
* what stops a venue from being read at all, as far as can be seen now (a missing file).

Each is a warning (with `--strict`, an error). What only run time can show (the coins of an
exchange account, the reserves of an Aave market) is a note, with the assets the book can price.
The graph is the book's edges that can be quoted, the edges venues build themselves, and the
built-in ones (`builtin_edges`); a path may use any edge in either direction, as at run time.
Pure, given what each venue can produce (`venues.capabilities`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from equity_daemon.builtin_edges import builtin_edges
from equity_daemon.settings import BookSettings, EdgeSettings, Settings, VenueSettings
from equity_daemon.venues.capabilities import Capabilities, Total, capabilities

Pair = tuple[str, str]
# How to give a total's currency a price, where the README says
SUGGESTED = {
    "USD": ': { base = "USD", quote = "USDT", fixed = 1 }, or a chain venue\'s ETH/USD feed',
    "BTC": ": a BTC ticker from a markets entry",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that will go wrong (a warning) or that only run time can show (a note)."""

    where: str  # the settings path: `books.basis`, `books.basis.prices[2]`
    message: str
    warning: bool = True


def check(
    settings: Settings,
    capabilities_of: Callable[[VenueSettings], Capabilities] = capabilities,
) -> list[Finding]:
    """Every finding of every book, in the order of the configuration."""
    return [
        finding
        for name, book in settings.books.items()
        for finding in _book(f"books.{name}", book, settings, capabilities_of)
    ]


def _book(
    at: str,
    book: BookSettings,
    settings: Settings,
    capabilities_of: Callable[[VenueSettings], Capabilities],
) -> list[Finding]:
    found: list[Finding] = []
    share = book.share_class.value
    venues: dict[str, Capabilities] = {}
    for index, config in enumerate(book.venues):
        venues[config.name] = can = capabilities_of(config)
        found += [Finding(f"{at}.venues[{index}]", f"{config.name}: {p}") for p in can.problems]
    quoters = _quoters(venues, settings)
    edges: list[Pair] = []
    for index, edge in enumerate(book.prices):
        problems, quoted = _sources(edge, quoters)
        found += [Finding(f"{at}.prices[{index}]", problem) for problem in problems]
        if quoted:
            edges.append((edge.base, edge.quote))
    edges += [edge for can in venues.values() for edge in can.edges]
    held = _held(venues)
    currencies = {c for can in venues.values() for total in can.totals for c in total.currencies}
    configured = {f"{edge.base}/{edge.quote}" for edge in book.prices}
    edges += builtin_edges({*held, *currencies}, configured)
    priced = _reachable(share, edges)

    for asset, names in sorted(held.items()):
        if asset not in priced and asset not in book.ignore_assets:
            found.append(
                Finding(
                    at,
                    f"{asset} (on {', '.join(names)}) has no price path to {share}: the book "
                    f"would be incomplete{_could_quote(asset, quoters, edges)}",
                )
            )
    for venue, can in venues.items():
        for total in can.totals:
            for currency in total.currencies:
                if currency not in priced:
                    found.append(Finding(at, _unreconciled(venue, total, currency, share)))
    for venue, can in venues.items():
        if can.open_ended is not None:
            message = (
                f"{venue} {can.open_ended}: only run time shows which; the book prices "
                f"{', '.join(sorted(priced))}"
            )
            found.append(Finding(at, message, warning=False))
    return found


def _quoters(
    venues: Mapping[str, Capabilities], settings: Settings
) -> dict[str, frozenset[Pair] | None]:
    """What each source a book may name can quote (None: any pair, as an exchange's tickers)."""
    quoters: dict[str, frozenset[Pair] | None] = dict.fromkeys(settings.markets)
    for name, api in settings.price_sources.items():
        quoters[name] = frozenset((coin, "USD") for coin in api.coins)  # prices in USD only
    quoters.update((name, can.quotes) for name, can in venues.items())
    return quoters


def _sources(
    edge: EdgeSettings, quoters: Mapping[str, frozenset[Pair] | None]
) -> tuple[list[str], bool]:
    """The problems of an edge's sources, and whether any source can quote it.

    A source is asked for `base/quote` as written: one that quotes only the other direction
    fails too."""
    if edge.fixed is not None:
        return [], True
    pair = f"{edge.base}/{edge.quote}"
    unable = [
        name
        for name in edge.sources
        if (quotes := quoters.get(name)) is not None and (edge.base, edge.quote) not in quotes
    ]
    problems = [
        f"{pair}: {name} cannot quote it ({_quotes_text(quoters[name])}): it fails every cycle"
        for name in unable
    ]
    quoted = len(unable) < len(edge.sources)
    if not quoted:
        problems.append(f"{pair}: none of its sources can quote it: the edge never has a price")
    return problems, quoted


def _quotes_text(quotes: frozenset[Pair] | None) -> str:
    if not quotes:
        return "it quotes nothing"
    return "it quotes " + ", ".join(f"{base}/{quote}" for base, quote in sorted(quotes))


def _held(venues: Mapping[str, Capabilities]) -> dict[str, list[str]]:
    """Each asset the venues can produce, with the venues that can."""
    held: dict[str, list[str]] = {}
    for name, can in venues.items():
        for asset in sorted(can.assets):
            held.setdefault(asset, []).append(name)
    return held


def _reachable(share: str, edges: Iterable[Pair]) -> set[str]:
    """The assets some path of edges (walked either way) joins to the share class."""
    neighbours: dict[str, set[str]] = {}
    for base, quote in edges:
        neighbours.setdefault(base, set()).add(quote)
        neighbours.setdefault(quote, set()).add(base)
    reached, frontier = {share}, [share]
    while frontier:
        for other in neighbours.get(frontier.pop(), ()):
            if other not in reached:
                reached.add(other)
                frontier.append(other)
    return reached


def _could_quote(
    asset: str, quoters: Mapping[str, frozenset[Pair] | None], edges: Iterable[Pair]
) -> str:
    """A hint: the book's sources that quote a pair with `asset` in it, not an edge yet."""
    taken = set(edges)
    offers = sorted(
        f"{name} quotes {base}/{quote}"
        for name, quotes in quoters.items()
        for base, quote in quotes or ()
        if asset in (base, quote) and (base, quote) not in taken
    )
    return f" ({'; '.join(offers)})" if offers else ""


def _unreconciled(venue: str, total: Total, currency: str, share: str) -> str:
    is_in = "may be in" if len(total.currencies) > 1 else "is in"
    return (
        f"{venue} {total.account}: its own total {is_in} {currency}, which has no price path "
        f"to {share}: it cannot be reconciled (add an edge from {currency}"
        f"{SUGGESTED.get(currency, '')})"
    )
