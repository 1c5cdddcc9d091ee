"""What an exchange host lists: ccxt's markets, loaded again when a symbol appears they lack.

ccxt loads an instance's markets once, at its first request. A market the exchange lists after
that is unknown to the instance until a restart: a position in it cannot be placed (its contract
size, base and settle coin are in the market), so every fetch of its account would fail. The
venue and the market data ask `Listings.refresh` instead when a symbol is not in an instance's
markets, and look again:

* if another instance of the host that loads the same market types has reloaded them since this
  one was made, this one takes them over (`set_markets_from_exchange`: no request);
* else, if those market types of the host were not reloaded in the last `RELOAD_EVERY` seconds,
  this instance reloads them (`load_markets(reload=True)`), once for every instance of the host;
* else nothing is asked: the symbol stays unknown until then (a symbol the exchange really does
  not list costs one reload per `RELOAD_EVERY`, never one per fetch).

One `Listings` per exchange host, held by its `RequestBudget`: the bound is per host and per set
of market types (a venue's instances load spot and contracts, the market data spot only).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio

RELOAD_EVERY = 300.0  # seconds: the most often one host's markets of one kind are reloaded
MADE_AT = "equity_daemon_listed_at"  # the instance attribute: when its markets were (re)made


class Listings:
    """The host's latest reload of each set of market types, and when it happened.

    Args:
        monotonic: the clock the reloads are spaced on.
        every: the shortest time between two reloads of the same market types.
    """

    def __init__(self, monotonic: Callable[[], float], every: float = RELOAD_EVERY) -> None:
        self._monotonic = monotonic
        self._every = every
        self._latest: dict[str, tuple[float, Any]] = {}  # kinds -> (when, reloaded instance)
        self._tried: dict[str, float] = {}  # kinds -> when a reload was last started
        self._lock = anyio.Lock()

    def adopted(self, client: Any) -> None:
        """Note a new instance of the host: the markets it loads are as new as it is."""
        setattr(client, MADE_AT, self._monotonic())

    async def refresh(self, client: Any) -> bool:
        """Give `client` the host's newest markets: another instance's newer reload, or a
        reload now when the host's last one of these market types is older than `every`.

        Returns:
            Whether `client`'s markets changed (look the symbol up again), False when the last
            reload is too recent to ask again.

        Raises:
            ccxt errors of the reload: the caller translates them (`exchange_errors`).
        """
        kinds = _kinds(client)
        async with self._lock:  # two instances missing the same new symbol: one reload
            latest = self._latest.get(kinds)
            if latest is not None and latest[1] is not client and latest[0] >= _made(client):
                client.set_markets_from_exchange(latest[1])
                setattr(client, MADE_AT, latest[0])
                return True
            now = self._monotonic()
            tried = self._tried.get(kinds)
            if tried is not None and now - tried < self._every:
                return False
            self._tried[kinds] = now  # a failed reload counts too: no retry storm
            await client.load_markets(True)
            self._latest[kinds] = (now, client)
            setattr(client, MADE_AT, now)
            return True


def _kinds(client: Any) -> str:
    """The market types an instance loads (its `fetchMarkets` option)."""
    return json.dumps(client.options.get("fetchMarkets"), sort_keys=True, default=str)


def _made(client: Any) -> float:
    made: float = getattr(client, MADE_AT, float("-inf"))
    return made
