"""The boundary between venues and the core.

A venue is anything with a `name` and an `async fetch()` that returns a `VenueReport` or raises a
`VenueError` (`VenueUnavailable` when a retry may help, `VenueDataError` when the answer is
malformed). A streaming venue also yields reports as they happen, so the calculator runs within
a second of a change instead of at the next poll.

Adapters translate their library's exceptions at this boundary: nothing above `venues/` knows
what ccxt or web3 raise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol, runtime_checkable

from equity_daemon.model import VenueReport


class Venue(Protocol):
    """**Protocol**: one venue account, fetched on demand."""

    @property
    def name(self) -> str: ...

    async def fetch(self) -> VenueReport: ...


@runtime_checkable
class StreamingVenue(Venue, Protocol):
    """**Protocol**: a venue that also pushes a new report whenever its positions change.

    `keepalive` is how many seconds the stream may stay silent before it counts as down (a
    half-dead socket says nothing rather than failing); REST fetches cover until it delivers.
    """

    @property
    def keepalive(self) -> float: ...

    def updates(self) -> AsyncIterator[VenueReport]: ...


class VenueMemory(Protocol):
    """**Protocol**: what a venue keeps across restarts, as text by key (`History` is one).

    Both methods may raise `HistoryUnavailable`: a venue goes on without memory then.
    """

    async def recall(self, venue: str) -> dict[str, str]: ...

    async def remember(self, venue: str, key: str, value: str, at: datetime) -> None: ...


@runtime_checkable
class RemembersVenue(Protocol):
    """**Protocol**: a venue that keeps what it learned (discovery, cursors) in a
    `VenueMemory`; the daemon attaches its history before the first fetch."""

    def attach_memory(self, memory: VenueMemory) -> None: ...
