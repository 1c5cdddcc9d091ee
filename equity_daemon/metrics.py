"""Prometheus metrics: a custom collector over the latest snapshots, plus ordinary counters.

Venues are polled in the background (exchange rate limits, multi-second RPC calls), not at scrape
time; that departs from the exporter guideline on purpose, so every gauge below reads the *latest*
snapshot, and `equity_daemon_snapshot_age_seconds` and `equity_daemon_venue_*` tell how old it is.

Money gauges are in the book's share-class currency, named by the `currency` label. Labels are
bounded: book, venue, asset, kind and source names come from configuration; no ids. Addresses
appear only where configuration lists them: chain accounts (`aave-core:0x…`) and the Aave
health factor's `address`.
Floats appear here and nowhere else: a Prometheus sample is a float.

When a snapshot's equity is unknown (a venue has not reported yet, or a line in equity has no
price anyone vouches for: `Snapshot.equity` is None), its equity, assets and debt, and every
breakdown entry the gap reaches (`unknown.Gaps`), are exported as NaN rather than as the sum of
what could be valued: NaN compares false in every PromQL rule, so a missing venue or price never
looks like a loss, and a sum over venues or assets is NaN too. Entries the gap cannot reach stay
exact. `equity_daemon_equity_unknown` is 1 meanwhile and `equity_daemon_unvalued_positions`
counts the lines left out; a book valued at stale prices is a best estimate and exports it (its
`stale_price` problems say so).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from math import nan

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from equity_daemon import __version__
from equity_daemon.model import ProblemKind, Snapshot, VenueState
from equity_daemon.monitor import EventKind

FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class BookView:
    """What the collector reads of one book at scrape time."""

    name: str
    snapshot: Snapshot | None
    venues: tuple[VenueState, ...]
    age: float | None = None  # seconds since the snapshot, on the monotonic clock
    unwritten_events: int = 0


class DaemonMetrics:
    """The daemon's registry: counters and histograms updated as things happen."""

    def __init__(self) -> None:
        # `_created` series double the exposition and no dashboard of ours reads them
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in 0.26
        self.registry = CollectorRegistry(auto_describe=True)
        self.fetch_duration = Histogram(
            "equity_daemon_venue_fetch_duration_seconds",
            "Time one successful venue fetch took.",
            ["venue"],
            buckets=FETCH_BUCKETS,
            registry=self.registry,
        )
        self.venue_errors = Counter(
            "equity_daemon_venue_errors",
            "Failed venue fetches, by reason kind (timeout, unavailable, malformed, unexpected).",
            ["venue", "reason"],
            registry=self.registry,
        )
        self.quote_errors = Counter(
            "equity_daemon_quote_errors",
            "Price sources that failed to answer, by source.",
            ["source"],
            registry=self.registry,
        )
        self.events = Counter(
            "equity_daemon_events",
            "Events emitted by the threshold monitor, by kind.",
            ["book", "kind"],
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "equity_daemon_webhook_deliveries",
            "Delivery attempts to webhooks and Apprise destinations, by target and outcome "
            "(delivered, rejected, error).",
            ["target", "outcome"],
            registry=self.registry,
        )
        self.callback_failures = Counter(
            "equity_daemon_callback_failures",
            "In-process callbacks that raised or overran their timeout.",
            ["reason"],
            registry=self.registry,
        )
        self.cycles = Counter(
            "equity_daemon_cycles",
            "Calculator cycles run (one snapshot per book each).",
            registry=self.registry,
        )
        self.cycle_errors = Counter(
            "equity_daemon_cycle_errors",
            "Cycles that raised, by book and stage (calculate, monitor, history, cycle).",
            ["book", "stage"],
            registry=self.registry,
        )
        self.unwritten_dropped = Counter(
            "equity_daemon_history_unwritten_dropped",
            "Times the in-memory queue of events history could not write overflowed.",
            ["book"],
            registry=self.registry,
        )
        self.unconfirmed_reports = Counter(
            "equity_daemon_venue_reports_unconfirmed",
            "Reports that lost (nearly) everything and were not confirmed by a fresh fetch.",
            ["venue"],
            registry=self.registry,
        )
        self.stream_disagreements = Counter(
            "equity_daemon_stream_rest_disagreements",
            "REST snapshots that disagreed with the state a venue's stream had been keeping.",
            ["venue"],
            registry=self.registry,
        )
        self.chain_behind = Counter(
            "equity_daemon_chain_endpoint_behind",
            "Chain answers refused because the node had not reached the block needed (before "
            "the block the venue last read, or a log range's end): the venue read again on its "
            "next endpoint, or failed the fetch and kept its last report.",
            ["venue", "endpoint"],
            registry=self.registry,
        )
        self.webhook_dead_letters = Counter(
            "equity_daemon_webhook_dead_letters",
            "Events a webhook refused for good, or an Apprise destination failed to take too "
            "many times in a row, and that are no longer tried (`outbox list`).",
            ["target"],
            registry=self.registry,
        )

        self.exchange_weight = Counter(
            "equity_daemon_exchange_request_weight",
            "REST request weight sent to each exchange (ccxt's endpoint costs), all venues and "
            "market data together.",
            ["exchange"],
            registry=self.registry,
        )
        self.exchange_cycle_weight = Gauge(
            "equity_daemon_exchange_cycle_request_weight",
            "REST request weight sent to each exchange since the calculator cycle before.",
            ["exchange"],
            registry=self.registry,
        )
        self.exchange_bans = Counter(
            "equity_daemon_exchange_bans",
            "Bans an exchange answered (418 or 429 with Retry-After); each holds every request "
            "to that host until it ends.",
            ["exchange"],
            registry=self.registry,
        )
        self.exchange_banned_until = Gauge(
            "equity_daemon_exchange_banned_until_seconds",
            "Unix time the exchange's latest ban ends (a past time: it is over; absent: none yet).",
            ["exchange"],
            registry=self.registry,
        )
        self.exchange_refused = Counter(
            "equity_daemon_exchange_requests_refused",
            "Requests not sent because their exchange host's ban had not ended (our own hold).",
            ["exchange"],
            registry=self.registry,
        )

    def fetched(self, venue: str, seconds: float) -> None:
        self.fetch_duration.labels(venue).observe(seconds)

    def failed(self, venue: str, reason: str) -> None:
        self.venue_errors.labels(venue, reason).inc()

    def unconfirmed(self, venue: str) -> None:
        self.unconfirmed_reports.labels(venue).inc()

    def stream_disagreed(self, venue: str) -> None:
        """The hook a streaming venue calls when a REST snapshot disagrees with its stream."""
        self.stream_disagreements.labels(venue).inc()

    def chain_endpoint_behind(self, venue: str, endpoint: str) -> None:
        """The hook a chain venue calls when it refuses an answer from a node behind."""
        self.chain_behind.labels(venue, endpoint).inc()

    def request_weight(self, exchange: str, cost: float) -> None:
        """The hook an exchange's request budget calls for every REST request it lets through."""
        self.exchange_weight.labels(exchange).inc(cost)

    def exchange_banned(self, exchange: str, until: datetime) -> None:
        """The hook a request budget calls when its host answers a ban."""
        self.exchange_bans.labels(exchange).inc()
        self.exchange_banned_until.labels(exchange).set(until.timestamp())

    def request_refused(self, exchange: str) -> None:
        """The hook a request budget calls for a request its host's ban held back."""
        self.exchange_refused.labels(exchange).inc()

    def cycle_weights(self, weights: Mapping[str, float]) -> None:
        for exchange, weight in weights.items():
            self.exchange_cycle_weight.labels(exchange).set(weight)

    def prepare(
        self,
        venues: Iterable[str],
        webhooks: Iterable[str] = (),
        exchanges: Iterable[str] = (),
        books: Iterable[str] = (),
    ) -> None:
        """Export zeros for every venue, webhook, exchange and book's event kind from the start,
        so rate() and increase() see the first error, and the first alert (Grafana's threshold
        annotations)."""
        for book in books:
            for kind in EventKind:
                self.events.labels(book, kind.value)
        for exchange in exchanges:
            self.exchange_bans.labels(exchange)
            self.exchange_refused.labels(exchange)
        for venue in venues:
            for reason in ("timeout", "unavailable", "malformed", "unexpected"):
                self.venue_errors.labels(venue, reason)
        for target in webhooks:
            self.webhook_dead_letters.labels(target)


class EquityCollector(Collector):
    """Renders the latest snapshot of every book at scrape time."""

    def __init__(
        self,
        books: Callable[[], list[BookView]],
        outbox_backlog: Callable[[], dict[str, int]],
        clock: Callable[[], datetime],
    ) -> None:
        self._books = books
        self._backlog = outbox_backlog
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        g = _Gauges()
        g.build_info.add_metric([__version__], 1)
        for book in self._books():
            for state in book.venues:
                g.venue(book.name, state)
            if book.snapshot is not None:
                g.snapshot(book.snapshot, now)
                if book.age is not None:
                    g.age.add_metric([book.name], book.age)
            g.unwritten.add_metric([book.name], book.unwritten_events)
        for target, backlog in sorted(self._backlog().items()):
            g.outbox_backlog.add_metric([target], backlog)
        yield from g.all()


class _Gauges:
    """The gauge families of one scrape."""

    def __init__(self) -> None:
        def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"equity_daemon_{name}", doc, labels=labels)

        money = ["book", "currency"]
        self.build_info = gauge("build_info", "Build information (value is always 1).", ["version"])
        self.equity = gauge(
            "equity", "Equity (assets minus debt plus uPnL) of the latest snapshot.", money
        )
        self.assets = gauge("assets", "Total assets (what is held) of the latest snapshot.", money)
        self.debt = gauge("debt", "Total debt (what is owed) of the latest snapshot.", money)
        self.unrealized_pnl = gauge(
            "unrealized_pnl",
            "Open perpetuals' unrealised PnL, each at its own contract's mark, in equity.",
            money,
        )
        self.venue_equity = gauge("venue_equity", "Equity by venue.", ["book", "venue", "currency"])
        self.asset_equity = gauge("asset_equity", "Equity by asset.", ["book", "asset", "currency"])
        self.excluded = gauge(
            "excluded_value",
            "Value reported beside equity, not in it (locked, in_transit, hedge notional).",
            ["book", "kind", "currency"],
        )
        self.complete = gauge(
            "snapshot_complete", "1 when the latest snapshot has no problems, else 0.", ["book"]
        )
        self.unvalued = gauge(
            "unvalued_positions",
            "Lines in equity with no price anyone vouches for; while above 0 the equity gauges "
            "are NaN.",
            ["book"],
        )
        self.unknown = gauge(
            "equity_unknown",
            "1 while the equity is unknown (a venue has not reported yet, or a line has no "
            "price): the equity gauges are NaN.",
            ["book"],
        )
        self.sequence = gauge(
            "snapshot_sequence", "Sequence number of the latest snapshot.", ["book"]
        )
        self.age = gauge(
            "snapshot_age_seconds", "Seconds since the latest snapshot was computed.", ["book"]
        )
        self.problems = gauge(
            "snapshot_problems", "Problems in the latest snapshot, by kind.", ["book", "kind"]
        )
        self.price = gauge(
            "price", "Price used, in the share class.", ["book", "asset", "currency"]
        )
        self.price_age = gauge(
            "price_age_seconds",
            "Age of the oldest quote behind a price, with the first hop's source.",
            ["book", "asset", "source"],
        )
        self.venue_up = gauge(
            "venue_up", "1 when the venue's latest fetch succeeded, else 0.", ["book", "venue"]
        )
        self.venue_last_success = gauge(
            "venue_last_success_timestamp_seconds",
            "Unix time of the venue's last good report (polled in the background).",
            ["book", "venue"],
        )
        self.unwritten = gauge(
            "history_unwritten_events",
            "Events kept in memory because the history database refused to write them.",
            ["book"],
        )
        self.peg_protocol = gauge(
            "peg_protocol_rate",
            "What 1 pegged asset redeems for in its quote asset (1 for stETH/ETH).",
            ["book", "asset", "quote"],
        )
        self.peg_market = gauge(
            "peg_market_rate",
            "The pegged asset's market rate in its quote asset (its most trusted fresh source).",
            ["book", "asset", "quote"],
        )
        self.depeg = gauge(
            "depeg_basis_points",
            "(market / protocol - 1) x 10,000 of a pegged asset: -30 is 0.3 % below its peg.",
            ["book", "asset"],
        )
        self.reconciliation = gauge(
            "reconciliation_difference_ratio",
            "(computed - venue-reported) / |reported| equity of an account, where the venue "
            "reports its own total.",
            ["book", "venue", "account"],
        )
        self.health_factor = gauge(
            "aave_health_factor",
            "Aave health factor of an address in a market, from the venue's last good report "
            "(+Inf without debt).",
            ["book", "venue", "market", "address"],
        )
        aave = ["book", "venue", "market", "address", "currency"]
        self.aave_collateral = gauge(
            "aave_collateral",
            "Aave totalCollateralBase of an address in a market, in its base currency.",
            aave,
        )
        self.aave_debt = gauge(
            "aave_debt", "Aave totalDebtBase of an address in a market, in its base currency.", aave
        )
        self.outbox_backlog = gauge(
            "outbox_backlog",
            "Events waiting for delivery to a webhook or Apprise destination.",
            ["target"],
        )

    def venue(self, book: str, state: VenueState) -> None:
        self.venue_up.add_metric([book, state.venue], 1 if state.latest.ok else 0)
        if state.last_good is not None:
            stamp = state.last_good.fetched_at.timestamp()
            self.venue_last_success.add_metric([book, state.venue], stamp)
            for health in state.last_good.health:
                self.health_factor.add_metric(
                    [book, state.venue, health.market, health.address], float(health.value)
                )
                labels = [book, state.venue, health.market, health.address, health.currency or ""]
                if health.collateral is not None:
                    self.aave_collateral.add_metric(labels, float(health.collateral))
                if health.debt is not None:
                    self.aave_debt.add_metric(labels, float(health.debt))

    def snapshot(self, snap: Snapshot, now: datetime) -> None:
        book, currency = snap.book, snap.share_class.value
        self.equity.add_metric([book, currency], _money(snap.equity))
        self.assets.add_metric([book, currency], _money(snap.total_assets))
        self.debt.add_metric([book, currency], _money(snap.total_debt))
        self.unrealized_pnl.add_metric([book, currency], _money(snap.unrealized_pnl))
        for venue, value in snap.equity_by_venue.items():
            self.venue_equity.add_metric([book, venue, currency], _money(value))
        for asset, value in snap.equity_by_asset.items():
            self.asset_equity.add_metric([book, asset, currency], _money(value))
        self.unvalued.add_metric([book], len(snap.unvalued))
        self.unknown.add_metric([book], 1 if snap.equity is None else 0)
        excluded: dict[str, Decimal] = {}
        for line in snap.excluded:
            if line.value is not None:
                excluded[line.kind.value] = excluded.get(line.kind.value, Decimal(0)) + line.value
        for kind, value in sorted(excluded.items()):
            self.excluded.add_metric([book, kind, currency], float(value))
        self.complete.add_metric([book], 1 if snap.complete else 0)
        self.sequence.add_metric([book], snap.sequence)
        kinds = dict.fromkeys(ProblemKind, 0)
        for problem in snap.problems:
            kinds[problem.kind] += 1
        for kind, count in kinds.items():
            self.problems.add_metric([book, kind.value], count)
        for peg in snap.pegs:
            self.peg_protocol.add_metric([book, peg.base, peg.quote], float(peg.protocol))
            if peg.market is not None and peg.basis_points is not None:
                self.peg_market.add_metric([book, peg.base, peg.quote], float(peg.market))
                self.depeg.add_metric([book, peg.base], float(peg.basis_points))
        for item in snap.reconciliations:
            if item.ratio is not None:
                self.reconciliation.add_metric([book, item.venue, item.account], float(item.ratio))
        for price in snap.prices:
            self.price.add_metric([book, price.asset, currency], float(price.price))
            source = price.sources[0] if price.sources else "share_class"
            self.price_age.add_metric(
                [book, price.asset, source], (now - price.as_of).total_seconds()
            )

    def all(self) -> Iterator[GaugeMetricFamily]:
        yield from (value for value in vars(self).values() if isinstance(value, GaugeMetricFamily))


def _money(value: Decimal | None) -> float:
    """A money sample: NaN for an unknown figure, never 0."""
    return nan if value is None else float(value)
