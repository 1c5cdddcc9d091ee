"""Chainlink aggregators as price sources, read in the venue's multicall.

`latestRoundData()` gives the answer and `updatedAt`; the feed's `decimals()` is read at
discovery. An answer not above zero, or older than the heartbeat plus a margin at the block
read, is no quote: the edge fails with the reason (the oracle then falls back or marks the
price stale), while the positions of the report stand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from equity_daemon.venues.multicall import Call, CallResult
from equity_daemon.venues.protocols import Readout, units

_ROUND = ("uint80", "int256", "uint256", "uint256", "uint80")


@dataclass(frozen=True, slots=True)
class Feed:
    """1 `base` = answer / 10**decimals `quote`, expected at least every `heartbeat`."""

    base: str
    quote: str
    address: str
    decimals: int
    heartbeat: timedelta
    margin: timedelta


@dataclass(frozen=True, slots=True)
class FeedReader:
    feed: Feed

    def calls(self) -> Sequence[Call]:
        label = f"{self.feed.base}/{self.feed.quote} feed.latestRoundData"
        return [Call.of(self.feed.address, "latestRoundData()", returns=_ROUND, label=label)]

    def read(self, results: Sequence[CallResult], out: Readout) -> None:
        (result,) = results
        feed = self.feed
        pair = (feed.base, feed.quote)
        name = f"feed {feed.base}/{feed.quote} at {feed.address}"
        if result.error is not None:
            out.rate_failures[pair] = f"{name}: {result.error}"
            return
        _round, answer, _started, updated_at, _answered = result.values
        if answer <= 0:
            out.rate_failures[pair] = f"{name}: answer {answer} is not above zero"
            return
        age = out.block.timestamp - datetime.fromtimestamp(int(updated_at), UTC)
        if age > feed.heartbeat + feed.margin:
            out.rate_failures[pair] = (
                f"{name}: stale, updated {age.total_seconds():.0f}s before block "
                f"{out.block.number} (heartbeat {feed.heartbeat.total_seconds():.0f}s)"
            )
            return
        out.rates[pair] = units(int(answer), feed.decimals)
