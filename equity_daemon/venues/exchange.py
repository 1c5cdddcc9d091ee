"""The exchange venue: one Binance, Bybit or OKX account, read over REST through ccxt.

One class for every exchange; what differs per exchange is only the field mapping, in
`venues/exchanges/<exchange>.py`. The mechanics here:

* one ccxt instance per configured account type (`exchange_client.create_exchange`), plus one
  for market data (`observe`): separate instances keep ccxt's caches, rate-limit headers and,
  later, websocket clients apart (venue-pitfalls 16); with a `budget`, they all wait on the
  exchange host's one rate limiter (`exchange_budget`);
* every fetch reads **every** configured account type (balances, then the account's open
  perpetuals and any extra raw call its mapping names) and replaces the venue's state with that
  full snapshot: nothing is merged from an earlier fetch, so a coin that went to zero is zero.
  An account *mode* that decides how the answers read (`mapping.MODE`: OKX's account level) is
  the exception: read at the first fetch, at every stream (re)start and resync, and after any
  failed fetch — not every cycle; a mapping fails a fetch whose answers do not fit the mode.
  A stream (`StreamingExchangeVenue`: Bybit `unified`, Binance `usdm`, OKX `trading`) patches
  this snapshot between fetches with the coins and positions each push names; a REST fetch
  still owns it.
* any account failing fails the whole fetch with that account's reason: a partial report would
  read as a drop in equity. ccxt's errors arrive as `VenueUnavailable` (with `retry_after`),
  `VenueAuthError` or `VenueDataError` (`exchange_errors`); a raw answer that lacks a field the
  mapping needs is a `VenueDataError` naming the field;
* `aclose()` closes every ccxt session (the supervisor calls it at shutdown, shielded).

As a price source (`observe`), it reads the exchange's spot ticker (raw last price) over REST.
`cache_seconds` is 5: the position legs it reports are amounts, not values (see
`venues/exchanges`), so every line of the book is valued at the one price of the cycle however
old that price is; caching only saves a request per cycle when cycles come quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from types import ModuleType
from typing import Any

import anyio
import structlog

from equity_daemon.clock import Clock
from equity_daemon.errors import VenueDataError, VenueError
from equity_daemon.model import Position, ReportedTotal, VenueReport, decimal_str
from equity_daemon.oracle import Observation
from equity_daemon.prices import SourceKind
from equity_daemon.venues import exchange_client
from equity_daemon.venues.exchange_budget import RequestBudget
from equity_daemon.venues.exchange_client import Credentials
from equity_daemon.venues.exchange_errors import Path, check_answer, exchange_errors
from equity_daemon.venues.exchanges import (
    BadField,
    Lines,
    binance,
    bybit,
    okx,
    transfers,
)

log = structlog.get_logger()

MAPPINGS: Mapping[str, ModuleType] = {"binance": binance, "bybit": bybit, "okx": okx}
CLOSE_GRACE = 5.0
MARKET_DATA = "market"  # the key of the instance that reads tickers
TRANSFERS = "transfers"  # the account of deposits and withdrawals under way
STREAM = ":stream"  # the key suffix of an account type's ccxt.pro instance
# the raw deposit/withdrawal history answer: Binance a list, Bybit `result.rows`, OKX `data`
TRANSFERS_REQUIRED: Mapping[str, tuple[Path, ...]] = {
    "binance": ((),),
    "bybit": (("result", "rows"),),
    "okx": (("data",),),
}


class ExchangeVenue:
    """One exchange account and the account types configured for it.

    Args:
        exchange_id: `binance`, `bybit` or `okx`.
        accounts: account types to read (`settings.EXCHANGE_ACCOUNTS` names them per exchange).
        request_timeout: seconds for one HTTP request (a fetch makes several).
        rate_limit: ccxt's client-side throttle (off only against a local test server).
        in_transit: also read deposit and withdrawal history (`in_transit` lines).
        budget: the exchange host's request budget, shared with every other instance that
            calls it (`exchange_budget`); each instance has its own throttle without one.
    """

    kind = SourceKind.EXCHANGE_TICKER
    cache_seconds = 5.0

    def __init__(
        self,
        name: str,
        exchange_id: str,
        accounts: Sequence[str],
        credentials: Credentials,
        clock: Clock,
        *,
        base_url: str | None = None,
        sandbox: bool = False,
        request_timeout: float = exchange_client.DEFAULT_TIMEOUT,
        rate_limit: bool = True,
        in_transit: bool = True,
        on_disagreement: Callable[[str], None] | None = None,
        budget: RequestBudget | None = None,
    ) -> None:
        if exchange_id not in MAPPINGS:
            raise ValueError(f"unsupported exchange {exchange_id!r}")
        self.name = name
        self.exchange_id = exchange_id
        self.mapping = MAPPINGS[exchange_id]
        unknown = [a for a in accounts if a not in self.mapping.ACCOUNTS]
        if unknown or not accounts:
            raise ValueError(f"{exchange_id} account types {unknown or '(none)'} are not known")
        self.accounts = tuple(accounts)
        self._credentials = credentials
        self._clock = clock
        self._base_url = base_url
        self._sandbox = sandbox
        self._timeout = request_timeout
        self._rate_limit = rate_limit
        self._in_transit = in_transit
        self._clients: dict[str, Any] = {}
        # the raw answers of the last REST snapshot, as pushes have patched them since
        self._state: dict[str, _Account] = {}
        self._transfers: Lines | None = None
        self._compare_next = False  # a stream keeps the state: compare the next snapshot to it
        self._on_disagreement = on_disagreement or (lambda venue: None)
        self._budget = budget
        # the raw answer of each account's `mapping.MODE` call: read at the first fetch, again
        # after a failed fetch and at every stream resync, never per cycle
        self._modes: dict[str, Any] = {}

    def __repr__(self) -> str:  # never the credentials
        return f"ExchangeVenue({self.name!r}, {self.exchange_id!r}, {self.accounts!r})"

    def client(self, key: str, *, streaming: bool = False) -> Any:
        """The ccxt instance of one account type (or `MARKET_DATA`), created on first use;
        `streaming`: a ccxt.pro instance of its own (key `<account>:stream`)."""
        if streaming:
            key = f"{key}{STREAM}"
        client = self._clients.get(key)
        if client is None:
            client = exchange_client.create_exchange(
                self.exchange_id,
                self._credentials,
                base_url=self._base_url,
                sandbox=self._sandbox,
                timeout=self._timeout,
                rate_limit=self._rate_limit,
                streaming=streaming,
                budget=self._budget,
            )
            self._clients[key] = client
        return client

    async def fetch(self) -> VenueReport:
        """Every configured account type, read now; the first failure fails the whole fetch.

        The answers replace the venue's state (what a stream patches between fetches); a
        snapshot that disagrees with a state a stream has been keeping is counted.
        """
        results: dict[str, _Account] = {}
        failures: list[VenueError] = []
        transfers_lines: list[Lines] = []

        async def read(account: str) -> None:
            try:
                if account == TRANSFERS:
                    transfers_lines.append(await self._read_transfers())
                else:
                    results[account] = await self._read(account)
            except VenueError as exc:
                failures.append(exc)

        reads = (*self.accounts, TRANSFERS) if self._in_transit else self.accounts
        async with anyio.create_task_group() as tg:
            for account in reads:
                tg.start_soon(read, account)
        if failures:
            self._modes.clear()  # a mode switched since it was read fails; read it again
            raise failures[0]
        try:
            lines = {account: self._lines(account, results[account]) for account in self.accounts}
        except VenueDataError:
            self._modes.clear()
            raise
        if self._compare_next and self._state and self._signature() != _signature(lines):
            self._on_disagreement(self.name)
            log.warning("stream_rest_disagreement", venue=self.name)
        self._state = results
        self._transfers = transfers_lines[0] if transfers_lines else None
        return self._report(lines, None)

    def _report(self, lines: Mapping[str, Lines], as_of: datetime | None) -> VenueReport:
        positions: list[Position] = []
        reported: list[ReportedTotal] = []
        every = [*(lines[account] for account in self.accounts)]
        if self._transfers is not None:
            every.append(self._transfers)
        for found in every:
            positions += found.positions
            reported += found.reported
        fetched_at = self._clock()
        return VenueReport(
            self.name,
            fetched_at,
            tuple(positions),
            as_of=None if as_of is None else min(as_of, fetched_at),
            revision=_revision(positions, reported),
            reported=tuple(reported),
        )

    def _signature(self) -> frozenset[tuple[str, str, str, str, str]]:
        """The amounts of the lines of the current state (details such as uPnL left out)."""
        return _signature({a: self._lines(a, self._state[a]) for a in self.accounts})

    async def _read(self, account: str) -> _Account:
        client = self.client(account)
        balance = await exchange_client.fetch_balance(
            client, self.name, self.mapping.ACCOUNTS[account]
        )
        extra = None
        if account in self.mapping.EXTRA:
            method, params = self.mapping.EXTRA[account]
            with exchange_errors(self.name, client):
                extra = await getattr(client, method)(dict(params))
        raw_positions: list[dict[str, Any]] = []
        for params in self.mapping.POSITIONS.get(account, ()):
            raw_positions += await exchange_client.fetch_positions(client, self.name, params)
        found = _Account(balance.get("info"), extra, await self._mode(client, account))
        try:
            for i, position in enumerate(raw_positions):
                market = client.markets.get(position.get("symbol"))
                if market is None:
                    raise BadField(f"a position in an unlisted market {position.get('symbol')!r}")
                found.positions[self._position_key(position.get("info"), i)] = (
                    position.get("info"),
                    market,
                )
        except (BadField, KeyError, TypeError) as exc:
            raise VenueDataError(self.name, f"{account}: malformed answer ({exc})") from None
        return found

    async def _mode(self, client: Any, account: str) -> Any:
        """The account's mode (`mapping.MODE`, e.g. OKX's account level), read once and kept."""
        if account not in getattr(self.mapping, "MODE", {}):
            return None
        if account not in self._modes:
            method, params = self.mapping.MODE[account]
            with exchange_errors(self.name, client):
                self._modes[account] = await getattr(client, method)(dict(params))
        return self._modes[account]

    def _position_key(self, raw: Any, index: int) -> Any:
        key = getattr(self.mapping, "position_key", None)
        return index if key is None else key(raw)

    def _lines(self, account: str, found: _Account) -> Lines:
        """The lines of one account from its raw answers, as the mapping reads them."""
        lines = Lines(self.name, account)
        mode = {} if found.mode is None else {"mode": found.mode}  # only mappings with a MODE
        try:
            self.mapping.balance(lines, account, found.info, found.extra, **mode)
            for raw, market in found.positions.values():
                self.mapping.position(lines, raw, market, **mode)
        except (BadField, KeyError, TypeError) as exc:
            raise VenueDataError(self.name, f"{account}: malformed answer ({exc})") from None
        return lines

    async def _read_transfers(self) -> Lines:
        """Deposits not yet credited and withdrawals not yet completed, by raw status."""
        client = self.client(TRANSFERS)
        lines = Lines(self.name, TRANSFERS)
        found = {}
        for direction, method in (
            ("deposit", "fetch_deposits"),
            ("withdrawal", "fetch_withdrawals"),
        ):
            client.last_json_response = None
            with exchange_errors(self.name, client):
                records = await getattr(client, method)()
            what = f"{direction} history"
            check_answer(
                self.name, what, client.last_json_response, TRANSFERS_REQUIRED[self.exchange_id]
            )
            found[direction] = [record.get("info") for record in records]
        try:
            transfers(lines, "deposit", found["deposit"], self.mapping.DEPOSITS)
            transfers(lines, "withdrawal", found["withdrawal"], self.mapping.WITHDRAWALS)
        except (BadField, TypeError) as exc:
            raise VenueDataError(self.name, f"transfers: malformed answer ({exc})") from None
        return lines

    async def observe(self, base: str, quote: str) -> Observation:
        """The exchange's last spot price of `base` in `quote`, from its raw ticker."""
        client = self.client(MARKET_DATA)
        rate = await exchange_client.last_price(
            client, self.name, self.mapping.TICKER_LAST, base, quote
        )
        return Observation(rate, self._clock())

    async def aclose(self) -> None:
        """Close every ccxt session, even while being cancelled (ccxt warns of unclosed ones)."""
        clients, self._clients = list(self._clients.values()), {}
        with anyio.move_on_after(CLOSE_GRACE, shield=True):
            for client in clients:
                try:
                    await client.close()
                except Exception as exc:  # closing is best effort; the next one still closes
                    log.warning("exchange_close_failed", venue=self.name, error=type(exc).__name__)


def streams(exchange_id: str, accounts: Sequence[str]) -> bool:
    """Whether any of these account types of this exchange has a stream implemented here."""
    streamed = getattr(MAPPINGS.get(exchange_id), "STREAMED", ())
    return any(account in streamed for account in accounts)


class StreamingExchangeVenue(ExchangeVenue):
    """An exchange venue whose account types with a private stream follow it (ccxt.pro).

    `updates()` takes a REST snapshot, then patches it with every balance and position push
    (`mapping.patch_balance`, positions by `mapping.position_key`, closed ones removed) and yields
    the full report after each batch of pushes, its `as_of` the push's event time. Debt and
    interest keep their REST values (OKX: unless a push carries both). A REST snapshot replaces
    the state every `resync_seconds` and whenever `updates()` starts again (after a reconnect);
    one that disagrees with the streamed state calls `on_disagreement`. Account types without a
    stream keep their last REST lines until the next snapshot.
    """

    def __init__(
        self,
        *args: Any,
        keepalive: float = 30.0,
        resync_seconds: float = 300.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.streamed = tuple(
            a for a in self.accounts if a in getattr(self.mapping, "STREAMED", ())
        )
        if not self.streamed:
            raise ValueError(f"{self.exchange_id} streams none of {self.accounts}")
        self._keepalive = keepalive
        self.resync_seconds = resync_seconds

    @property
    def keepalive(self) -> float:
        return self._keepalive

    async def updates(self) -> AsyncGenerator[VenueReport, None]:
        """A full report at start, then one after every batch of pushes (and every resync).

        The watchers run as asyncio tasks of their own rather than in a task group: a task
        group must not stay open across a generator's `yield`. Their failures come through the
        same channel as the pushes and end the stream; the tasks end with it.
        """
        send, receive = anyio.create_memory_object_stream[_Heard](math.inf)
        watchers: list[asyncio.Task[None]] = []
        try:
            for account in self.streamed:
                client = self.client(account, streaming=True)
                exchange_client.listen(client, partial(self._heard, send, account))
                params = self.mapping.WATCH[account]
                watchers += [
                    asyncio.ensure_future(self._watch(send, client, call))
                    for call in (
                        partial(client.watch_balance, dict(params)),
                        partial(client.watch_positions, None, None, None, dict(params)),
                    )
                ]
            self._modes.clear()  # (re)connected: the account mode is read again
            yield await self.fetch()  # after subscribing: a push from here on is kept
            self._compare_next = True
            resync_at = anyio.current_time() + self.resync_seconds
            while True:
                heard = None
                with anyio.move_on_after(max(0.0, resync_at - anyio.current_time())):
                    heard = await receive.receive()
                if heard is None:
                    self._modes.clear()  # a resync reads the account mode again
                    yield await self.fetch()
                    resync_at = anyio.current_time() + self.resync_seconds
                    continue
                batch = [heard]
                while True:  # debounce: every push already waiting goes into one report
                    try:
                        batch.append(receive.receive_nowait())
                    except anyio.WouldBlock:
                        break
                yield self._patched(batch)
        finally:
            self._compare_next = False
            send.close()
            receive.close()
            for watcher in watchers:
                watcher.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.gather(*watchers, return_exceptions=True)

    def _heard(self, send: Any, account: str, kind: str, message: dict[str, Any]) -> None:
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            send.send_nowait((account, kind, message))

    async def _watch(self, send: Any, client: Any, call: Callable[[], Awaitable[Any]]) -> None:
        """Keep one subscription alive; its failure ends the stream (the data comes by `_heard`)."""
        try:
            while True:
                with exchange_errors(self.name, client):
                    await call()
        except Exception as exc:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                send.send_nowait(("", "error", exc))

    def _patched(self, batch: Sequence[_Heard]) -> VenueReport:
        """The state with every push of `batch` applied, as a full report."""
        latest: int | None = None
        for account, kind, message in batch:
            if isinstance(message, BaseException):
                raise message
            found = self._state.get(account)
            if found is None:
                continue
            try:
                if kind == "balance":
                    found.info = self.mapping.patch_balance(found.info, message)
                else:
                    client = self.client(account, streaming=True)
                    for raw in self.mapping.pushed_positions(message):
                        key = self.mapping.position_key(raw)
                        if self.mapping.closed(raw):
                            found.positions.pop(key, None)
                            continue
                        kept = found.positions.get(key)
                        raw = raw if kept is None else {**kept[0], **raw}
                        symbol = client.parse_position(raw).get("symbol")
                        market = client.markets.get(symbol)
                        if market is None:
                            raise BadField(f"a position in an unlisted market {symbol!r}")
                        found.positions[key] = (raw, market)
            except (BadField, KeyError, TypeError, IndexError) as exc:
                raise VenueDataError(self.name, f"{account}: malformed push ({exc})") from None
            when = self.mapping.event_ms(message)
            if when is not None and (latest is None or when > latest):
                latest = when
        lines = {a: self._lines(a, self._state[a]) for a in self.accounts}
        as_of = None if latest is None else datetime.fromtimestamp(latest / 1000, UTC)
        return self._report(lines, as_of)


# (account, "balance" | "positions", raw message) from a push, or ("", "error", exception)
_Heard = tuple[str, str, Any]


@dataclass
class _Account:
    """One account type's raw answers: balance, extra call, mode, open positions by key."""

    info: Any
    extra: Any
    mode: Any = None
    positions: dict[Any, tuple[Any, Mapping[str, Any]]] = field(default_factory=dict)


def _signature(lines: Mapping[str, Lines]) -> frozenset[tuple[str, str, str, str, str]]:
    return frozenset(
        (p.account, p.asset.symbol, p.kind.value, p.line_id or "", decimal_str(p.amount))
        for found in lines.values()
        for p in found.positions
    )


def _revision(positions: Sequence[Position], reported: Sequence[ReportedTotal]) -> str:
    """A token that changes whenever any line or reported total does."""
    digest = hashlib.blake2b(digest_size=16)
    for p in positions:
        row = (p.account, p.asset.symbol, p.kind.value, decimal_str(p.amount), p.line_id or "")
        digest.update(repr(row).encode())
        digest.update(repr(sorted((k, str(v)) for k, v in p.details.items())).encode())
    for r in reported:
        digest.update(repr((r.account, decimal_str(r.amount), r.currency, r.label)).encode())
    return digest.hexdigest()
