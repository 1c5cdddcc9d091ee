"""What a push does not carry stays coherent with what it does: a push to an account whose
debt only REST reads (Binance cross margin and portfolio margin, Bybit unified) never counts
before that debt is read again, and a coin a fresh REST answer no longer lists is gone at that
answer. On the fake servers through ccxt, and through the daemon."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.model import PositionKind, VenueReport
from equity_daemon.venues.exchange import StreamingExchangeVenue
from equity_daemon.venues.fake_exchange import FakeExchange, Holding, fake_exchange
from tests.venues.exchanges import subscribed, venue_at
from tests.venues.test_exchange_stream import running, store_has, venue_config

pytestmark = pytest.mark.anyio

D = Decimal
POLL = 0.3  # the venues' interval in these tests
# (exchange, account type, the fake's account, its push topic): the accounts whose pushes
# leave the debt out
UNPUSHED_DEBT = [
    ("binance", "cross_margin", "margin", "margin"),
    ("binance", "portfolio_margin", "portfolio", "portfolio"),
    ("bybit", "unified", "unified", "wallet"),
]
IDS = [account for _, account, _, _ in UNPUSHED_DEBT]


@asynccontextmanager
async def streamed(
    exchange: str, account: str, fake_account: str, held: Mapping[str, Holding]
) -> AsyncIterator[tuple[FakeExchange, AsyncIterator[VenueReport]]]:
    """The updates of a streaming venue of `account` holding `held`, polled every `POLL`,
    after its first report (the stream subscribed)."""
    async with fake_exchange(exchange) as fake:
        fake.set_account(fake_account, held)
        async with (
            venue_at(StreamingExchangeVenue, fake, (account,), poll_seconds=POLL) as venue,
            aclosing(venue.updates()) as updates,
        ):
            with anyio.fail_after(5):
                await anext(updates)
            yield fake, updates


def net(report: VenueReport, coin: str) -> Decimal:
    """What the report says `coin` is worth in the account: its holdings less its debt."""
    return sum(
        (
            -p.amount if p.kind is PositionKind.DEBT else p.amount
            for p in report.positions
            if p.asset.symbol == coin and p.kind in (PositionKind.ASSET, PositionKind.DEBT)
        ),
        D(0),
    )


def owed(report: VenueReport, coin: str) -> Decimal:
    debts = (p for p in report.positions if p.kind is PositionKind.DEBT)
    return sum((p.amount for p in debts if p.asset.symbol == coin), D(0))


def held_amount(report: VenueReport, coin: str) -> Decimal:
    return sum(
        (
            p.amount
            for p in report.positions
            if p.asset.symbol == coin and p.kind is PositionKind.ASSET and p.line_id != "upnl"
        ),
        D(0),
    )


@pytest.mark.parametrize(("exchange", "account", "fake_account", "topic"), UNPUSHED_DEBT, ids=IDS)
async def test_a_pushed_borrow_never_counts_before_its_debt_is_read(
    exchange: str, account: str, fake_account: str, topic: str
) -> None:
    start = {"USDT": Holding(balance=D(13000))}
    async with streamed(exchange, account, fake_account, start) as (fake, updates):
        await subscribed(fake, topic)
        # 3,000 USDT borrowed: the coins arrive in the account, the debt with them; the push
        # carries the coins only
        fake.set_holding(fake_account, "USDT", Holding(balance=D(16000), borrowed=D(3000)))
        assert await fake.push(topic, coins=["USDT"]) == 1
        seen: list[VenueReport] = []
        with anyio.fail_after(2 * POLL + 2):
            while not seen or owed(seen[-1], "USDT") != 3000:
                seen.append(await anext(updates))
    assert [net(report, "USDT") for report in seen] == [D(13000)] * len(seen)  # never 16,000
    assert held_amount(seen[-1], "USDT") == 16000
    assert seen[-1].reported  # the exchange's own total, of the same answer: still compared


@pytest.mark.parametrize(("exchange", "account", "fake_account", "topic"), UNPUSHED_DEBT, ids=IDS)
async def test_a_coin_sold_to_zero_is_gone_at_the_first_rest_answer_that_leaves_it_out(
    exchange: str, account: str, fake_account: str, topic: str
) -> None:
    start = {"ETH": Holding(balance=D(2)), "USDT": Holding(balance=D(10))}
    async with streamed(exchange, account, fake_account, start) as (fake, updates):
        await subscribed(fake, topic)
        fake.set_holding(fake_account, "ETH", None)  # sold: the exchange lists it no more
        fake.set_holding(fake_account, "USDT", Holding(balance=D(7010)))
        assert await fake.push(topic, coins=["USDT", "ETH"]) == 1
        polls = len(fake.requests)
        seen: list[VenueReport] = []
        with anyio.fail_after(4 * POLL + 2):
            while len(fake.requests) < polls + 3 or not seen:  # three REST reads since
                seen.append(await anext(updates))
    sold = [report for report in seen if held_amount(report, "USDT") == 7010]
    assert sold
    assert [held_amount(report, "ETH") for report in sold] == [D(0)] * len(sold)


async def test_the_daemon_raises_no_event_for_a_borrow(tmp_path: Path) -> None:
    """13,000 -> 16,000 -> 13,000 and two threshold events, for a move of nothing."""
    async with fake_exchange("binance") as fake:
        fake.set_account("margin", {"USDT": Holding(balance=D(13000))})
        venue = venue_config(fake, kind="binance", accounts=["cross_margin"], interval_seconds=1)
        with capture_logs():
            async with running(tmp_path, venue) as daemon:
                await subscribed(fake, "margin")
                fake.set_holding("margin", "USDT", Holding(balance=D(16000), borrowed=D(3000)))
                assert await fake.push("margin", coins=["USDT"]) == 1
                await store_has(daemon, lambda s: owed(s.latest, "USDT") == 3000)
                await anyio.sleep(0.3)  # any cycle that report started
                latest = daemon.latest()
                events = await daemon.events(None)
    assert latest is not None
    assert latest.equity == 13000
    assert events == []
