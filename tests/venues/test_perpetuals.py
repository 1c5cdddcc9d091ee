"""Open perpetuals through the real daemon on the fake Binance, Bybit and OKX servers: each is
worth what its own market says (its mark, read at the cycle beside the spot prices), a Bybit
USDC contract's settled sessions are counted once, and what the positions read do not explain
is named, never silently lost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.clock import SystemClock
from equity_daemon.errors import VenueDataError
from equity_daemon.history import History
from equity_daemon.model import Asset, Position, Snapshot, VenueReport, VenueState
from equity_daemon.monitor import Event, EventKind
from equity_daemon.prices import Quote
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.venues.exchange import StreamingExchangeVenue
from equity_daemon.venues.fake_exchange import (
    FakeExchange,
    FakePosition,
    FakeState,
    Fault,
    Holding,
)
from equity_daemon.venues.fake_exchange import fake_exchange as fake_server
from tests.reports import Clock, tracker
from tests.venues.exchanges import CREDENTIALS
from tests.venues.test_exchange import (
    FAKE_ACCOUNT,
    FIXED_USD,
    MAIN_ACCOUNT,
    WALLET,
    daemon,
    exchange_venue,
)

pytestmark = pytest.mark.anyio

D = Decimal
EXCHANGES = ["binance", "bybit", "okx"]
EXPOSURE = D(10) * D("1.2") * D("0.999")  # the ETH the wallet holds through wstETH
ENTRY, MARGIN = D(3000), D(20000)
SPOT = [{"base": "ETH", "quote": "USDT", "sources": ["cex"]}, *FIXED_USD]
# the topic of each streamed account's balance pushes, on the fake
BALANCE_TOPIC = {"binance": "account", "bybit": "wallet", "okx": "account"}
# the exchange's mark: from its own answer (REST) on each exchange (`coinm`: Binance COIN-M's)
MARK_PATHS = {
    "binance": "/fapi/v1/premiumIndex",
    "bybit": "/v5/market/tickers",
    "okx": "/api/v5/public/mark-price",
    "coinm": "/dapi/v1/premiumIndex",
}


class Book:
    """A real daemon valuing a wallet and one exchange account on a fake server, one cycle at
    a time on a hand-moved clock."""

    def __init__(self, run: Daemon, history: History, fake: FakeExchange, clock: Clock) -> None:
        self.run, self.history, self.fake, self.clock = run, history, fake, clock

    async def cycle(self) -> tuple[Snapshot, list[Event]]:
        self.clock.now += timedelta(seconds=5)
        with capture_logs():
            await self.run.fetch_all_once()
            events = await self.run.cycle(self.history)
        snap = self.run.latest()
        assert snap is not None
        return snap, events

    def account(self, balance: Decimal, pnl: Decimal, coin: str = "USDT") -> None:
        """The exchange account: `balance` in its wallet, `pnl` its positions' uPnL."""
        fake_account = FAKE_ACCOUNT[self.fake.name]
        self.fake.set_account(fake_account, {coin: Holding(balance=balance, unrealized_pnl=pnl)})


@asynccontextmanager
async def book_on(
    exchange: str,
    tmp_path: Path,
    wallet: str = WALLET,
    prices: list[dict[str, Any]] | None = None,
    market: bool = False,
    accounts: Sequence[str] | None = None,
    **book: Any,
) -> AsyncIterator[Book]:
    """A book on a new fake `exchange`: the `wallet` file's positions and the exchange's
    `accounts` (its main account), priced by `prices` (the exchange's spot ticker); `market`: a
    `[markets.data]` of the same fake host, which then quotes the spot prices (and, being of the
    venue's host, the contracts' marks)."""
    (tmp_path / "wallet.toml").write_text(wallet)
    clock = Clock()
    async with fake_server(exchange) as fake:
        venues = [
            {"kind": "manual", "name": "wallet", "path": str(tmp_path / "wallet.toml")},
            exchange_venue(fake, list(accounts or [MAIN_ACCOUNT[exchange]])),
        ]
        wallet_prices = [
            {"base": "wstETH", "quote": "stETH", "sources": ["wallet"]},
            {"base": "stETH", "quote": "ETH", "sources": ["wallet"]},
        ]
        spot = prices or SPOT
        markets = {}
        if market:
            markets = {"data": {"kind": exchange, "base_url": fake.base_url, "stream": False}}
            spot = [{"base": "ETH", "quote": "USDT", "sources": ["data"]}, *FIXED_USD]
        run = daemon(clock, venues, [*wallet_prices, *spot], markets=markets, **book)
        history = await History.open(tmp_path / "h.sqlite3")
        try:
            yield Book(run, history, fake, clock)
        finally:
            await history.aclose()
            await run.aclose()


def hedged(book: Book, spot: Decimal, mark: Decimal) -> None:
    """The wallet's ETH shorted at `ENTRY`, spot at `spot`, the perpetual's mark at `mark`."""
    book.fake.set_price("ETH", spot, mark=mark)
    book.account(MARGIN, -EXPOSURE * (mark - ENTRY))


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_opening_and_closing_a_hedge_at_a_premium_raises_no_event(
    tmp_path: Path, exchange: str
) -> None:
    # 1,000 ETH held, then shorted at 0.5 % over a 3,000 spot: the short is worth nothing more
    # the moment it opens (its uPnL at its own mark is 0), nor when it closes at that mark
    wallet = '[[positions]]\naccount = "cold"\nasset = "ETH"\namount = "1000"\n'
    async with book_on(exchange, tmp_path, wallet, threshold_percent="0.1") as book:
        book.fake.set_price("ETH", 3000, mark=3015)
        book.account(D(300_000), D(0))
        before, _ = await book.cycle()  # the reference
        assert before.equity == 3_300_000
        book.fake.set_positions([FakePosition("ETH", D(-1000), D(3015))])
        opened, events = await book.cycle()
        assert events == []
        assert opened.equity == before.equity
        assert opened.unrealized_pnl == 0
        assert opened.complete, opened.problems
        (hedge,) = [line for line in opened.excluded if line.kind == "hedge"]
        assert hedge.details["mark_price"] == "3015"
        book.fake.set_positions([])  # closed at the mark it opened at: nothing realised
        closed, events = await book.cycle()
        assert events == []
        assert closed.equity == before.equity


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_a_delta_neutral_book_stays_flat_while_spot_and_perp_move_together_twenty_percent(
    tmp_path: Path, exchange: str
) -> None:
    expected = MARGIN + EXPOSURE * ENTRY  # the wallet's ETH and the short's legs cancel
    path = [D(p) for p in (3000, 3300, 3600, 3300, 3000, 2700, 2400, 2700, 3000)]
    async with book_on(exchange, tmp_path) as book:
        book.fake.set_positions([FakePosition("ETH", -EXPOSURE, ENTRY)])
        seen = []
        for price in path:
            hedged(book, price, mark=price)
            snap, events = await book.cycle()
            assert snap.complete, snap.problems
            assert events == []  # neither a threshold nor a reconciliation warning
            eth = next(p for p in snap.prices if p.asset == "ETH")
            assert eth.price == price
            # what is held (nothing is borrowed), never the short's legs as assets and debt
            assert (snap.total_assets, snap.total_debt) == (MARGIN + EXPOSURE * price, D(0))
            (item,) = snap.reconciliations
            assert (item.difference, item.unexplained_pnl) == (D(0), D(0))
            seen.append(snap.equity)
    assert (max(path), min(path)) == (D(3600), D(2400))  # ±20 %
    assert set(seen) == {expected}


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_a_delta_neutral_book_moves_by_exactly_the_basis_change_when_spot_and_perp_part(
    tmp_path: Path, exchange: str
) -> None:
    expected = MARGIN + EXPOSURE * ENTRY
    # (spot, mark): the perpetual trades at a premium, a discount, then in line again
    path = [(D(s), D(m)) for s, m in ((3000, 3000), (3100, 3100), (3100, "3115.5"))]
    path += [(D(3050), D("3040.85")), (D(2900), D(2900))]
    async with book_on(exchange, tmp_path, threshold_percent="0.1") as book:
        book.fake.set_positions([FakePosition("ETH", -EXPOSURE, ENTRY)])
        kinds = []
        for spot, mark in path:
            hedged(book, spot, mark)
            snap, events = await book.cycle()
            assert snap.complete, snap.problems
            # the short loses what its premium over spot gains it: a basis move is a move
            assert snap.equity == expected - EXPOSURE * (mark - spot)
            (item,) = snap.reconciliations
            assert item.difference == 0  # and the exchange's own uPnL agrees with ours
            kinds.append([e.kind for e in events])
    # 0.5 % of basis on the short's 37,000 is 0.33 % of the book's 56,000: past 0.1 %
    assert kinds == [[], [], [EventKind.THRESHOLD], [EventKind.THRESHOLD], [EventKind.THRESHOLD]]


async def test_a_market_of_the_venues_exchange_host_reads_the_contracts_mark(
    tmp_path: Path,
) -> None:
    async with book_on("bybit", tmp_path, market=True) as book:
        book.fake.set_positions([FakePosition("ETH", -EXPOSURE, ENTRY)])
        hedged(book, D(3000), D(3010))
        snap, _ = await book.cycle()
    contract = next(p for p in snap.prices if p.asset == "bybit:ETH/USDT:USDT")
    assert (contract.price, contract.sources[0], contract.fallback) == (D(3010), "data", False)
    assert snap.equity == MARGIN + EXPOSURE * ENTRY - EXPOSURE * 10


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_without_the_exchanges_mark_a_contract_is_valued_at_its_positions_own_mark(
    tmp_path: Path, exchange: str
) -> None:
    async with book_on(exchange, tmp_path) as book:
        book.fake.set_positions([FakePosition("ETH", -EXPOSURE, ENTRY)])
        hedged(book, D(3000), D(3010))
        book.fake.fail(MARK_PATHS[exchange], Fault.SERVER_ERROR)
        snap, _ = await book.cycle()
    contract = next(p for p in snap.prices if p.asset == f"{exchange}:ETH/USDT:USDT")
    # the mark the position's answer carried, as old as the positions: a fallback, named
    assert (contract.price, contract.sources[0], contract.fallback) == (
        D(3010),
        "cex position",
        True,
    )
    assert snap.complete
    assert any(f.source == "cex" for f in snap.quote_failures)
    assert snap.equity == MARGIN + EXPOSURE * ENTRY - EXPOSURE * 10


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_a_streamed_delta_neutral_book_raises_no_reconciliation_warning_while_eth_moves(
    exchange: str,
) -> None:
    clock = SystemClock()
    expected = MARGIN + EXPOSURE * ENTRY
    book = tracker(clock, reconciliation_tolerance=D("0.001"))
    wallet = Position("wallet", "cold", Asset("wstETH"), D(10))
    contract = f"{exchange}:ETH/USDT:USDT"
    # Binance in single-asset mode: its total is USDT's, which a USDT push moves exactly (a
    # multi-assets total a push touched is stale, and not compared)
    async with fake_server(exchange, FakeState(multi_assets=False)) as fake:
        fake.set_positions([FakePosition("ETH", -EXPOSURE, ENTRY)])
        fake.set_account(
            FAKE_ACCOUNT[exchange], {"USDT": Holding(balance=MARGIN, unrealized_pnl=D(0))}
        )
        venue = StreamingExchangeVenue(
            "cex",
            exchange,
            (MAIN_ACCOUNT[exchange],),
            CREDENTIALS,
            clock,
            base_url=fake.base_url,
            rate_limit=False,
            in_transit=False,
        )
        path = [D(p) for p in (3050, 3100, 3150, 3100, 3050, 3000, 2950, 2900, 2850, 2925, 3000)]
        seen = []
        try:
            async with aclosing(venue.updates()) as updates:
                with anyio.fail_after(5):
                    report = await anext(updates)  # the REST snapshot, at the mark of 3000
                    while not fake.dialect.subscribers.get(BALANCE_TOPIC[exchange]):  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                for step, price in enumerate(path):
                    fake.set_price("ETH", price)  # the perpetual moves with spot
                    pnl = -EXPOSURE * (price - ENTRY)
                    fake.set_account(
                        FAKE_ACCOUNT[exchange],
                        {"USDT": Holding(balance=MARGIN, unrealized_pnl=pnl)},
                    )
                    if step % 2:  # a balance push carries the total at the mark of its moment;
                        assert await fake.push(BALANCE_TOPIC[exchange]) == 1
                        with anyio.fail_after(5):  # a uPnL change alone pushes nothing
                            report = await anext(updates)
                    now = clock()
                    quotes = [
                        Quote("wstETH", "stETH", D("1.2"), "wallet", now, timedelta(minutes=5)),
                        Quote("stETH", "ETH", D("0.999"), "wallet", now, timedelta(minutes=5)),
                        Quote("ETH", "USDT", price, "cex", now, timedelta(minutes=5)),
                        Quote(contract, "USDT", price, "cex", now, timedelta(minutes=5)),
                        Quote("USD", "USDT", D(1), "fixed", now, timedelta(minutes=5)),
                    ]
                    held = VenueReport("wallet", now, (wallet,))
                    states = [VenueState(report, report), VenueState(held, held)]
                    cycle = book.judge(states, quotes)
                    book.commit(cycle)
                    snap = cycle.snapshot
                    assert snap.complete, snap.problems
                    assert cycle.events == [], [e.detail for e in cycle.events]
                    (item,) = snap.reconciliations
                    assert item.difference == 0, item
                    seen.append(snap.equity)
        finally:
            await venue.aclose()
    assert set(seen) == {expected}


async def test_a_bybit_usdc_contracts_settled_sessions_are_counted_once(tmp_path: Path) -> None:
    # short 10 ETH of the USDC perpetual opened at 3000, a session settled at 3500 (the wallet
    # paid 5,000), mark 3600: 100,000 - 5,000 - 1,000 = 94,000
    prices = [*SPOT, {"base": "ETH", "quote": "USDC", "sources": ["cex"]}]
    async with book_on("bybit", tmp_path, wallet="positions = []\n", prices=prices) as book:
        book.fake.set_positions([FakePosition("ETH", D(-10), D(3000), settle="USDC")])
        book.fake.set_price("ETH", 3500)
        book.account(D(100_000), D(-5000), coin="USDC")
        assert book.fake.settle_session() == -5000
        book.fake.set_price("ETH", 3600)
        book.account(D(95_000), D(-1000), coin="USDC")
        snap, _ = await book.cycle()
    assert snap.equity == 94_000
    assert snap.unrealized_pnl == -1000  # only what the session has not settled yet
    (item,) = snap.reconciliations
    assert (item.difference, item.unexplained_pnl) == (D(0), D(0))
    (hedge,) = [line for line in snap.excluded if line.kind == "hedge"]
    assert (hedge.details["entry_price"], hedge.details["settled_price"]) == ("3000", "3500")


async def test_a_position_the_venue_never_reads_is_flagged_with_the_upnl_it_leaves_unexplained(
    tmp_path: Path,
) -> None:
    # the coin's uPnL holds an option's -21.7 besides the perpetual's: the venue reads no
    # options, so the daemon sits 21.7 above the exchange's total, and says so
    async with book_on("bybit", tmp_path) as book:
        book.fake.set_positions([FakePosition("ETH", -EXPOSURE, ENTRY)])
        book.fake.set_price("ETH", 3000, mark=3000)
        book.account(D(10_000), D("-21.7"))
        snap, events = await book.cycle()
    (event,) = events
    assert event.kind is EventKind.RECONCILIATION
    assert event.detail is not None
    assert "-21.7 USDT of its uPnL unexplained by the positions read" in event.detail
    (item,) = snap.reconciliations
    assert item.unexplained_pnl == D("-21.7")
    assert item.difference == D("21.7")


async def test_a_contract_size_read_wrong_fails_the_venue_rather_than_value_a_wrong_size() -> None:
    def tenfold(answer: Any) -> Any:  # ccxt's contract size a tenth of OKX's position's
        for row in answer["data"]:
            row["ctVal"] = "0.01" if row["instId"] == "ETH-USDT-SWAP" else row["ctVal"]
        return answer

    async with fake_server("okx") as fake:
        fake.tamper("/api/v5/public/instruments", tenfold)
        fake.set_positions([FakePosition("ETH", D(-2), D(3000))])
        venue = exchange_venue(fake, ["trading"])
        run = daemon(Clock(), [venue], SPOT)
        (okx,) = run.books[0].venues
        try:
            with pytest.raises(VenueDataError, match="ETH/USDT:USDT size does not match"):
                await okx.fetch()
        finally:
            await run.aclose()
