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
  A stream (`StreamingExchangeVenue`: Bybit `unified`; Binance `usdm`, `portfolio_margin`,
  `spot`, `cross_margin`; OKX `trading`) patches this snapshot between fetches with the coins
  and positions each push names, or, where a push leaves out the debt, reads the account at
  once. Whichever path writes, `exchange_state`'s rule holds: an account is its REST answer
  asked for last, with the pushes heard since applied on top.
* a position (read or pushed) in a market the instance does not know, listed since start,
  reloads the host's markets (`exchange_listings`: bounded, shared by the host's instances) and
  is read against them;
* any account failing fails the whole fetch with that account's reason, prefixed with the
  account type (a partial report would read as a drop in equity). ccxt's errors arrive as
  `VenueUnavailable` (with `retry_after`), `VenueAuthError` or `VenueDataError`
  (`exchange_errors`, which names the failed request); a raw answer that lacks a field the
  mapping needs is a `VenueDataError` naming the field;
* `aclose()` closes every ccxt session (the supervisor calls it at shutdown, shielded).

As a price source (`observe`), it reads the exchange's spot ticker (raw last price) over REST,
reused for `cache_seconds` (5). It also reads the mark of each contract it holds (`mark`, one
raw public call per contract and cycle) unless a `[markets.<name>]` of its exchange host does
(`venues/contract_marks`): a contract's legs are valued at its own mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from types import ModuleType
from typing import Any

import anyio
import structlog

from equity_daemon.clock import Clock
from equity_daemon.errors import VenueDataError, VenueError, VenueUnavailable
from equity_daemon.model import Position, ReportedTotal, VenueReport, decimal_str
from equity_daemon.oracle import Observation
from equity_daemon.prices import SourceKind
from equity_daemon.venues import exchange_client
from equity_daemon.venues.contract_marks import Contract, read_mark
from equity_daemon.venues.exchange_budget import RequestBudget
from equity_daemon.venues.exchange_client import Credentials
from equity_daemon.venues.exchange_errors import Path, check_answer, error_code, exchange_errors
from equity_daemon.venues.exchange_state import (
    AccountAnswer,
    ExchangeState,
    Heard,
    Read,
    Snapshot,
)
from equity_daemon.venues.exchange_urls import Host, host_of
from equity_daemon.venues.exchanges import (
    EVERY_COIN,
    BadField,
    Lines,
    binance,
    bybit,
    okx,
    transfers,
)

log = structlog.get_logger()

MAPPINGS: Mapping[str, ModuleType] = {"binance": binance, "bybit": bybit, "okx": okx}
MARKET_DATA = "market"  # the key of the instance that reads tickers
TRANSFERS = "transfers"  # the account of deposits and withdrawals under way
STREAM = ":stream"  # the key suffix of an account type's ccxt.pro instance
# seconds after a push in which a snapshot that disagrees with the stream is not counted: the
# two may be from either side of the change (venue-pitfalls 51)
STREAM_GRACE = 2.0
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
            calls it (`exchange_budget`); without one, the venue's instances share one of
            their own.
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
        # the raw answers of the REST snapshot asked for last, as pushes have patched them since
        self._state = ExchangeState()
        self._compare_next = False  # a stream keeps the state: compare the next snapshot to it
        self._pushed_at: float | None = None  # when the last push was heard (monotonic)
        self._grace = 0.0  # seconds after a push in which a snapshot's disagreement is not counted
        self._on_disagreement = on_disagreement or (lambda venue: None)
        # without a shared budget, the venue's instances still share one (and its ban)
        self._budget = budget or RequestBudget(exchange_id, clock=clock)
        # the raw answer of each account's `mapping.MODE` call: read at the first fetch, again
        # after a failed fetch and at every stream (re)start and resync, never per cycle
        self._modes: dict[str, Any] = {}

    def __repr__(self) -> str:  # never the credentials
        return f"ExchangeVenue({self.name!r}, {self.exchange_id!r}, {self.accounts!r})"

    @property
    def host(self) -> Host:
        """Where its requests go (a market of the same host reads its contracts' marks)."""
        return host_of(self.exchange_id, self._sandbox, self._base_url)

    def client(self, key: str, *, streaming: bool = False) -> Any:
        """The ccxt instance of one account type (or `MARKET_DATA`), created on first use;
        `streaming`: a ccxt.pro instance of its own (key `<account>:stream`)."""
        account = key
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
                market_types=getattr(self.mapping, "MARKET_TYPES", {}).get(account),
            )
            if streaming:  # what ccxt.pro must be told to keep this account's stream alive
                client.options.update(getattr(self.mapping, "STREAM_OPTIONS", {}).get(account, {}))
            self._clients[key] = client
        return client

    async def fetch(self) -> VenueReport:
        """Every configured account type, read now; the first failure fails the whole fetch.

        The answers replace the venue's state (what a stream patches between fetches), with the
        pushes heard since the requests went out applied again on top, unless a read sent later
        has already written them (`exchange_state`); a snapshot that disagrees with a state a
        stream has been keeping is counted. The report is the state's, as it is now.
        """
        read = self._state.open(self._clock.monotonic())
        try:
            self._write(await self._snapshot(self.everything), read, compare=True)
        finally:
            self._state.close(read)
        return self._report(self._current(), None)

    @property
    def everything(self) -> tuple[str, ...]:
        """What a full snapshot reads: every account type and, with `in_transit`, the
        transfers under way."""
        return (*self.accounts, TRANSFERS) if self._in_transit else self.accounts

    async def _snapshot(self, reads: Sequence[str]) -> Snapshot:
        """The account types (and `TRANSFERS`) of `reads`, read at once."""
        found = await self._gather(reads, self._read_any)
        transfers_found = found.pop(TRANSFERS, None)
        return Snapshot(found, transfers_found)

    async def _read_any(self, what: str) -> Any:
        return await (self._read_transfers() if what == TRANSFERS else self._read(what))

    async def _gather(
        self, reads: Sequence[str], read: Callable[[str], Awaitable[Any]]
    ) -> dict[str, Any]:
        """`read` of each of `reads`, concurrently; the first failure fails them all."""
        results: dict[str, Any] = {}
        failures: list[VenueError] = []

        async def one(what: str) -> None:
            try:
                results[what] = await read(what)
            except VenueError as exc:
                failures.append(_in_account(exc, what))

        async with anyio.create_task_group() as tg:
            for what in reads:
                tg.start_soon(one, what)
        if failures:
            self._modes.clear()  # a mode switched since it was read fails; read it again
            raise failures[0]
        return results

    def _write(self, snapshot: Snapshot, read: Read, *, compare: bool) -> None:
        """What `read` found into the state (`exchange_state`: only what no later read wrote,
        with the pushes heard since its requests went out applied again on top). With `compare`
        (a full snapshot), count it when it disagrees with a streamed state, unless a push was
        heard within the grace window before its requests went out (or while they were under
        way): then the two may simply be from either side of that push (venue-pitfalls 51)."""
        fresh = self._state.newer(snapshot.accounts, read)
        try:
            lines = {a: self._lines(a, found) for a, found in fresh.items()}
        except VenueDataError:
            self._modes.clear()  # answers that do not fit the mode: read the mode again
            raise
        pushed = self._pushed_at is not None and self._pushed_at >= read.started - self._grace
        if compare and self._compare_next and not pushed and self._differs(lines):
            self._on_disagreement(self.name)
            log.warning("stream_rest_disagreement", venue=self.name)
        for heard in self._state.write(fresh, snapshot.transfers, read):
            self._patch(heard)

    def _current(self) -> dict[str, Lines]:
        """The lines of every account type, from the state as it is now."""
        return {a: self._lines(a, self._state.accounts[a]) for a in self.accounts}

    def _report(self, lines: Mapping[str, Lines], as_of: datetime | None) -> VenueReport:
        positions: list[Position] = []
        reported: list[ReportedTotal] = []
        every = [*(lines[account] for account in self.accounts)]
        if self._state.transfers is not None:
            every.append(self._state.transfers)
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

    def _differs(self, lines: Mapping[str, Lines]) -> bool:
        """Whether `lines` hold other amounts than the current state of their accounts (details
        such as uPnL left out); False before there is a state to differ from."""
        held = self._state.accounts
        if not lines or any(a not in held for a in lines):
            return False
        current = {a: self._lines(a, held[a]) for a in lines}
        return _signature(current) != _signature(lines)

    async def _read(self, account: str) -> AccountAnswer:
        client = self.client(account)
        balance = await exchange_client.fetch_balance(
            client, self.name, self.mapping.ACCOUNTS[account]
        )
        extra = None
        if account in self.mapping.EXTRA:
            method, params = self.mapping.EXTRA[account]
            with exchange_errors(self.name, client):
                extra = await getattr(client, method)(dict(params))
        raw_positions = await self._positions(client, account)
        if any(p.get("symbol") not in client.markets for p in raw_positions):
            with exchange_errors(self.name, client):
                listed = await self._budget.listings.refresh(client)
            if listed:  # a market listed since start: parsed again against it
                raw_positions = await self._positions(client, account)
        found = AccountAnswer(balance.get("info"), extra, await self._mode(client, account))
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

    async def _positions(self, client: Any, account: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for params in self.mapping.POSITIONS.get(account, ()):
            found += await exchange_client.fetch_positions(client, self.name, params)
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

    def _lines(self, account: str, found: AccountAnswer) -> Lines:
        """The lines of one account from its raw answers, as the mapping reads them."""
        lines = Lines(self.name, account, self.exchange_id)
        mode = {} if found.mode is None else {"mode": found.mode}  # only mappings with a MODE
        try:
            self.mapping.balance(lines, account, found.info, found.extra, **mode)
            for raw, market in found.positions.values():
                self.mapping.position(lines, raw, market, **mode)
        except (BadField, KeyError, TypeError) as exc:
            raise VenueDataError(self.name, f"{account}: malformed answer ({exc})") from None
        if found.pushed or found.positions_pushed:  # no longer of the total's moment
            lines.split_moment()
        kept = getattr(self.mapping, "PUSH_KEEPS_TOTAL", None)
        if found.pushed and kept is not None:
            # the exchange's total is as old as the REST answer, the pushed lines are newer:
            # reconciling them would warn of a drift that is not there. Only a total in the
            # one asset whose pushed change the patch carries into it stays current.
            keep = kept.get(account)
            lines.reported = [t for t in lines.reported if keep in (t.currency, EVERY_COIN)]
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

    def _patch(self, heard: Heard) -> None:
        """One push patched into the state (`mapping.patch_balance`; positions by
        `mapping.position_key`, a closed one removed)."""
        found = self._state.accounts[heard.account]
        try:
            if heard.kind == "balance":
                found.info = self.mapping.patch_balance(found.info, heard.message)
                found.pushed = True
                return
            client = self.client(heard.account, streaming=True)
            for raw in self.mapping.pushed_positions(heard.message):
                key = self.mapping.position_key(raw)
                if self.mapping.closed(raw):
                    found.positions.pop(key, None)
                    continue
                kept = found.positions.get(key)
                raw = raw if kept is None else {**kept[0], **raw}
                symbol = self._pushed_symbol(client, raw)
                market = client.markets.get(symbol)
                if market is None:
                    raise BadField(f"a position in an unlisted market {symbol!r}")
                found.positions[key] = (raw, market)
            found.positions_pushed = True
        except (BadField, KeyError, TypeError, IndexError) as exc:
            raise VenueDataError(self.name, f"{heard.account}: malformed push ({exc})") from None

    def _pushed_symbol(self, client: Any, raw: Mapping[str, Any]) -> Any:
        """ccxt's unified symbol of a pushed position row: from the exchange's market id where
        the mapping names it (ccxt has no `parse_position` for Binance), else ccxt's parse."""
        market_id = getattr(self.mapping, "pushed_market_id", None)
        if market_id is None:
            return client.parse_position(raw).get("symbol")
        return client.safe_market(market_id(raw), None, None, "swap").get("symbol")

    async def observe(self, base: str, quote: str) -> Observation:
        """The exchange's last spot price of `base` in `quote`, from its raw ticker."""
        client = self.client(MARKET_DATA)
        rate = await exchange_client.last_price(
            client, self.name, self.mapping.TICKER_LAST, base, quote, self._budget.listings
        )
        return Observation(rate, self._clock())

    async def mark(self, contract: Contract) -> Decimal:
        """The exchange's mark of a contract, read now (`venues/contract_marks`)."""
        return await read_mark(self.client(MARKET_DATA), self.name, self.mapping, contract)

    async def aclose(self) -> None:
        """Close every ccxt session, even while being cancelled (ccxt warns of unclosed ones)."""
        clients, self._clients = list(self._clients.values()), {}
        await self._close(clients)

    async def _close(self, clients: Sequence[Any]) -> None:
        await exchange_client.close_all(clients, venue=self.name)


def streams(exchange_id: str, accounts: Sequence[str]) -> bool:
    """Whether any of these account types of this exchange has a stream implemented here."""
    streamed = getattr(MAPPINGS.get(exchange_id), "STREAMED", ())
    return any(account in streamed for account in accounts)


# the REST reads a stream makes: a full snapshot, what no push carries, accounts a push cued
RESYNC, POLL, CUE = "resync", "poll", "cue"
CUT = "cut"  # the exchange closed a socket
# seconds from one REST read that pushes cued to the next: a burst of pushes costs one read a
# second at most, not one per round trip; a push after a quiet second is read at once
CUE_GAP = 1.0


class StreamingExchangeVenue(ExchangeVenue):
    """An exchange venue whose account types with a private stream follow it (ccxt.pro).

    `updates()` takes a REST snapshot, then patches it with every balance and position push
    (`mapping.patch_balance`, positions by `mapping.position_key`, closed ones removed) and yields
    the full report after each batch of pushes, its `as_of` the push's event time.

    An account whose pushes leave out its debt (`mapping.READ_ON_PUSH`: Binance cross and
    portfolio margin, Bybit unified) is never patched: a borrow pushed as more coins would count
    before its debt. A push to it cues a REST read of the whole account at once (at most one
    read every `cue_gap` seconds), and its lines change when that answer arrives, holdings and
    debt of one moment. The delay of a true move is that one read; a phantom is never shown.

    What no push carries is polled over REST every `poll_seconds` while the stream is live: the
    account types without a stream and those of `READ_ON_PUSH` (read whole) and the transfers
    under way. A poll is not compared with the stream. A full REST snapshot replaces the state
    every `resync_seconds` and whenever `updates()` starts again (after a reconnect); one that
    disagrees with the streamed state calls `on_disagreement`, unless a push was heard within
    `grace_seconds` of it. REST reads run beside the stream, one at a time; every one of them,
    and the runtime's own fetches, follows `exchange_state`'s rule: the pushes heard since its
    requests went out are applied again on top of its answer, which may be older than they are.
    A failed REST read ends the stream with its error, as a failed socket does.
    """

    def __init__(
        self,
        *args: Any,
        keepalive: float = 30.0,
        resync_seconds: float = 300.0,
        poll_seconds: float = 10.0,
        grace_seconds: float = STREAM_GRACE,
        cue_gap: float = CUE_GAP,
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
        self.poll_seconds = poll_seconds
        self._grace = grace_seconds
        self._cue_gap = cue_gap
        self._read_on_push = frozenset(a for a in self.streamed if a in self.mapping.READ_ON_PUSH)
        self._started_at: float | None = None

    @property
    def keepalive(self) -> float:
        return self._keepalive

    @property
    def last_heard(self) -> float | None:
        """When (monotonic) the stream last said something: a push, or its (re)start. Reports
        of REST polls do not count: they say nothing about the socket."""
        heard = [t for t in (self._pushed_at, self._started_at) if t is not None]
        return max(heard) if heard else None

    def _silent(self) -> bool:
        """Whether the stream has said nothing for longer than `keepalive` (it counts as down,
        and the runtime's REST fetches read everything)."""
        heard = self.last_heard
        return heard is not None and self._clock.monotonic() - heard > self._keepalive

    async def updates(self) -> AsyncGenerator[VenueReport, None]:
        """A full report at start, then one after every batch of pushes and REST answers that
        changed the state.

        The watchers and the REST reads run as asyncio tasks of their own rather than in a task
        group: a task group must not stay open across a generator's `yield`. Their results and
        failures come through the same channel as the pushes; a failure ends the stream. Each
        run has its own ccxt.pro instances, closed when it ends: the next run starts with a new
        listen key and empty caches (an expired or refused key is never reused).

        An exchange closing a connection, or expiring its listen key, after it had worked for a
        whole `keepalive` window (Binance cuts every connection at 24 h) is churn, not an outage:
        the watchers subscribe again with new instances (a new key) and a REST snapshot
        resyncs, with no error. A cut or an expiry sooner than that ends the stream.
        """
        send, receive = anyio.create_memory_object_stream[Heard](math.inf)
        watchers: list[asyncio.Task[None]] = []
        reading: asyncio.Task[None] | None = None
        out: Read | None = None  # the REST read under way, until its answer is written
        try:
            watchers = self._subscribe(send)
            joined_at = anyio.current_time()  # (the generator sleeps at each yield)
            self._modes.clear()  # (re)connected: the account mode is read again
            yield await self.fetch()  # after subscribing: a push from here on is kept
            self._compare_next = True
            self._started_at = self._clock.monotonic()
            now, cued_at = anyio.current_time(), -math.inf  # (the last read pushes cued)
            resync_at, poll_at = now + self.resync_seconds, now + self.poll_seconds
            while True:
                now = anyio.current_time()
                cued = self._state.due()
                if not self._state.pending(out):
                    kind = None
                    if now >= resync_at:
                        kind, resync_at = RESYNC, now + self.resync_seconds
                        self._modes.clear()  # a resync reads the account mode again
                    elif now >= poll_at and not self._silent():  # silent: the runtime covers
                        kind = POLL
                    elif cued and now >= cued_at + self._cue_gap:
                        kind, cued_at = CUE, now
                    if now >= poll_at:
                        poll_at = now + self.poll_seconds
                    if kind is not None:
                        out = self._state.open(self._clock.monotonic())
                        reading = asyncio.ensure_future(self._read_rest(send, kind, out, cued))
                due = min(resync_at, poll_at, cued_at + self._cue_gap if cued else math.inf)
                wait = math.inf if self._state.pending(out) else max(0.0, due - now)
                heard = None
                with anyio.move_on_after(wait):
                    heard = await receive.receive()
                if heard is None:
                    continue
                batch = [heard, *_waiting(receive)]  # debounce: every waiting push, one report
                now = anyio.current_time()
                if any(h.kind == CUT for h in batch) and now - joined_at >= self.keepalive:
                    log.info("stream_rejoined", venue=self.name)
                    await _stopped([*watchers, *([reading] if reading else [])])
                    if out is not None:
                        self._state.close(out)
                    # new instances subscribe afresh: ccxt would skip a listen token it
                    # still thinks current, leaving the new socket unsubscribed
                    await self._close_streams()
                    _waiting(receive)  # the old sockets' last words; the snapshot covers them
                    watchers, reading, out = self._subscribe(send), None, None
                    joined_at = anyio.current_time()
                    self._compare_next = False  # what changed while cut is no disagreement
                    self._modes.clear()
                    yield await self.fetch()
                    self._compare_next = True
                    self._started_at = self._clock.monotonic()
                    now = anyio.current_time()
                    resync_at, poll_at = now + self.resync_seconds, now + self.poll_seconds
                    continue
                await self._list_pushed(batch)
                report = self._patched(batch)
                if report is not None:
                    yield report
        finally:
            self._compare_next = False
            self._started_at = None
            send.close()
            receive.close()
            with anyio.CancelScope(shield=True):
                await _stopped([*watchers, *([reading] if reading else [])])
                if out is not None:
                    self._state.close(out)
                await self._close_streams()

    async def _close_streams(self) -> None:
        """Close this run's ccxt.pro instances; `client` makes new ones on next use."""
        keys = [a + STREAM for a in self.streamed if a + STREAM in self._clients]
        await self._close([self._clients.pop(key) for key in keys])

    def _subscribe(self, send: Any) -> list[asyncio.Task[None]]:
        """One watcher per subscription of every streamed account type (`mapping.WATCH`)."""
        watchers: list[asyncio.Task[None]] = []
        for account in self.streamed:
            client = self.client(account, streaming=True)
            exchange_client.listen(client, partial(self._heard, send, account))
            params = self.mapping.WATCH[account]
            calls = [partial(client.watch_balance, dict(params))]
            if account in getattr(self.mapping, "WATCH_POSITIONS", self.mapping.WATCH):
                calls.append(partial(client.watch_positions, None, None, None, dict(params)))
            watchers += [asyncio.ensure_future(self._watch(send, client, c)) for c in calls]
        return watchers

    def _heard(self, send: Any, account: str, kind: str, message: dict[str, Any]) -> None:
        at = self._clock.monotonic()
        heard = Heard(account, kind, message, at)
        if kind == "message":  # a raw frame: only an event that ends the stream matters here
            ended = getattr(self.mapping, "stream_end", _never)(message)
            if ended is None:
                return
            # like a cut: an expired key after a working window is churn (Binance's listen key
            # lapses every ~80 minutes under ccxt 4.5.90, whose keep-alive runs only once)
            heard = Heard("", CUT, VenueUnavailable(self.name, f"{account} stream: {ended}"), at)
        else:  # a push: the subscription is alive (a ping answered says only the socket is)
            self._pushed_at = at
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            send.send_nowait(heard)

    async def _watch(self, send: Any, client: Any, call: Callable[[], Awaitable[Any]]) -> None:
        """Keep one subscription alive; its failure ends the stream (the data comes by `_heard`),
        or, when the exchange closed the socket (`CUT`), may be rejoined."""
        cut = False
        lost: frozenset[str] = getattr(self.mapping, "STREAM_LOST_CODES", frozenset())
        try:
            with exchange_errors(self.name, client):
                try:
                    while True:
                        await call()
                except Exception as exc:
                    cut = exchange_client.closed_by_exchange(exc)
                    code = error_code(exc)
                    if code in lost:  # a new key fixes it: not a refused API key
                        raise VenueUnavailable(
                            self.name, f"stream key lost (code {code})"
                        ) from None
                    raise
        except Exception as exc:
            heard = Heard("", CUT if cut else "error", exc, self._clock.monotonic())
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                send.send_nowait(heard)

    async def _list_pushed(self, batch: Sequence[Heard]) -> None:
        """Reload the host's markets (bounded, `exchange_listings`) when a push opens a position
        in a market the stream's instance does not know (listed since start), so that `_patch`
        can place it; a push it cannot read is left to `_patch` to fail with its reason."""
        for heard in batch:
            held = self._state.accounts.get(heard.account)
            if heard.kind != "positions" or held is None or heard.account in self._read_on_push:
                continue  # (a push to an account read at once is never placed: its read is)
            client = self.client(heard.account, streaming=True)
            try:
                unknown = any(
                    self._pushed_symbol(client, raw) not in client.markets
                    for raw in self.mapping.pushed_positions(heard.message)
                    if self.mapping.position_key(raw) not in held.positions
                    and not self.mapping.closed(raw)
                )
            except (BadField, KeyError, TypeError, IndexError):
                continue
            if unknown:
                with exchange_errors(self.name, client):
                    await self._budget.listings.refresh(client)

    async def _read_rest(self, send: Any, kind: str, read: Read, cued: Sequence[str]) -> None:
        """A REST read of `kind`, handed to the stream as ("", kind, (what it found, `read`)):
        a resync reads everything; a poll what no push carries (the account types without a
        stream, those of `READ_ON_PUSH`, the transfers under way); a cue the `cued` accounts."""
        try:
            if kind == RESYNC:
                reads: Sequence[str] = self.everything
            elif kind == POLL:
                unpushed = [a for a in self.accounts if a not in self._pushed_accounts]
                reads = [*unpushed, *([TRANSFERS] if self._in_transit else [])]
            else:
                reads = cued
            heard = Heard("", kind, (await self._snapshot(reads), read), read.started)
        except Exception as exc:  # a REST failure ends the stream, as a socket's does
            heard = Heard("", "error", exc, self._clock.monotonic())
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            send.send_nowait(heard)

    @property
    def _pushed_accounts(self) -> frozenset[str]:
        """The account types whose pushes patch the state."""
        return frozenset(self.streamed) - self._read_on_push

    def _patched(self, batch: Sequence[Heard]) -> VenueReport | None:
        """The state with every push and REST answer of `batch` written in, as a full report;
        None when none of them changed it (pushes a REST answer already holds, or cues)."""
        latest: int | None = None
        changed = False
        for heard in batch:
            if isinstance(heard.message, BaseException):
                raise heard.message
            if heard.kind in (RESYNC, POLL, CUE):
                found, read = heard.message
                self._write(found, read, compare=heard.kind == RESYNC)
                self._state.close(read)
                changed = True
            elif heard.account in self._read_on_push:
                self._state.cue(heard)
            elif self._apply(heard):
                changed = True
                when = self.mapping.event_ms(heard.message)
                if when is not None and (latest is None or when > latest):
                    latest = when
        if not changed:
            return None
        as_of = None if latest is None else datetime.fromtimestamp(latest / 1000, UTC)
        return self._report(self._current(), as_of)

    def _apply(self, heard: Heard) -> bool:
        """One push patched into the state, and kept for the reads under way; False when its
        account has no state or holds an answer asked for after the push was heard."""
        if heard.account not in self._state.accounts or self._state.covered(heard):
            return False
        self._patch(heard)
        self._state.journal(heard)
        return True


def _in_account(exc: VenueError, account: str) -> VenueError:
    """`exc` with the account type (or `transfers`) that failed first in its reason."""
    if exc.reason.startswith(f"{account}:"):
        return exc
    reason = f"{account}: {exc.reason}"
    if isinstance(exc, VenueUnavailable):
        return VenueUnavailable(exc.venue, reason, exc.retry_after)
    return type(exc)(exc.venue, reason)


def _waiting(receive: Any) -> list[Heard]:
    """Everything already waiting in the channel, taken out."""
    found: list[Heard] = []
    while True:
        try:
            found.append(receive.receive_nowait())
        except anyio.WouldBlock:
            return found


async def _stopped(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _never(message: Any) -> None:
    """No event of this exchange ends a stream by itself."""
    return None


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
