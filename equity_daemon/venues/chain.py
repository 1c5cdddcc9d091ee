"""A chain venue: every holding of one EVM chain read at one block, in one request.

    fetch()
      eth_blockNumber                      -> head; pin block = head - confirmations
      eth_call Multicall3.aggregate3(...)  at the pinned block: every balance and rate of the
                                           chain, with the block's number, timestamp and
                                           parent hash proven in the same call
      -> VenueReport(block_number, as_of = the block's timestamp, positions, reported totals,
                     health factors); rates kept for `observe` (the venue is a QuoteSource)

Two JSON-RPC requests per fetch, however many positions (the multicall splits only past
`max_calls`, each part proving the same block). What differs per protocol — which calls, how
their answers become lines — lives in `protocols/`; this module holds the mechanics:

* **Discovery** (token decimals, Aave reserves and oracles, vault assets, feed decimals) runs
  at the first fetch and then every `discovery_interval_seconds`, through the same multicall; a
  refresh that fails keeps the last one's results. With a memory attached (the history
  database, `attach_memory`) its results and the request-log cursors survive a restart.
  EtherFi requests may also come from logs (request NFTs' mints, PriorityWithdrawalQueues'
  requests: `withdrawals.py`), scanned at discovery and again, in the same fetch and at the
  same block, whenever a read shows a request not known yet.
* **All or nothing.** A call a line depends on that fails — reverts, has no code at its target,
  answers data too short to decode — fails the whole report, naming the line: the poller keeps
  the last good report (and its age shows), where dropping the line would silently move
  equity by its value. A claimed withdrawal request (`ownerOf` reverts) is the one read whose
  failure means "gone". A Chainlink feed that fails or is stale fails only its quote.
* **Never back in time.** The block read is never before the last one read: a node behind it
  (a failover to a lagging endpoint, one URL load-balanced over nodes at different heights)
  would read a state already left, money already sent out counted again. A node whose head
  has reached the last block read but whose head − `confirmations` has not reads that block
  again; one whose head is before it cannot serve the fetch (`EndpointBehind`): the next
  endpoint is tried, and with none left the fetch fails (the last good report stays in use,
  and the next poll reads again). Each refusal is counted (`on_behind`: a metric). Log scans
  likewise refuse an answer from a node that has not reached the range's end (`rpc.py`).
* **Failover.** Endpoints are tried in configured order. A transport error, a timeout, a node
  error ("header not found", "missing trie node"), an unusable answer or a block other than the
  one pinned moves this fetch, and the following ones, to the next endpoint; the preferred
  endpoint is tried again every `retry_preferred_every` fetches. Each endpoint's chain id is
  checked before it is first used and after it failed: an endpoint on another chain is never
  read (a `VenueDataError` when no endpoint is left). Messages name endpoints by label
  ("rpc endpoint 2 of 3"), never by URL.
* **Accounts** carry the protocol and the address (`wallet:0x…`, `aave-core:0x…`, `lido:0x…`,
  `etherfi:0x…`, `erc4626:0x…`), so the breakdown of a book by account reads by protocol.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import astuple, dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog

from equity_daemon.clock import Clock
from equity_daemon.errors import (
    HistoryUnavailable,
    VenueDataError,
    VenueError,
    VenueUnavailable,
)
from equity_daemon.model import VenueReport
from equity_daemon.oracle import Observation
from equity_daemon.prices import SourceKind
from equity_daemon.settings import ChainVenue as ChainSettings
from equity_daemon.settings import FeedSettings
from equity_daemon.venues.base import VenueMemory
from equity_daemon.venues.multicall import (
    Aggregate,
    Call,
    CallResult,
    MulticallError,
    aggregate3,
)
from equity_daemon.venues.protocols import (
    Reader,
    ReadFailed,
    Readout,
    Token,
    TokenReader,
    discover_tokens,
    need,
)
from equity_daemon.venues.protocols.aave import AaveReader, Market, Reserve, discover_market
from equity_daemon.venues.protocols.chainlink import Feed, FeedReader
from equity_daemon.venues.protocols.erc4626 import Vault, VaultRate, discover_vaults
from equity_daemon.venues.protocols.etherfi import weeth_rate
from equity_daemon.venues.protocols.lido import wsteth_rate
from equity_daemon.venues.protocols.wallet import NATIVE, WalletReader
from equity_daemon.venues.registry import registry_for
from equity_daemon.venues.rpc import EndpointBehind, RpcEndpoint
from equity_daemon.venues.withdrawals import WithdrawalScans

log = structlog.get_logger()

T = TypeVar("T")


class _WrongChain(Exception):
    """An endpoint answered another chain id than configured."""


class ChainVenue:
    """Holdings of one chain (see the module doc); also the quote source of its rates.

    Args:
        config: the venue's settings.
        clock: wall and monotonic clocks.
        on_behind: called with the venue's name and an endpoint's label whenever an answer
            is refused because that endpoint's node had not reached the block needed.
    """

    kind = SourceKind.PROTOCOL_RATE
    cache_seconds = 0.0  # rates are read with the balances, every fetch

    def __init__(
        self,
        config: ChainSettings,
        clock: Clock,
        on_behind: Callable[[str, str], None] | None = None,
    ) -> None:
        self.name = config.name
        self._config = config
        self._clock = clock
        self._on_behind = on_behind
        self._last_block: int | None = None  # the block of the last good read
        registry = registry_for(config.chain_id)
        self._multicall = config.multicall or registry.multicall
        self._tokens = {**registry.tokens, **config.tokens}
        # symbols by token address, for tokens discovery finds (Aave reserves): configured first
        self._names = {
            address.lower(): symbol
            for tokens in (registry.tokens, config.tokens)
            for symbol, address in tokens.items()
        }
        self._markets = {**registry.aave_markets, **config.aave_markets}
        self._contracts = {**registry.contracts, **config.contracts}
        self._feeds = [(feed, registry.feeds.get((feed.base, feed.quote))) for feed in config.feeds]
        count = len(config.rpc)
        self._endpoints = [
            RpcEndpoint(
                url,
                venue=config.name,
                label=f"rpc endpoint {index + 1} of {count}",
                timeout=config.rpc_timeout_seconds,
            )
            for index, url in enumerate(config.rpc)
        ]
        self._stack = AsyncExitStack()
        self._opened: set[int] = set()
        self._verified: set[int] = set()
        self.current = 0  # the endpoint in use
        self._fetches = 0
        self._readers: tuple[Reader, ...] | None = None
        self._discovered_at: float | None = None
        self._rates: dict[tuple[str, str], Observation] = {}
        self._rate_failures: dict[tuple[str, str], str] = {}
        self._withdrawals = WithdrawalScans(
            config, self._contracts.get("etherfi_withdrawals", ""), self._remember
        )
        self._facts: _Facts | None = None  # what the last discovery found
        self._memory: VenueMemory | None = None
        self._memory_loaded = False
        self._memory_broken = False

    @property
    def endpoint(self) -> str:
        """The label of the endpoint in use."""
        return self._endpoints[self.current].label

    async def aclose(self) -> None:
        """Close every endpoint's HTTP session."""
        await self._stack.aclose()
        self._stack = AsyncExitStack()
        self._opened.clear()
        self._verified.clear()

    # --- fetch ------------------------------------------------------------------------

    async def fetch(self) -> VenueReport:
        """Every holding at one block (see the module doc).

        Raises:
            VenueUnavailable: no endpoint answered usably.
            VenueDataError: a line could not be read (the reason names it), or every endpoint
                that answered is on another chain.
        """
        self._fetches += 1
        try:
            readout = await self._on_endpoint(self._read)
        except ReadFailed as exc:
            raise VenueDataError(self.name, str(exc)) from None
        block = readout.block
        self._last_block = block.number
        self._rates = {
            pair: Observation(rate, block.timestamp) for pair, rate in readout.rates.items()
        }
        self._rate_failures = dict(readout.rate_failures)
        return VenueReport(
            self.name,
            self._clock(),
            tuple(readout.positions),
            block_number=block.number,
            as_of=block.timestamp,
            revision=f"{block.number}:{block.parent_hash.hex()}",
            reported=tuple(readout.reported),
            health=tuple(readout.health),
        )

    async def observe(self, base: str, quote: str) -> Observation:
        """The rate `base`/`quote` as read at the last good fetch's block (`at` = its time).

        Raises:
            LookupError: not read by this venue, or its feed failed or is stale (the reason).
        """
        pair = (base, quote)
        if pair in self._rate_failures:
            raise LookupError(self._rate_failures[pair])
        try:
            return self._rates[pair]
        except KeyError:
            raise LookupError(f"{self.name} has no rate for {base}/{quote}") from None

    async def _read(self, rpc: RpcEndpoint) -> Readout:
        block = self._pin(rpc, await rpc.block_number())
        readers = await self._current_readers(rpc, block)
        out = await self._read_at(rpc, readers, block)
        readers, found = await self._withdrawals.found_new(rpc, readers, out, block)
        if found:
            # read again at the same block, new requests included: a request made since the
            # last scan must not read as eETH that vanished
            out = await self._read_at(rpc, readers, block)
        self._readers = await self._withdrawals.without_closed(readers, out)
        return out

    def _pin(self, rpc: RpcEndpoint, head: int) -> int:
        """The block to read on a node whose head is `head`: head − confirmations, never before
        the last block read (see the module doc).

        Raises:
            EndpointBehind: the node has not reached the last block read.
        """
        block = max(head - self._config.confirmations, 0)
        last = self._last_block
        if last is None or block >= last:
            return block
        if head >= last:
            return last  # a little behind: the same block again, never an older one
        raise EndpointBehind(self.name, rpc.label, head, last)

    async def _read_at(self, rpc: RpcEndpoint, readers: Sequence[Reader], block: int) -> Readout:
        calls: list[Call] = []
        spans: list[tuple[Reader, int, int]] = []
        for reader in readers:
            own = reader.calls()
            spans.append((reader, len(calls), len(calls) + len(own)))
            calls.extend(own)
        answer = await self._aggregate(rpc, calls, block)
        out = Readout(self.name, self._config.chain, answer.block)
        for reader, start, end in spans:
            try:
                reader.read(answer.results[start:end], out)
            except ReadFailed as exc:
                raise ReadFailed(f"block {block}: {exc}") from None
        return out

    async def _aggregate(self, rpc: RpcEndpoint, calls: Sequence[Call], block: int) -> Aggregate:
        return await aggregate3(
            rpc, calls, block=block, multicall=self._multicall, max_calls=self._config.max_calls
        )

    # --- endpoints and failover ---------------------------------------------------------

    def _order(self) -> list[int]:
        count = len(self._endpoints)
        start = self.current
        if start and self._fetches % self._config.retry_preferred_every == 0:
            start = 0  # time to see whether the preferred endpoint is back
        return [(start + step) % count for step in range(count)]

    async def _ready(self, index: int) -> RpcEndpoint:
        endpoint = self._endpoints[index]
        if index not in self._opened:
            await self._stack.enter_async_context(endpoint)
            self._opened.add(index)
        if index not in self._verified:
            chain_id = await endpoint.chain_id()
            if chain_id != self._config.chain_id:
                raise _WrongChain(
                    f"{endpoint.label}: chain id {chain_id}, expected {self._config.chain_id} "
                    f"({self._config.chain})"
                )
            self._verified.add(index)
        return endpoint

    async def _on_endpoint(self, work: Callable[[RpcEndpoint], Awaitable[T]]) -> T:
        """`work` on the endpoint in use, else on the next ones, in order."""
        failures: list[str] = []
        wrong_chain = 0
        for index in self._order():
            label = self._endpoints[index].label
            try:
                result = await work(await self._ready(index))
            except _WrongChain as exc:
                wrong_chain += 1
                failures.append(str(exc))
                log.error("rpc_wrong_chain", venue=self.name, endpoint=label, reason=str(exc))
                continue
            except EndpointBehind as exc:
                failures.append(exc.reason)
                log.warning(
                    "rpc_endpoint_behind", venue=self.name, endpoint=label, reason=exc.reason
                )
                if self._on_behind is not None:
                    self._on_behind(self.name, label)
                continue
            except (VenueError, MulticallError) as exc:
                self._verified.discard(index)  # check its chain again before trusting it
                reason = exc.reason if isinstance(exc, VenueError) else f"{label}: {exc}"
                failures.append(reason)
                log.warning("rpc_endpoint_failed", venue=self.name, endpoint=label, reason=reason)
                continue
            if index != self.current:
                log.warning(
                    "rpc_endpoint_switched",
                    venue=self.name,
                    endpoint=label,
                    previous=self._endpoints[self.current].label,
                )
                self.current = index
            return result
        reason = "; ".join(failures)
        if wrong_chain == len(failures):
            raise VenueDataError(self.name, reason)
        raise VenueUnavailable(self.name, reason)

    # --- discovery ------------------------------------------------------------------------

    async def _current_readers(self, rpc: RpcEndpoint, block: int) -> tuple[Reader, ...]:
        if self._readers is not None and not self._due():
            return self._readers
        if self._facts is None:
            await self._load_memory()
        if self._facts is None:
            self._facts = await self._discover(rpc, block)
            self._discovered_at = self._clock.monotonic()
            log.info("chain_discovered", venue=self.name, block=block)
            await self._remember_facts(self._facts)
        elif self._due():
            try:
                self._facts = await self._discover(rpc, block)
            except ReadFailed as exc:
                # a refresh that fails keeps what the last one found (the reads themselves
                # still fail loudly if it no longer holds); it is tried again next interval
                log.warning("chain_rediscovery_failed", venue=self.name, reason=str(exc))
            else:
                log.info("chain_discovered", venue=self.name, block=block)
                await self._remember_facts(self._facts)
            self._discovered_at = self._clock.monotonic()
        self._readers = await self._build_readers(rpc, block, self._facts)
        return self._readers

    def _due(self) -> bool:
        return (
            self._discovered_at is None
            or self._clock.monotonic() - self._discovered_at
            >= self._config.discovery_interval_seconds
        )

    def _discovery_inputs(self) -> dict[str, Any]:
        """What discovery reads, by address: stored results count only for the same."""
        config = self._config
        holdings = config.holdings
        vault_settings = {vault.symbol: vault for vault in config.vaults}
        symbols = {
            symbol
            for holding in holdings
            for symbol in (*holding.wallet, *holding.lido, *holding.etherfi)
            if symbol != NATIVE
        }
        used_vaults = sorted({symbol for holding in holdings for symbol in holding.vaults})
        tokens = {symbol: self._tokens[symbol] for symbol in symbols}
        tokens |= {symbol: vault_settings[symbol].address for symbol in used_vaults}
        markets = sorted({market for holding in holdings for market in holding.aave})
        return {
            "tokens": dict(sorted(tokens.items())),
            "vaults": {s: vault_settings[s].asset for s in used_vaults},
            "markets": {market: self._markets[market] for market in markets},
            "oracles": {
                m: self._config.aave_oracles[m] for m in markets if m in self._config.aave_oracles
            },
            # configured symbols of Aave reserves' tokens, by address (they win over symbol())
            "names": dict(sorted(self._names.items())) if markets else {},
            "feeds": sorted(address for _, address, _ in self._resolved_feeds()),
        }

    async def _discover(self, rpc: RpcEndpoint, block: int) -> _Facts:
        async def run(calls: Sequence[Call]) -> Sequence[CallResult]:
            return (await self._aggregate(rpc, calls, block)).results

        inputs = self._discovery_inputs()
        tokens = await discover_tokens(run, inputs["tokens"])
        vault_assets: dict[str, str] = inputs["vaults"]
        vaults: dict[str, Vault] = (
            {
                vault.share.symbol: vault
                for vault in await discover_vaults(
                    run, [(tokens[s], asset) for s, asset in vault_assets.items()]
                )
            }
            if vault_assets
            else {}
        )
        markets: dict[str, Market] = {
            market: await discover_market(
                run, market, pool, inputs["names"], inputs["oracles"].get(market)
            )
            for market, pool in inputs["markets"].items()
        }
        feeds = await self._discover_feeds(run)
        return _Facts(inputs, tokens, vaults, markets, feeds, self._clock())

    async def _build_readers(
        self, rpc: RpcEndpoint, block: int, facts: _Facts
    ) -> tuple[Reader, ...]:
        """The readers of the configured holdings from discovery's results (scanning the
        request NFT's mint logs from where the last scan stopped)."""
        tokens, vaults, markets = facts.tokens, facts.vaults, facts.markets
        readers: list[Reader] = []
        for holding in self._config.holdings:
            address = holding.address
            wallet_tokens = tuple(tokens[s] for s in holding.wallet if s != NATIVE)
            if holding.wallet:
                readers.append(
                    WalletReader(address, NATIVE in holding.wallet, wallet_tokens, self._multicall)
                )
            readers += [
                AaveReader(
                    market,
                    self._markets[market],
                    address,
                    markets[market].reserves,
                    markets[market].oracle,
                )
                for market in holding.aave
            ]
            if holding.lido:
                readers.append(TokenReader("lido", address, _pick(tokens, holding.lido)))
            if holding.etherfi:
                readers.append(TokenReader("etherfi", address, _pick(tokens, holding.etherfi)))
            readers += await self._withdrawals.readers(rpc, holding, block)
            if holding.vaults:
                shares = tuple(vaults[s].share for s in holding.vaults)
                readers.append(TokenReader("erc4626", address, shares))
        # protocol rates of the tokens the chain knows, held directly or not (as Aave
        # collateral, say): any book may need them as conversion edges
        if "wstETH" in self._tokens:
            readers.append(wsteth_rate(self._tokens["wstETH"]))
        if "weETH" in self._tokens:
            readers.append(weeth_rate(self._tokens["weETH"]))
        readers += [VaultRate(vault) for vault in vaults.values()]
        readers += [FeedReader(feed) for feed in facts.feeds]
        return tuple(readers)

    def _resolved_feeds(self) -> list[tuple[FeedSettings, str, float]]:
        resolved = []
        for feed, known in self._feeds:
            address = feed.address or (known.address if known else None)
            heartbeat = feed.heartbeat_seconds or (known.heartbeat_seconds if known else None)
            assert address is not None  # settings checked it
            assert heartbeat is not None
            resolved.append((feed, address, heartbeat))
        return resolved

    async def _discover_feeds(
        self, run: Callable[[Sequence[Call]], Awaitable[Sequence[CallResult]]]
    ) -> list[Feed]:
        resolved = self._resolved_feeds()
        if not resolved:
            return []
        results = await run(
            [
                Call.of(address, "decimals()", returns=("uint8",), label="feed.decimals")
                for _, address, _ in resolved
            ]
        )
        return [
            Feed(
                feed.base,
                feed.quote,
                address,
                int(need(result, f"feed {feed.base}/{feed.quote}")),
                timedelta(seconds=heartbeat),
                timedelta(seconds=feed.stale_margin_seconds),
            )
            for (feed, address, heartbeat), result in zip(resolved, results, strict=True)
        ]

    # --- memory across restarts ------------------------------------------------------------

    def attach_memory(self, memory: VenueMemory) -> None:
        """Keep discovery's results and the request-log cursor in `memory` (the history
        database), and start from what it holds: a restart does not scan again."""
        self._memory = memory
        self._memory_loaded = False

    async def _load_memory(self) -> None:
        """Once: the stored discovery (if it was made for the same addresses) counts as the
        last one, aged by when it was made; stored scan cursors and ids are resumed."""
        if self._memory is None or self._memory_loaded:
            return
        self._memory_loaded = True
        try:
            stored = await self._memory.recall(self.name)
        except HistoryUnavailable as exc:
            self._memory_failed(exc)
            return
        try:
            self._withdrawals.recall(stored)
            text = stored.get(_DISCOVERY_KEY)
            if text is None:
                return
            facts = _Facts.from_json(json.loads(text), self._resolved_feeds())
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("chain_memory_unusable", venue=self.name, reason=repr(exc))
            return
        if facts.inputs != self._discovery_inputs():
            log.info("chain_memory_outdated", venue=self.name)
            return
        age = max((self._clock() - facts.at).total_seconds(), 0.0)
        self._facts = facts
        self._discovered_at = self._clock.monotonic() - age
        log.info("chain_discovery_recalled", venue=self.name, age_seconds=round(age))

    async def _remember(self, key: str, value: dict[str, Any]) -> None:
        if self._memory is None:
            return
        try:
            await self._memory.remember(self.name, key, json.dumps(value), self._clock())
        except HistoryUnavailable as exc:
            self._memory_failed(exc)
            return
        if self._memory_broken:
            self._memory_broken = False
            log.info("chain_memory_available", venue=self.name)

    def _memory_failed(self, exc: HistoryUnavailable) -> None:
        # said once per outage; the venue goes on with what it holds in memory (writes are
        # tried again at the next discovery or scan; a restart meanwhile discovers again)
        if not self._memory_broken:
            log.warning("chain_memory_unavailable", venue=self.name, reason=str(exc))
        self._memory_broken = True

    async def _remember_facts(self, facts: _Facts) -> None:
        await self._remember(_DISCOVERY_KEY, facts.to_json())


_DISCOVERY_KEY = "discovery"


@dataclass(frozen=True, slots=True)
class _Facts:
    """What discovery found, and for which addresses (`inputs`) and when (`at`)."""

    inputs: dict[str, Any]
    tokens: dict[str, Token]
    vaults: dict[str, Vault]
    markets: dict[str, Market]
    feeds: list[Feed]
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "at": self.at.isoformat(),
            "tokens": {s: [t.address, t.decimals] for s, t in self.tokens.items()},
            "vaults": {s: [v.asset, v.asset_decimals] for s, v in self.vaults.items()},
            "markets": {
                name: {
                    "oracle": market.oracle,
                    "reserves": [list(astuple(r)) for r in market.reserves],
                }
                for name, market in self.markets.items()
            },
            "feeds": {feed.address: feed.decimals for feed in self.feeds},
        }

    @classmethod
    def from_json(
        cls, data: dict[str, Any], feeds: Sequence[tuple[FeedSettings, str, float]]
    ) -> _Facts:
        tokens = {s: Token(s, str(a), int(d)) for s, (a, d) in data["tokens"].items()}
        decimals = data["feeds"]
        return cls(
            inputs=data["inputs"],
            tokens=tokens,
            vaults={s: Vault(tokens[s], str(a), int(d)) for s, (a, d) in data["vaults"].items()},
            markets={
                name: Market(
                    tuple(
                        Reserve(str(s), str(u), int(d), str(a), str(v), int(i))
                        for s, u, d, a, v, i in market["reserves"]
                    ),
                    None if market["oracle"] is None else str(market["oracle"]),
                )
                for name, market in data["markets"].items()
            },
            feeds=[
                Feed(
                    feed.base,
                    feed.quote,
                    address,
                    int(decimals[address]),
                    timedelta(seconds=heartbeat),
                    timedelta(seconds=feed.stale_margin_seconds),
                )
                for feed, address, heartbeat in feeds
            ],
            at=datetime.fromisoformat(data["at"]),
        )


def _pick(tokens: dict[str, Token], symbols: Sequence[str]) -> tuple[Token, ...]:
    return tuple(tokens[symbol] for symbol in symbols)
