"""One REST request budget per exchange host, shared by every ccxt instance that calls it.

An exchange limits requests per IP (Binance: request weight per minute; Bybit and OKX: requests
per second per endpoint group), not per ccxt instance. The daemon holds several instances of one
exchange: one per account type of each venue, one per venue for its streams, and one for the
exchange's keyless market data (`venues/market_data.py`). Each would throttle itself with its own
bucket, so together they could send several times the rate the exchange allows.

`Budgets.for_host` hands out one `RequestBudget` per resolved host (exchange, sandbox, base_url),
and `RequestBudget.attach` makes an instance wait on that budget's one `Throttler` — ccxt's own
leaky bucket, sized from ccxt's `rateLimit` for the exchange — instead of its own. ccxt hands
every REST request's endpoint `cost` to `exchange.throttle(cost)` (`fetch2`); the budget wraps
that call to add the cost to its `weight` (the request weight spent, as ccxt counts it) before
waiting. An instance made with `rate_limit` off (a local test server) neither waits nor counts:
ccxt skips `throttle` then.

**A ban is the host's.** A 418 or 429 with `Retry-After` (Binance's IP ban: minutes, then days
for an IP that keeps asking) bans the host, not the caller that heard it: until it ends, every
instance of the host — venues' fetches and polls, their streams' listen-key requests, market
data and venue tickers — is refused at `fetch`, before anything is sent, with `HostBanned` (a
`VenueUnavailable` with the time left as its `retry_after`, so the poller waits it out). The
budget wraps each instance's `fetch` for this, so it holds with `rate_limit` off too. A later
`Retry-After` can only lengthen a ban. Its end is told to the `BudgetListener` (a metric) and
read by the status page (`Budgets.bans`); each refused request is counted.

Each budget also holds its host's `Listings` (`exchange_listings`): the markets its instances
reload when an unknown symbol appears.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

import ccxt.async_support as ccxt
import structlog
from ccxt.async_support.base.throttler import Throttler

from equity_daemon.clock import Clock, SystemClock
from equity_daemon.venues.exchange_errors import HostBanned, retry_after_seconds
from equity_daemon.venues.exchange_listings import Listings
from equity_daemon.venues.exchange_urls import Host, host_of

log = structlog.get_logger()


class BudgetListener(Protocol):
    """**Protocol**: who hears what a budget spends and refuses (`metrics.DaemonMetrics`)."""

    def request_weight(self, exchange: str, cost: float) -> None:
        """A request of this cost is about to be sent (counted before the throttle's wait)."""

    def exchange_banned(self, exchange: str, until: datetime) -> None:
        """The host answered a ban (418/429 with `Retry-After`) that lasts until `until`."""

    def request_refused(self, exchange: str) -> None:
        """A request was not sent because the host's ban has not ended."""


class _Silent:
    def request_weight(self, exchange: str, cost: float) -> None:
        return None

    def exchange_banned(self, exchange: str, until: datetime) -> None:
        return None

    def request_refused(self, exchange: str) -> None:
        return None


class RequestBudget:
    """The one throttle of an exchange host, the request weight spent on it, and its ban.

    Args:
        exchange_id: `binance`, `bybit` or `okx` (the metric's label).
        listener: told of every request's weight, every ban and every refused request.
        clock: a ban runs on its monotonic clock; its end is shown on the wall clock.
    """

    def __init__(
        self,
        exchange_id: str,
        listener: BudgetListener | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.exchange_id = exchange_id
        self.weight = 0.0  # ccxt's cost units, summed since start
        self._listener = listener or _Silent()
        self._clock = clock or SystemClock()
        self._throttler: Throttler | None = None
        self._banned_until: float | None = None  # monotonic
        self.banned_until: datetime | None = None  # the latest ban's end, on the wall clock
        self.listings = Listings(self._clock.monotonic)

    def attach(self, client: Any) -> None:
        """Make a ccxt instance of this host wait on the shared throttle, count its costs and
        honour the host's ban.

        Call before the instance's first request. ccxt's bucket is sized per exchange, so the
        first instance's (`tokenBucket`, from its `rateLimit`) sizes the shared one.
        """
        if client.id != self.exchange_id:
            raise ValueError(f"a {client.id} instance cannot share the {self.exchange_id} budget")
        if self._throttler is None:
            self._throttler = Throttler(dict(client.tokenBucket))
        throttler = self._throttler
        client.throttler = throttler  # `open()` points its loop at the running one: harmless
        default_cost = client.tokenBucket["cost"]

        async def throttle(cost: Any = None) -> None:
            self.refuse_while_banned()  # neither counted nor queued
            spent = default_cost if cost is None else cost
            self.weight += spent
            self._listener.request_weight(self.exchange_id, spent)
            await throttler(cost)

        send = client.fetch

        async def fetch(
            url: str, method: str = "GET", headers: Any = None, body: Any = None
        ) -> Any:
            self.refuse_while_banned()  # also after the throttle's wait, and unthrottled
            try:
                return await send(url, method, headers, body)
            except (ccxt.RateLimitExceeded, ccxt.DDoSProtection):
                heard = client.last_response_headers  # this answer's: set before ccxt raised
                wait = retry_after_seconds(heard if isinstance(heard, Mapping) else {})
                if wait:
                    self.ban(wait)
                raise

        client.throttle = throttle  # ccxt's `fetch2` calls both on the instance
        client.fetch = fetch
        self.listings.adopted(client)

    def ban(self, seconds: float) -> None:
        """Send nothing to the host for `seconds` (or longer, if a ban already runs longer)."""
        now = self._clock.monotonic()
        until = now + seconds
        if self._banned_until is not None and self._banned_until >= until:
            return
        self._banned_until = until
        self.banned_until = self._clock() + timedelta(seconds=seconds)
        log.warning(
            "exchange_banned",
            exchange=self.exchange_id,
            seconds=round(seconds),
            until=self.banned_until.isoformat(timespec="seconds"),
        )
        self._listener.exchange_banned(self.exchange_id, self.banned_until)

    def ban_left(self) -> float:
        """Seconds until the host's ban ends (0 when none runs)."""
        if self._banned_until is None:
            return 0.0
        return max(0.0, self._banned_until - self._clock.monotonic())

    def refuse_while_banned(self) -> None:
        """Raise `HostBanned` while the host's ban runs (and count the refusal)."""
        left = self.ban_left()
        if left > 0 and self.banned_until is not None:
            self._listener.request_refused(self.exchange_id)
            raise HostBanned(self.exchange_id, self.banned_until, left)


class Budgets:
    """Every exchange host's budget, created on first use; one set per daemon.

    Args:
        listener: handed to every budget (the daemon's metrics).
        clock: every budget's (bans run on it).
    """

    def __init__(self, listener: BudgetListener | None = None, clock: Clock | None = None) -> None:
        self._listener = listener
        self._clock = clock
        self._budgets: dict[Host, RequestBudget] = {}
        self._reported: dict[str, float] = {}

    def for_host(
        self, exchange_id: str, *, sandbox: bool = False, base_url: str | None = None
    ) -> RequestBudget:
        """The budget of the host these settings send requests to."""
        host = host_of(exchange_id, sandbox, base_url)  # whose limit the requests count against
        budget = self._budgets.get(host)
        if budget is None:
            budget = RequestBudget(exchange_id, self._listener, self._clock)
            self._budgets[host] = budget
        return budget

    @property
    def exchanges(self) -> list[str]:
        """Every exchange with a budget, once each."""
        return sorted({budget.exchange_id for budget in self._budgets.values()})

    def bans(self) -> dict[str, datetime]:
        """The exchanges whose host is banned now, each with when its ban ends (the latest of
        the exchange's hosts)."""
        found: dict[str, datetime] = {}
        for budget in self._budgets.values():
            until = budget.banned_until
            if budget.ban_left() > 0 and until is not None:
                found[budget.exchange_id] = max(until, found.get(budget.exchange_id, until))
        return found

    def weight_since_last_call(self) -> dict[str, float]:
        """The weight spent per exchange since this was last called (a cycle's weight); every
        exchange with a budget is named, with 0 when nothing was sent."""
        totals: dict[str, float] = {}
        for budget in self._budgets.values():
            totals[budget.exchange_id] = totals.get(budget.exchange_id, 0.0) + budget.weight
        spent = {ex: total - self._reported.get(ex, 0.0) for ex, total in totals.items()}
        self._reported = totals
        return spent
