"""A small client for the daemon's HTTP API, for a strategy process that runs apart.

    async with EquityClient("http://127.0.0.1:9731", token=os.environ["EQUITY_TOKEN"]) as client:
        equity = await client.equity("basis")  # Decimal, or IncompleteEquity / StaleEquity

Money arrives as decimal strings and leaves as `Decimal`, never as float.
"""

from __future__ import annotations

from decimal import Decimal
from types import TracebackType
from typing import Any

import httpx

from equity_daemon.api import IncompleteEquity, StaleEquity


class EquityClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 5.0) -> None:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        self._http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout)

    async def __aenter__(self) -> EquityClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def snapshots(self) -> list[dict[str, Any]]:
        """Every book's latest snapshot document."""
        response = await self._http.get("/snapshot")
        response.raise_for_status()
        books: list[dict[str, Any]] = response.json()["books"]
        return books

    async def snapshot(self, book: str) -> dict[str, Any]:
        for snap in await self.snapshots():
            if snap["book"] == book:
                return snap
        raise IncompleteEquity(book, "no snapshot yet")

    async def equity(self, book: str) -> Decimal:
        """The book's equity; raises `IncompleteEquity` or `StaleEquity` when the daemon cannot
        vouch for it."""
        return Decimal((await self._usable(book))["equity"])

    async def by_venue(self, book: str) -> dict[str, Decimal]:
        snap = await self._usable(book)
        return {venue: Decimal(value) for venue, value in snap["equity_by_venue"].items()}

    async def by_asset(self, book: str) -> dict[str, Decimal]:
        snap = await self._usable(book)
        return {asset: Decimal(value) for asset, value in snap["equity_by_asset"].items()}

    async def _usable(self, book: str) -> dict[str, Any]:
        snap = await self.snapshot(book)
        if not snap["complete"]:
            raise IncompleteEquity(book, "; ".join(p["detail"] for p in snap["problems"]))
        if snap["stale"]:
            raise StaleEquity(book, snap["age_seconds"], snap["stale_after_seconds"])
        return snap

    async def events(
        self, since: str | None = None, book: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """`/events`: the latest `limit` (100 by default), or the first from `since`."""
        asked = {"since": since, "book": book, "limit": limit}
        params = {name: str(value) for name, value in asked.items() if value is not None}
        response = await self._http.get("/events", params=params)
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()["events"]
        return events
