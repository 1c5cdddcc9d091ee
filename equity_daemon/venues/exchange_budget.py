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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ccxt.async_support.base.throttler import Throttler

# (exchange id, sandbox, base_url): where the requests go, hence whose limit they count against
Host = tuple[str, bool, str | None]
WeightListener = Callable[[str, float], None]


class RequestBudget:
    """The one throttle of an exchange host, and the request weight spent on it.

    Args:
        exchange_id: `binance`, `bybit` or `okx` (the metric's label).
        on_weight: told `(exchange_id, cost)` for every request, as it is sent.
    """

    def __init__(self, exchange_id: str, on_weight: WeightListener | None = None) -> None:
        self.exchange_id = exchange_id
        self.weight = 0.0  # ccxt's cost units, summed since start
        self._on_weight = on_weight or (lambda exchange, cost: None)
        self._throttler: Throttler | None = None

    def attach(self, client: Any) -> None:
        """Make a ccxt instance of this host wait on the shared throttle and count its costs.

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
            spent = default_cost if cost is None else cost
            self.weight += spent
            self._on_weight(self.exchange_id, spent)
            await throttler(cost)

        client.throttle = throttle  # ccxt's `fetch2` calls it on the instance


class Budgets:
    """Every exchange host's budget, created on first use; one set per daemon.

    Args:
        on_weight: handed to every budget (the daemon counts the weight in a metric).
    """

    def __init__(self, on_weight: WeightListener | None = None) -> None:
        self._on_weight = on_weight
        self._budgets: dict[Host, RequestBudget] = {}
        self._reported: dict[str, float] = {}

    def for_host(
        self, exchange_id: str, *, sandbox: bool = False, base_url: str | None = None
    ) -> RequestBudget:
        """The budget of the host these settings send requests to."""
        host = (exchange_id, sandbox, None if base_url is None else base_url.rstrip("/"))
        budget = self._budgets.get(host)
        if budget is None:
            budget = self._budgets[host] = RequestBudget(exchange_id, self._on_weight)
        return budget

    def weight_since_last_call(self) -> dict[str, float]:
        """The weight spent per exchange since this was last called (a cycle's weight); every
        exchange with a budget is named, with 0 when nothing was sent."""
        totals: dict[str, float] = {}
        for budget in self._budgets.values():
            totals[budget.exchange_id] = totals.get(budget.exchange_id, 0.0) + budget.weight
        spent = {ex: total - self._reported.get(ex, 0.0) for ex, total in totals.items()}
        self._reported = totals
        return spent
