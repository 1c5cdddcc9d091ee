"""Where a chain venue finds each address's pending EtherFi withdrawal requests, and keeps
finding them as new ones are made.

* **Request NFTs** (`WithdrawRequestNFT`; the venue's `contracts.etherfi_withdrawals`, and any
  other listed per address): the ids configured, plus, with a scan block, the ids of the NFT's
  mint logs to the address. The NFT count is in every read: more NFTs than lines read means
  a new request, and the logs since the last scan are read in the same fetch.
* **PriorityWithdrawalQueues**: the requests of the queue's `WithdrawRequestCreated` logs made
  by the address; the queue's `nonce()` is in every read, and when it moved the logs since the
  last scan are read in the same fetch.

Each scan has a cursor (the next block to scan) and what it found, under a key per (address,
contract) that the venue memory (the history database) keeps too: a restart resumes the scan
where it stopped. The cursor moves only past blocks the node that answered the logs had
reached (`RpcEndpoint.logs`). A request found in logs that a read shows closed for good
(claimed, cancelled) leaves what the scan found, in memory too: the calls of a fetch follow
the open requests, not every request ever made. Configured ids are read while configured.
The readers themselves are in `protocols/etherfi.py`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog

from equity_daemon.settings import ChainVenue as ChainSettings
from equity_daemon.settings import HoldingSettings
from equity_daemon.venues.protocols import Reader, Readout
from equity_daemon.venues.protocols.etherfi import (
    PriorityQueueReader,
    QueuedRequest,
    WithdrawalReader,
    mint_topics,
    minted_ids,
    queue_topics,
    queued_requests,
)
from equity_daemon.venues.rpc import RpcEndpoint

log = structlog.get_logger()

Remember = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Stores a scan's state in the venue memory under a key (a no-op without memory)."""
Logs = list[tuple[list[bytes], bytes]]

REQUESTS_KEY = "etherfi_requests"
PRIORITY_KEY = "etherfi_priority"


@dataclass(frozen=True, slots=True)
class NftSource:
    """A request NFT read for an address: the ids configured, the block its mint-log scan
    starts from (None: no scan), the key of the scan's state, whether it is the venue's own."""

    address: str
    nft: str
    ids: tuple[int, ...]
    scan_from: int | None
    key: str
    own: bool = True


@dataclass(frozen=True, slots=True)
class QueueSource:
    """A PriorityWithdrawalQueue read for an address, where its log scan starts, and the key
    of the scan's state."""

    address: str
    queue: str
    scan_from: int
    key: str


class WithdrawalScans:
    """The request sources of a chain venue's holdings and the state of their log scans.

    Args:
        config: the venue's settings.
        own_nft: the venue's `contracts.etherfi_withdrawals` ("" when it has none).
        remember: stores a scan's state (the venue memory).
    """

    def __init__(self, config: ChainSettings, own_nft: str, remember: Remember) -> None:
        self._config = config
        self._own = own_nft
        self._remember = remember
        self._cursor: dict[str, int] = {}  # the next block to scan, by key
        self._ids: dict[str, set[int]] = {}  # NFT request ids found, by key
        self._queued: dict[str, dict[bytes, QueuedRequest]] = {}  # queue requests, by key
        # a queue's nonce when its logs were last scanned through the block read, by key
        self._nonces: dict[str, int] = {}

    # --- sources ------------------------------------------------------------------------

    def nft_sources(self, holding: HoldingSettings | None = None) -> list[NftSource]:
        """The request NFTs read for `holding` (every holding's, when None)."""
        sources = []
        for item in self._holdings(holding):
            address = item.address
            if item.etherfi_requests or item.etherfi_scan_from_block is not None:
                sources.append(
                    NftSource(
                        address,
                        self._own,
                        item.etherfi_requests,
                        item.etherfi_scan_from_block,
                        f"{REQUESTS_KEY}:{address}",
                    )
                )
            sources += [
                NftSource(
                    address,
                    nft.contract,
                    nft.requests,
                    nft.scan_from_block,
                    f"{REQUESTS_KEY}:{address}:{nft.contract}",
                    own=nft.contract.lower() == self._own.lower(),
                )
                for nft in item.etherfi_withdrawal_nfts
            ]
        return sources

    def queue_sources(self, holding: HoldingSettings | None = None) -> list[QueueSource]:
        """The PriorityWithdrawalQueues read for `holding` (every holding's, when None)."""
        return [
            QueueSource(
                item.address,
                queue.contract,
                queue.scan_from_block,
                f"{PRIORITY_KEY}:{item.address}:{queue.contract}",
            )
            for item in self._holdings(holding)
            for queue in item.etherfi_priority_queues
        ]

    def _holdings(self, holding: HoldingSettings | None) -> Sequence[HoldingSettings]:
        return (holding,) if holding is not None else self._config.holdings

    # --- readers --------------------------------------------------------------------------

    async def readers(self, rpc: RpcEndpoint, holding: HoldingSettings, block: int) -> list[Reader]:
        """The readers of `holding`'s requests, its logs scanned up to `block` first."""
        readers: list[Reader] = []
        for source in self.nft_sources(holding):
            scans = source.scan_from is not None
            if scans:
                await self._scan_nft(rpc, source, block)
            readers.append(
                WithdrawalReader(
                    source.address, source.nft, self._nft_ids(source), count=scans, own=source.own
                )
            )
        for queue in self.queue_sources(holding):
            await self._scan_queue(rpc, queue, block)
            readers.append(PriorityQueueReader(queue.address, queue.queue, self._requests(queue)))
        return readers

    async def found_new(
        self, rpc: RpcEndpoint, readers: Sequence[Reader], out: Readout, block: int
    ) -> tuple[tuple[Reader, ...], bool]:
        """The readers, and whether requests not read yet were found: scans the logs of the
        NFTs an address holds more of than `out` read, and of the queues whose nonce moved."""
        found = False
        updated = list(readers)
        for index, reader in enumerate(readers):
            if isinstance(reader, PriorityQueueReader):
                newer: Reader | None = await self._queue_moved(rpc, reader, out, block)
            elif isinstance(reader, WithdrawalReader) and reader.count:
                newer = await self._nft_moved(rpc, reader, out, block)
            else:
                continue
            if newer is not None:
                updated[index] = newer
                found = True
        return tuple(updated), found

    async def without_closed(self, readers: Sequence[Reader], out: Readout) -> tuple[Reader, ...]:
        """The readers without the requests found in logs that `out` shows closed for good
        (claimed, cancelled); what their scans found is remembered without them."""
        updated = list(readers)
        for index, reader in enumerate(readers):
            if isinstance(reader, WithdrawalReader):
                newer: Reader | None = await self._nft_closed(reader, out)
            elif isinstance(reader, PriorityQueueReader):
                newer = await self._queue_closed(reader, out)
            else:
                continue
            if newer is not None:
                updated[index] = newer
        return tuple(updated)

    async def _nft_closed(self, reader: WithdrawalReader, out: Readout) -> Reader | None:
        source = self._nft_source(reader)
        found = self._ids.get(source.key, set())
        closed = found & out.closed_requests.get((reader.address, reader.nft), set())
        if not closed:
            return None
        found -= closed
        await self._closed(source, len(closed))
        return replace(reader, request_ids=self._nft_ids(source))

    async def _queue_closed(self, reader: PriorityQueueReader, out: Readout) -> Reader | None:
        source = self._queue_source(reader)
        found = self._queued.get(source.key, {})
        closed = found.keys() & out.closed_queued.get((reader.address, reader.queue), set())
        if not closed:
            return None
        for request in closed:
            del found[request]
        await self._closed(source, len(closed))
        return replace(reader, requests=self._requests(source))

    async def _closed(self, source: NftSource | QueueSource, count: int) -> None:
        log.info(
            "etherfi_requests_closed", venue=self._config.name, address=source.address, closed=count
        )
        await self._save(source)

    def _nft_source(self, reader: WithdrawalReader) -> NftSource:
        (source,) = [
            s for s in self.nft_sources() if (s.address, s.nft) == (reader.address, reader.nft)
        ]
        return source

    def _queue_source(self, reader: PriorityQueueReader) -> QueueSource:
        (source,) = [
            s
            for s in self.queue_sources()
            if (s.address, s.queue) == (reader.address, reader.queue)
        ]
        return source

    def _nft_ids(self, source: NftSource) -> tuple[int, ...]:
        """The ids read for `source`: those configured and those its scan found open."""
        return tuple(sorted({*source.ids, *self._ids.get(source.key, ())}))

    async def _nft_moved(
        self, rpc: RpcEndpoint, reader: WithdrawalReader, out: Readout, block: int
    ) -> WithdrawalReader | None:
        read = sum(
            1
            for p in out.positions
            if p.account == reader.account and p.details.get("contract") == reader.nft
        )
        if out.nft_balances.get((reader.address, reader.nft), 0) <= read:
            return None
        source = self._nft_source(reader)
        await self._scan_nft(rpc, source, block)
        ids = self._nft_ids(source)
        return None if ids == reader.request_ids else replace(reader, request_ids=ids)

    async def _queue_moved(
        self, rpc: RpcEndpoint, reader: PriorityQueueReader, out: Readout, block: int
    ) -> PriorityQueueReader | None:
        source = self._queue_source(reader)
        nonce = out.queue_nonces[(reader.address, reader.queue)]
        if self._cursor.get(source.key, 0) <= block and self._nonces.get(source.key) != nonce:
            await self._scan_queue(rpc, source, block)
        self._nonces[source.key] = nonce  # the logs are scanned through this block
        requests = self._requests(source)
        return None if requests == reader.requests else replace(reader, requests=requests)

    def _requests(self, queue: QueueSource) -> tuple[QueuedRequest, ...]:
        return tuple(sorted(self._queued[queue.key].values(), key=lambda r: r.request_id))

    # --- scans ------------------------------------------------------------------------------

    async def _scan_nft(self, rpc: RpcEndpoint, source: NftSource, block: int) -> None:
        assert source.scan_from is not None
        found = self._ids.setdefault(source.key, set())

        def collect(logs: Logs) -> None:
            found.update(minted_ids(logs))

        topics = mint_topics(source.address)
        await self._scan(rpc, source.key, source.nft, topics, source.scan_from, block, collect)
        await self._scanned("etherfi_requests_scanned", source, source.nft, len(found))

    async def _scan_queue(self, rpc: RpcEndpoint, source: QueueSource, block: int) -> None:
        found = self._queued.setdefault(source.key, {})

        def collect(logs: Logs) -> None:
            found.update((request.request_id, request) for request in queued_requests(logs))

        topics = queue_topics(source.address)
        await self._scan(rpc, source.key, source.queue, topics, source.scan_from, block, collect)
        await self._scanned("etherfi_priority_requests_scanned", source, source.queue, len(found))

    async def _scan(
        self,
        rpc: RpcEndpoint,
        key: str,
        contract: str,
        topics: list[bytes | None],
        scan_from: int,
        block: int,
        collect: Callable[[Logs], None],
    ) -> None:
        """`contract`'s logs matching `topics`, from the cursor `key` (else `scan_from`) up to
        `block`, in ranges of `log_range_blocks` (one eth_getLogs each), each range collected
        before the cursor moves past it."""
        start = self._cursor.setdefault(key, scan_from)
        while start <= block:
            end = min(start + self._config.log_range_blocks - 1, block)
            collect(await rpc.logs(contract, topics, start, end))
            start = self._cursor[key] = end + 1

    async def _scanned(
        self, event: str, source: NftSource | QueueSource, contract: str, found: int
    ) -> None:
        """Logs `source`'s finished scan of `contract` (`found` requests open) and saves it."""
        log.info(
            event, venue=self._config.name, address=source.address, contract=contract, found=found
        )
        await self._save(source)

    async def _save(self, source: NftSource | QueueSource) -> None:
        """Remembers where `source`'s scan started, its cursor and the open requests it found,
        so that a restart resumes it."""
        found: list[Any]
        if isinstance(source, NftSource):
            found = sorted(self._ids[source.key])
        else:
            found = [
                ["0x" + r.request_id.hex(), r.amount_of_eeth, r.amount_with_fee, r.nonce]
                for r in self._requests(source)
            ]
        await self._remember(
            source.key,
            {"from": source.scan_from, "cursor": self._cursor[source.key], "found": found},
        )

    # --- memory ----------------------------------------------------------------------------

    def recall(self, stored: Mapping[str, str]) -> None:
        """Resume the scans `stored` holds (the venue memory); one configured to start from
        another block starts again.

        Raises:
            ValueError, KeyError, TypeError: a stored scan cannot be read.
        """
        for source in self.nft_sources():
            scan = self._stored(stored, source.key, source.scan_from)
            if scan is not None:
                self._cursor[source.key] = int(scan["cursor"])
                self._ids[source.key] = {int(i) for i in scan["found"]}
        for queue in self.queue_sources():
            scan = self._stored(stored, queue.key, queue.scan_from)
            if scan is not None and all(len(entry) == 4 for entry in scan["found"]):
                # (stored before requests kept their nonce: scanned again)
                self._cursor[queue.key] = int(scan["cursor"])
                requests = [
                    QueuedRequest(bytes.fromhex(str(i).removeprefix("0x")), int(a), int(f), int(n))
                    for i, a, f, n in scan["found"]
                ]
                self._queued[queue.key] = {r.request_id: r for r in requests}

    @staticmethod
    def _stored(stored: Mapping[str, str], key: str, scan_from: int | None) -> Any:
        text = stored.get(key)
        if text is None or scan_from is None:
            return None
        scan = json.loads(text)
        return scan if scan["from"] == scan_from else None  # configured anew: scan again
