"""Status pages to look at: three books in the states a reader must tell apart, with a week of
history each, at `tests.reports.NOW`.

* `basis` (USDT): complete; its history climbs with threshold alerts (found by the real
  `ThresholdRule` over the series), an hour with the equity unknown, a few incomplete points.
* `carry` (USDT): incomplete (okx failing for 10 minutes: the equity is an estimate), with
  venue data that is hostile markup, and names too long for a phone's line.
* `staking` (ETH): the equity unknown (its chain venue never answered), no reference yet.

`ShowcaseSource` serves them to the HTTP API as the daemon would (`status_page.gather`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from equity_daemon.model import EquityPoint, PositionKind, ShareClass, VenueReport, VenueState
from equity_daemon.monitor import AlertBand, Reference, ThresholdRule
from tests.reports import (
    HOSTILE_ASSET,
    HOSTILE_REASON,
    NOW,
    basis_doc,
    failed,
    ok,
    pos,
    snapshot,
)

RULE = ThresholdRule()
WEEK = timedelta(days=7)
EVERY = timedelta(minutes=10)
LONG_ACCOUNT = "aave-core:0x5f4ec3df9cbd43714fe2740f5e3616155c5b8419"
LONG_ERROR = (
    "timeout after 10 s: GET https://www.okx.com/api/v5/account/balance?ccy=USDT,ETH,BTC,SOL "
    "did not answer (the exchange's status page reports degraded performance)"
)
FRESH = {"age_seconds": 3.0, "stale_after_seconds": 120.0, "stale": False}


def basis_equity(at: datetime) -> Decimal:
    """A week's climb from 505,000 to 512,500 USDT, with a wobble, exact to the cent."""
    minutes = int((at - (NOW - WEEK)).total_seconds() // 60)
    wobble = Decimal((minutes * 37) % 601 - 300) / 2
    return (Decimal(505_000) + Decimal(7_500) * minutes / (7 * 24 * 60) + wobble).quantize(
        Decimal("0.01")
    )


def basis_history() -> tuple[list[EquityPoint], list[dict[str, Any]], Reference]:
    """The week's points, the threshold alerts the rule finds in them, and the reference."""
    points, alerts = [], []
    reference: Reference | None = None
    at = NOW - WEEK
    while at < NOW:
        unknown = NOW - timedelta(hours=5) <= at < NOW - timedelta(hours=4)
        incomplete = NOW - timedelta(hours=9) <= at < NOW - timedelta(hours=8, minutes=30)
        equity = None if unknown else basis_equity(at)
        points.append(EquityPoint(at, equity, not (unknown or incomplete)))
        if equity is not None and not incomplete:
            if reference is None or reference.equity is None:
                reference = Reference("basis", equity, at=at)
            elif RULE.crossed(reference.equity, equity):
                alerts.append(threshold_event("basis", at, reference.equity, equity))
                reference = Reference("basis", equity, at=at)
        at += EVERY
    assert reference is not None
    return points, alerts, reference


def threshold_event(book: str, at: datetime, reference: Decimal, equity: Decimal) -> dict[str, Any]:
    moved = equity - reference
    return {
        "id": f"{book}-{at:%m%d%H%M}",
        "book": book,
        "kind": "threshold",
        "at": at.isoformat(),
        "reference": str(reference),
        "equity": str(equity),
        "change": str(moved),
        "relative_change": str(moved / abs(reference)),
        "detail": None,
        "venue": None,
        "snapshot": {"share_class": "USDT", "problems": []},
    }


def complete_doc(reference: Reference) -> dict[str, Any]:
    doc = basis_doc() | {"sequence": 1008}
    return doc | {"alert_band": AlertBand(reference, RULE).to_json()}


def incomplete_doc() -> dict[str, Any]:
    okx = ok(pos("okx", "ETH", "10", account=HOSTILE_REASON), age=timedelta(minutes=10))
    wallet = ok(
        pos("binance", "USDT", "250000", account=LONG_ACCOUNT),
        pos("binance", "ETH", "-10", PositionKind.HEDGE, "usdm", unrealized_pnl="12.5"),
    )
    snap = snapshot(wallet, failed(okx, "okx", LONG_ERROR))
    band = AlertBand(Reference("carry", Decimal(280_100), at=NOW - timedelta(hours=3)), RULE)
    return replace(snap, book="carry").to_json() | FRESH | {"alert_band": band.to_json()}


def unknown_doc() -> dict[str, Any]:
    chain = VenueState(VenueReport.failed("chain", NOW, "connection refused"), None)
    snap = snapshot(
        ok(pos("binance", "ETH", "25"), pos("binance", HOSTILE_ASSET, "5")),
        chain,
        share_class=ShareClass.ETH,
    )
    band = AlertBand(Reference("staking"), RULE)
    return replace(snap, book="staking").to_json() | FRESH | {"alert_band": band.to_json()}


def carry_history() -> list[EquityPoint]:
    """30 hours around 280,000 USDT; incomplete for its last 10 minutes."""
    start = NOW - timedelta(hours=30)
    return [
        EquityPoint(at, Decimal(279_900) + (i * 53) % 290, at < NOW - timedelta(minutes=10))
        for i in range(180)
        if (at := start + i * EVERY)
    ]


class ShowcaseSource:
    """The three books as `status_page.gather` reads them (`PageSource`)."""

    def __init__(self) -> None:
        points, self.alerts, reference = basis_history()
        self.docs = [complete_doc(reference), incomplete_doc(), unknown_doc()]
        staking = [EquityPoint(NOW - i * EVERY, None, False) for i in range(3, 0, -1)]
        self.histories = {"basis": points, "carry": carry_history(), "staking": staking}
        self.notices = [
            {
                "id": "carry-incomplete",
                "book": "carry",
                "kind": "incomplete",
                "at": (NOW - timedelta(minutes=9)).isoformat(),
                "reference": None,
                "equity": "280000",
                "change": None,
                "relative_change": None,
                "detail": None,
                "venue": None,
                "snapshot": self.docs[1],
            },
            {
                "id": "staking-refused",
                "book": "staking",
                "kind": "venue_refused",
                "at": (NOW - timedelta(minutes=2)).isoformat(),
                "reference": None,
                "equity": None,
                "change": None,
                "relative_change": None,
                "detail": f"chain refused our key or a permission: {LONG_ERROR}",
                "venue": "chain",
                "snapshot": self.docs[2],
            },
        ]

    def metrics(self) -> tuple[bytes, str]:
        return b"", "text/plain"

    def book_names(self) -> list[str]:
        return [doc["book"] for doc in self.docs]

    def healthy(self) -> tuple[bool, str]:
        return True, "ok"

    def ready(self) -> tuple[bool, list[str]]:
        return False, ["carry: incomplete (failed_venue okx)", "staking: equity unknown"]

    def snapshots(self) -> list[dict[str, Any]]:
        return self.docs

    def exchange_bans(self) -> Mapping[str, datetime]:
        return {}

    async def events(
        self,
        since: datetime | None,
        book: str | None = None,
        limit: int | None = None,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        found = sorted(self.alerts + self.notices, key=lambda event: event["at"])
        found = [
            event
            for event in found
            if (book is None or event["book"] == book) and (kind is None or event["kind"] == kind)
        ]
        return found[-limit:] if limit else found

    async def equity_history(
        self, book: str, since: datetime, points: int | None = None
    ) -> list[EquityPoint]:
        return [point for point in self.histories.get(book, []) if point.at >= since]

    async def equity_baseline(self, book: str, at: datetime) -> EquityPoint | None:
        known = [p for p in self.histories.get(book, []) if p.complete and p.equity is not None]
        before = [point for point in known if point.at <= at]
        return before[-1] if before else (known[0] if known else None)
