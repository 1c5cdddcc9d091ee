"""Believe no venue blindly: a bad report fails its venue with the reason, never the daemon."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from structlog.testing import capture_logs

from equity_daemon.model import Asset, Position, PositionKind, VenueReport
from equity_daemon.runtime.poller import PollPolicy, fetch_once
from equity_daemon.sanity import sudden_loss
from tests.reports import NOW, Clock, pos
from tests.runtime.test_poller import Recorder, Scripted

pytestmark = pytest.mark.anyio

POLICY = PollPolicy(interval=1, timeout=1)
USDT = pos("cex", "USDT", "100")


def report(*positions: Position, **fields: object) -> VenueReport:
    return replace(VenueReport("cex", NOW, positions), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (report(pos("cex", "USDT", "NaN")), "main/USDT/asset amount is NaN"),
        (report(pos("cex", "USDT", "-Infinity")), "main/USDT/asset amount is -Infinity"),
        (
            report(pos("cex", "USDT", "1E+999999999")),
            "main/USDT/asset amount is out of range (1.000e+999999999)",
        ),
        (
            report(pos("cex", "ETH", "-1", PositionKind.HEDGE, unrealized_pnl=Decimal("sNaN"))),
            "main/ETH/hedge unrealized_pnl is sNaN",
        ),
        (report(USDT, venue="bybit"), "report names venue 'bybit', not 'cex'"),
        (report(pos("okx", "USDT", "1")), "main/USDT/asset belongs to venue 'okx'"),
        (report(USDT, USDT), "main/USDT/asset appears twice"),
        (report(USDT, fetched_at=NOW.replace(tzinfo=None)), "fetch time has no time zone"),
        (report(USDT, as_of=NOW + timedelta(hours=1)), "data time is 3600s in the future"),
        (report(USDT, block_number=-1), "block number is -1"),
    ],
)
async def test_a_bad_report_fails_its_venue_with_the_reason(bad: VenueReport, reason: str) -> None:
    metrics = Recorder()
    with capture_logs():
        got = await fetch_once(Scripted(bad), POLICY, Clock(), metrics)
    assert (got.ok, got.error) == (False, reason)
    assert metrics.failures == [("cex", "malformed")]


async def test_lines_a_venue_says_are_separate_may_share_account_asset_and_kind() -> None:
    first = Position("cex", "isolated", Asset("USDT"), Decimal(5), line_id="ETHUSDT")
    second = replace(first, line_id="BTCUSDT")
    got = await fetch_once(Scripted(report(first, second)), POLICY, Clock(), Recorder())
    assert got.ok


async def test_a_little_clock_skew_is_not_bad_data() -> None:
    skewed = report(USDT, as_of=NOW + timedelta(seconds=3))
    assert (await fetch_once(Scripted(skewed), POLICY, Clock(), Recorder())).ok


PRICES = {"USDT": Decimal(1), "ETH": Decimal(3000)}


@pytest.mark.parametrize(
    ("before", "after", "suspicious"),
    [
        (report(USDT), report(), True),  # everything gone
        (report(USDT), report(pos("cex", "USDT", "0")), True),  # only zeros left
        (report(USDT, pos("cex", "ETH", "10")), report(USDT), True),  # 99.7 % of value gone
        (report(USDT, pos("cex", "ETH", "10")), report(pos("cex", "ETH", "9")), False),
        (report(), report(), False),  # held nothing before either
        (report(pos("cex", "USDT", "0")), report(), False),
        (report(pos("cex", "XYZ", "5")), report(pos("cex", "XYZ", "1")), False),  # unpriced
    ],
)
def test_a_report_that_loses_everything_or_most_of_its_value_is_suspicious(
    before: VenueReport, after: VenueReport, suspicious: bool
) -> None:
    assert sudden_loss(before, after, PRICES) is suspicious
    assert sudden_loss(None, after, PRICES) is False
