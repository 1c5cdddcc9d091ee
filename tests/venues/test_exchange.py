"""The exchange venue on the fake Binance, Bybit and OKX servers: every account type's lines,
hedges and their legs, reconciliation with the exchange's own totals, outages, and a
delta-neutral book whose ETH price moves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from equity_daemon.errors import VenueAuthError, VenueDataError, VenueUnavailable
from equity_daemon.history import History
from equity_daemon.model import PositionKind, ProblemKind, VenueReport, VenueState
from equity_daemon.monitor import EventKind
from equity_daemon.runtime.poller import PollPolicy, fetch_once
from equity_daemon.runtime.supervisor import Daemon
from equity_daemon.settings import Settings
from equity_daemon.venues.exchange import MAPPINGS, ExchangeVenue
from equity_daemon.venues.fake_exchange import (
    FakeExchange,
    FakePosition,
    FakeState,
    Fault,
    Holding,
    Transfer,
    fake_exchange,
)
from tests.reports import Clock, quote, snapshot
from tests.venues.exchanges import CREDENTIALS, SECRETS, NoMetrics, with_marks

pytestmark = pytest.mark.anyio

D = Decimal
USD_PRICES = {"USDT": D(1), "USDC": D(1), "USD": D(1), "ETH": D(3000), "BTC": D(60000)}
QUOTES = (
    quote("ETH", "USDT", "3000"),
    quote("BTC", "USDT", "60000"),
    quote("USD", "USDT", "1", source="fixed"),
    quote("USDC", "USDT", "1", source="fixed"),
)
# positions: a short and a long with positive and negative uPnL, USDT- and USDC-settled
POSITIONS = [
    FakePosition("ETH", D(-2), D(3100)),  # short, +200 USDT
    FakePosition("BTC", D("0.1"), D(61000)),  # long, -100 USDT
    FakePosition("ETH", D(1), D(2900), settle="USDC"),  # long, +100 USDC
]
PNL = {"USDT": D(100), "USDC": D(100)}
# several borrowed assets with interest, and a negative balance
BORROWED = {
    "USDT": Holding(balance=D(5000), locked=D(100), borrowed=D(1000), interest=D("2.5")),
    "ETH": Holding(balance=D(3), borrowed=D("1.5"), interest=D("0.001")),
    "BTC": Holding(balance=D("-0.01")),
}
PLAIN = {"USDT": Holding(balance=D(5000), locked=D(100)), "ETH": Holding(balance=D(2))}
FUTURES = {
    "USDT": Holding(balance=D(5000), unrealized_pnl=PNL["USDT"]),
    "USDC": Holding(balance=D(1000), unrealized_pnl=PNL["USDC"]),
    "BTC": Holding(balance=D("-0.01")),  # multi-assets mode: a negative wallet
}
UNIFIED = {
    **BORROWED,
    "USDT": Holding(
        balance=D(5000), borrowed=D(1000), interest=D("2.5"), unrealized_pnl=PNL["USDT"]
    ),
    "USDC": Holding(balance=D(1000), unrealized_pnl=PNL["USDC"]),
}
ISOLATED = {
    "ETH": Holding(balance=D(3), borrowed=D("1.5"), interest=D("0.001")),
    "USDT": Holding(balance=D(2000), borrowed=D(500), interest=D("0.25")),
}
# portfolio margin: cross-margin debt, and the UM uPnL of `POSITIONS` in the USDT/USDC rows
PORTFOLIO = {
    **BORROWED,
    "USDT": Holding(
        balance=D(5000), borrowed=D(1000), interest=D("2.5"), unrealized_pnl=PNL["USDT"]
    ),
    "USDC": Holding(balance=D(300), unrealized_pnl=PNL["USDC"]),
}
# (exchange, account) -> (the fake's account name, holdings, reported total's label or None)
ACCOUNTS: dict[tuple[str, str], tuple[str, Mapping[str, Holding], str | None]] = {
    ("binance", "spot"): ("spot", PLAIN, None),
    ("binance", "cross_margin"): ("margin", BORROWED, "totalNetAssetOfBtc"),
    ("binance", "isolated_margin"): ("isolated/ETHUSDT", ISOLATED, "totalNetAssetOfBtc"),
    ("binance", "usdm"): ("futures", FUTURES, "totalMarginBalance"),
    ("binance", "portfolio_margin"): ("portfolio", PORTFOLIO, "actualEquity"),
    ("binance", "funding"): ("funding", PLAIN, None),
    ("bybit", "unified"): ("unified", UNIFIED, "totalEquity"),
    ("bybit", "funding"): ("funding", PLAIN, None),
    ("okx", "trading"): ("trading", UNIFIED, "totalEq"),
    ("okx", "funding"): ("funding", PLAIN, None),
}
WITH_POSITIONS = {
    ("binance", "usdm"),
    ("binance", "portfolio_margin"),
    ("bybit", "unified"),
    ("okx", "trading"),
}
BALANCE_PATHS = {
    "binance": "/fapi/v3/account",
    "bybit": "/v5/account/wallet-balance",
    "okx": "/api/v5/account/balance",
}
MAIN_ACCOUNT = {"binance": "usdm", "bybit": "unified", "okx": "trading"}
FAKE_ACCOUNT = {"binance": "futures", "bybit": "unified", "okx": "trading"}


@asynccontextmanager
async def venue_on(
    exchange: str, accounts: tuple[str, ...], state: FakeState | None = None
) -> AsyncIterator[tuple[FakeExchange, ExchangeVenue]]:
    async with fake_exchange(exchange, state) as fake:
        venue = ExchangeVenue(
            "cex",
            exchange,
            accounts,
            CREDENTIALS,
            Clock(),
            base_url=fake.base_url,
            request_timeout=1.0,
            rate_limit=False,
        )
        try:
            yield fake, venue
        finally:
            await venue.aclose()


def lines(report: VenueReport) -> dict[tuple[str, str, str | None], Decimal]:
    return {(p.asset.symbol, p.kind.value, p.line_id): p.amount for p in report.positions}


def net_worth(holdings: Mapping[str, Holding], *, plain: bool = False) -> Decimal:
    """What the account is worth in USDT at `USD_PRICES` (a spot or funding wallet holds its
    balance; the others are worth `Holding.equity`)."""
    return sum(
        ((h.balance if plain else h.equity) * USD_PRICES[a] for a, h in holdings.items()), D(0)
    )


@pytest.mark.parametrize(("exchange", "account"), sorted(ACCOUNTS))
async def test_every_account_type_is_worth_what_the_exchange_says(
    exchange: str, account: str
) -> None:
    fake_account, holdings, label = ACCOUNTS[exchange, account]
    async with venue_on(exchange, (account,)) as (fake, venue):
        fake.set_account(fake_account, holdings)
        if (exchange, account) in WITH_POSITIONS:
            fake.set_positions(POSITIONS)
        report = await venue.fetch()
        quotes = await with_marks(venue, report, QUOTES)
    # check-config knows each account type's total currency from the same table
    declared = MAPPINGS[exchange].TOTAL_CURRENCIES.get(account, ())
    assert {total.currency for total in report.reported} <= set(declared)
    assert bool(report.reported) == bool(declared)
    snap = snapshot(VenueState(report, report), quotes=quotes)
    expected = net_worth(holdings, plain=holdings is PLAIN)
    assert snap.equity == pytest.approx(expected, abs=D("1e-9"))
    if label is None:
        assert snap.reconciliations == ()
    else:
        (item,) = snap.reconciliations
        assert (item.account, item.label) == (account, label)
        assert item.ratio is not None
        assert abs(item.ratio) < D("1e-12")  # agrees to rounding
        if (exchange, account) in WITH_POSITIONS:  # the positions explain the exchange's uPnL
            assert item.unexplained_pnl == 0


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_borrowed_amounts_and_interest_are_debt_lines_of_their_own(exchange: str) -> None:
    account = {"binance": "cross_margin", "bybit": "unified", "okx": "trading"}[exchange]
    fake_account = {"binance": "margin", "bybit": "unified", "okx": "trading"}[exchange]
    async with venue_on(exchange, (account,)) as (fake, venue):
        fake.set_account(fake_account, BORROWED)
        found = lines(await venue.fetch())
    assert found == {
        ("USDT", "asset", None): D(5000),
        ("USDT", "debt", None): D(1000),
        ("USDT", "debt", "interest"): D("2.5"),
        ("ETH", "asset", None): D(3),
        ("ETH", "debt", None): D("1.5"),
        ("ETH", "debt", "interest"): D("0.001"),
        ("BTC", "asset", None): D("-0.01"),  # a negative balance: the calculator's debt
    }


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_a_perpetual_is_a_hedge_line_and_two_legs_that_are_its_upnl(exchange: str) -> None:
    async with venue_on(exchange, (MAIN_ACCOUNT[exchange],)) as (fake, venue):
        fake.set_positions(POSITIONS)
        report = await venue.fetch()
        quotes = await with_marks(venue, report, QUOTES)
    hedges = {p.line_id: p for p in report.positions if p.kind is PositionKind.HEDGE}
    short = next(p for key, p in hedges.items() if key and key.startswith("ETH/USDT:USDT"))
    assert short.amount == D(-2)
    details = {k: str(v) for k, v in short.details.items()}
    assert {k: D(details[k]) for k in ("contracts", "entry_price", "mark_price")} == {
        "contracts": D(2) / (D("0.1") if exchange == "okx" else 1),
        "entry_price": D(3100),
        "mark_price": D(3000),
    }
    assert D(details["unrealized_pnl"]) == 200
    assert D(details["notional"]) == 6000
    assert (details["side"], details["settle"], details["symbol"]) == (
        "short",
        "USDT",
        "ETH/USDT:USDT",
    )
    assert {"margin_mode", "contract_size", "pnl_currency"} <= set(details)
    legs = {
        (p.asset.symbol, p.line_id): p.amount
        for p in report.positions
        if p.kind is PositionKind.UNREALIZED_PNL
    }
    contract = f"{exchange}:ETH/USDT:USDT"
    assert legs[(contract, short.line_id)] == -2
    assert legs[("USDT", short.line_id)] == 6200  # 2 × 3100: sums to the uPnL at any mark
    # at the exchange's own mark, the legs are exactly the exchange's uPnL, per settle coin
    snap = snapshot(VenueState(report, report), quotes=quotes)
    assert snap.equity == snap.unrealized_pnl == sum(PNL.values())
    assert (snap.total_assets, snap.total_debt) == (D(0), D(0))  # a uPnL is neither
    assert snap.equity_by_asset[contract] == 200
    (row,) = [line for line in snap.to_json()["excluded"] if line["asset"] == "ETH"][:1]
    assert row["kind"] == "hedge"
    assert row["details"]["symbol"] in {"ETH/USDT:USDT", "ETH/USDC:USDC"}


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_a_hedge_line_carries_its_liquidation_price_and_leverage(exchange: str) -> None:
    async with venue_on(exchange, (MAIN_ACCOUNT[exchange],)) as (fake, venue):
        fake.set_positions(
            [
                FakePosition("ETH", D(-2), D(3100), leverage=5, liquidation_price=D("3512.5")),
                FakePosition("BTC", D("0.1"), D(61000), leverage=20),  # none: "0" or ""
            ]
        )
        report = await venue.fetch()
    details = {p.asset.symbol: p.details for p in report.positions if p.kind is PositionKind.HEDGE}
    assert (details["ETH"]["liquidation_price"], details["ETH"]["leverage"]) == (
        D("3512.5"),
        D(5),
    )
    assert "liquidation_price" not in details["BTC"]  # no price is not a price of 0
    assert details["BTC"]["leverage"] == D(20)


async def test_okx_position_rows_of_pos_zero_are_not_positions() -> None:
    def with_a_zero_row(answer: Any) -> Any:
        (row,) = answer["data"]
        answer["data"].append({**row, "instId": "BTC-USDT-SWAP", "pos": "0", "upl": "0"})
        return answer

    async with venue_on("okx", ("trading",)) as (fake, venue):
        fake.set_positions([FakePosition("ETH", D(-2), D(3100))])
        fake.tamper("/api/v5/account/positions", with_a_zero_row)
        report = await venue.fetch()
        raw = [row["instId"] for row in with_a_zero_row(fake.dialect.positions({}))["data"]]  # type: ignore[attr-defined]
    assert "BTC-USDT-SWAP" in raw  # the answer did list it, with `pos` "0"
    assert {p.asset.symbol for p in report.positions if p.line_id} == {
        "ETH",
        "okx:ETH/USDT:USDT",
        "USDT",
    }
    assert [p.details["symbol"] for p in report.positions if p.kind is PositionKind.HEDGE] == [
        "ETH/USDT:USDT"
    ]


async def test_binance_single_asset_mode_reports_its_total_in_usdt() -> None:
    state = FakeState(multi_assets=False)
    async with venue_on("binance", ("usdm",), state) as (fake, venue):
        fake.set_account("futures", FUTURES)
        report = await venue.fetch()
    (total,) = report.reported
    assert (total.currency, total.amount) == ("USDT", D(5100))  # USDT only


async def test_binance_futures_credits_are_a_bnfcr_line_the_book_prices_at_one_usd() -> None:
    async with venue_on("binance", ("usdm",)) as (fake, venue):
        fake.set_account("futures", {"BNFCR": Holding(balance=D(2500))})
        report = await venue.fetch()
    assert lines(report) == {("BNFCR", "asset", None): D(2500)}
    bnfcr = quote("BNFCR", "USD", "1", source="fixed")
    snap = snapshot(VenueState(report, report), quotes=(*QUOTES, bnfcr))
    assert snap.complete
    assert snap.equity == 2500
    (item,) = snap.reconciliations
    assert item.ratio == 0


async def test_binance_portfolio_margin_nets_every_wallet_and_counts_a_negative_one_once() -> None:
    cross = {
        "USDT": Holding(balance=D(5000), locked=D(100), borrowed=D(1000), interest=D("2.5")),
        "ETH": Holding(balance=D(3), borrowed=D("1.5"), interest=D("0.001")),
        "BTC": Holding(balance=D("0.2"), borrowed=D("0.05"), interest=D("0.0001")),
    }
    um = {  # (UM uPnL enters through its positions' legs, none open here)
        "USDT": Holding(balance=D(2000)),
        "USDC": Holding(balance=D(-80)),  # losses beyond the wallet
    }
    cm = {"BTC": Holding(balance=D("0.1"), unrealized_pnl=D("0.002"))}
    async with venue_on("binance", ("portfolio_margin",)) as (fake, venue):
        fake.set_account("portfolio", cross)
        fake.set_account("portfolio/um", um)
        fake.set_account("portfolio/cm", cm)
        (raw,) = [
            r
            for r in (await venue.client("portfolio_margin").papiGetBalance())
            if r["asset"] == "USDC"
        ]
        report = await venue.fetch()
    assert (raw["umWalletBalance"], raw["negativeBalance"]) == ("-80", "80")  # one loss, twice
    found = lines(report)
    assert found[("USDC", "asset", "um")] == -80
    assert ("USDC", "debt", "negative") not in found  # the negative wallet already subtracts it
    assert found[("BTC", "asset", "cm")] == D("0.1")
    assert found[("BTC", "debt", None)] == D("0.05")
    assert found[("BTC", "debt", "interest")] == D("0.0001")
    assert found[("BTC", "unrealized_pnl", "upnl")] == D("0.002")  # COIN-M: the exchange's
    snap = snapshot(VenueState(report, report), quotes=QUOTES)
    expected = net_worth(cross) + net_worth(um) + net_worth(cm)
    assert snap.equity == pytest.approx(expected, abs=D("1e-9"))
    (item,) = snap.reconciliations
    assert item.label == "actualEquity"
    assert item.ratio is not None
    assert abs(item.ratio) < D("1e-12")


# (pending deposit, credited deposit, pending withdrawal, completed withdrawal): raw codes
STATUSES = {
    "binance": ("0", "6", "4", "6"),  # 6: credited but locked is credited
    "bybit": ("2", "3", "Pending", "success"),
    "okx": ("0", "1", "1", "2"),  # 1: credited, though ccxt calls it pending
}


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_transfers_under_way_are_in_transit_and_a_credited_one_never(
    exchange: str,
) -> None:
    pending, credited, sending, sent = STATUSES[exchange]
    at = 1_795_000_000_000
    async with venue_on(exchange, ("funding",)) as (fake, venue):
        fake.set_account("funding", {"ETH": Holding(balance=D(7))})
        fake.add_deposit(Transfer("ETH", D(1), pending, "0xarriving", at, id="1"))
        fake.add_deposit(Transfer("ETH", D(7), credited, "0xcredited", at, id="2"))
        # the same transaction listed twice, once pending and once credited: credited
        fake.add_deposit(Transfer("ETH", D(2), pending, "0xtwice", at, id="3"))
        fake.add_deposit(Transfer("ETH", D(2), credited, "0xtwice", at + 1, id="4"))
        fake.add_withdrawal(Transfer("USDT", D(5), sending, "0xleaving", at, id="5"))
        fake.add_withdrawal(Transfer("USDT", D(9), sent, "0xleft", at, id="6"))
        report = await venue.fetch()
    assert lines(report) == {
        ("ETH", "asset", None): D(7),
        ("ETH", "in_transit", "deposit:0xarriving"): D(1),
        ("USDT", "in_transit", "withdrawal:0xleaving"): D(5),
    }
    snap = snapshot(VenueState(report, report), quotes=QUOTES)
    assert snap.equity == 7 * 3000  # in transit is reported beside equity, not in it
    assert {(line.asset, line.kind) for line in snap.excluded} == {
        ("ETH", PositionKind.IN_TRANSIT),
        ("USDT", PositionKind.IN_TRANSIT),
    }


# every raw status code each exchange documents, and whether it is under way (docs/exchanges.md)
DEPOSIT_CODES = {
    "binance": {"0": True, "7": True, "8": True, "1": False, "2": False, "6": False},
    "bybit": {
        "1": True,
        "2": True,
        "10011": True,
        "0": False,
        "3": False,
        "4": False,
        "10012": False,
        "70001": False,  # undocumented (a rollback of a credited deposit): not arriving
    },
    "okx": {
        **dict.fromkeys(("0", "8", "11", "12", "13", "14", "17"), True),
        **dict.fromkeys(("1", "2"), False),
    },
}
WITHDRAWAL_CODES = {
    "binance": {**dict.fromkeys("024", True), **dict.fromkeys("1356", False)},
    "bybit": {
        **dict.fromkeys(("SecurityCheck", "Pending", "MoreInformationRequired"), True),
        **dict.fromkeys(
            ("success", "BlockchainConfirmed", "CancelByUser", "Reject", "Fail", "Unknown"), False
        ),
    },
    "okx": {
        **dict.fromkeys(
            ("0", "1", "4", "5", "6", "7", "8", "9", "10", "12", "15", "16", "17", "19", "-3"),
            True,
        ),
        **dict.fromkeys(("-2", "-1", "2"), False),
    },
}


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_every_raw_transfer_status_is_in_transit_only_while_under_way(
    exchange: str,
) -> None:
    at = 1_795_000_000_000
    async with venue_on(exchange, ("funding",)) as (fake, venue):
        for i, code in enumerate(DEPOSIT_CODES[exchange]):
            fake.add_deposit(Transfer("ETH", D(1), code, f"0xdep{code}", at + i, id=f"d{i}"))
        for i, code in enumerate(WITHDRAWAL_CODES[exchange]):
            fake.add_withdrawal(Transfer("USDT", D(5), code, f"0xwd{code}", at + i, id=f"w{i}"))
        report = await venue.fetch()
    found = {p.line_id for p in report.positions if p.kind is PositionKind.IN_TRANSIT}
    assert found == {
        *(f"deposit:0xdep{c}" for c, under_way in DEPOSIT_CODES[exchange].items() if under_way),
        *(
            f"withdrawal:0xwd{c}"
            for c, under_way in WITHDRAWAL_CODES[exchange].items()
            if under_way
        ),
    }


async def test_a_binance_withdrawal_from_funding_is_in_transit_once_not_twice() -> None:
    async with venue_on("binance", ("funding",)) as (fake, venue):
        fake.set_account("funding", {"USDT": Holding(balance=D(100))})
        fake.add_withdrawal(Transfer("USDT", D(40), "4", "0xleaving", 1_795_000_000_000))
        report = await venue.fetch()
        (row,) = fake.dialect.funding({})  # type: ignore[attr-defined]
    assert row["withdrawing"] == "40"  # the funding wallet shows it too
    assert lines(report) == {
        ("USDT", "asset", None): D(100),
        ("USDT", "in_transit", "withdrawal:0xleaving"): D(40),
    }


async def test_a_malformed_transfer_history_fails_the_fetch() -> None:
    async with venue_on("okx", ("funding",)) as (fake, venue):
        fake.fail("/api/v5/asset/deposit-history", Fault.EMPTY)
        with pytest.raises(VenueDataError, match="deposit history"):
            await venue.fetch()


async def test_bybit_reads_usdc_positions_and_every_page() -> None:
    state = FakeState(page_size=1)
    async with venue_on("bybit", ("unified",), state) as (fake, venue):
        fake.set_positions(POSITIONS)
        report = await venue.fetch()
    hedges = sorted(p.details["symbol"] for p in report.positions if p.kind is PositionKind.HEDGE)
    assert hedges == ["BTC/USDT:USDT", "ETH/USDC:USDC", "ETH/USDT:USDT"]


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.RATE_LIMIT, VenueUnavailable),
        (Fault.BANNED, VenueUnavailable),
        (Fault.SERVER_ERROR, VenueUnavailable),
        (Fault.HANG, VenueUnavailable),
        (Fault.MALFORMED, VenueDataError),
        (Fault.EMPTY, VenueDataError),
        (Fault.AUTH, VenueAuthError),
    ],
)
@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_every_failure_fails_the_whole_fetch_with_its_kind(
    exchange: str, fault: Fault, error: type[Exception]
) -> None:
    accounts = (MAIN_ACCOUNT[exchange], "funding")
    async with venue_on(exchange, accounts) as (fake, venue):
        fake.set_account("funding", PLAIN)
        await venue.fetch()
        fake.fail(BALANCE_PATHS[exchange], fault, retry_after=7)
        with pytest.raises(error) as caught:
            await venue.fetch()
    text = f"{caught.value!r} {caught.value}"
    assert all(secret not in text for secret in SECRETS)
    if fault is Fault.RATE_LIMIT:
        assert isinstance(caught.value, VenueUnavailable)
        assert caught.value.retry_after == 7


async def test_a_failing_endpoint_is_named_with_its_account_at_the_default_log_level() -> None:
    async with venue_on("binance", ("usdm", "spot")) as (fake, venue):
        await venue.fetch()
        fake.fail("/fapi/v1/multiAssetsMargin", Fault.SERVER_ERROR, status=404)
        with capture_logs() as logs:
            report = await fetch_once(venue, PollPolicy(10, 5), Clock(), NoMetrics())
    reason = "usdm: unavailable (ExchangeNotAvailable): GET /fapi/v1/multiAssetsMargin answered 404"
    assert report.error == reason
    (logged,) = [entry for entry in logs if entry["event"] == "poll_failed"]
    assert (logged["log_level"], logged["venue"], logged["reason"]) == ("warning", "cex", reason)


async def test_a_position_in_a_market_ccxt_does_not_list_is_malformed() -> None:
    async with venue_on("binance", ("usdm",)) as (fake, venue):
        fake.set_positions([FakePosition("SOL", D(1), D(100))])
        with pytest.raises(VenueDataError, match="unlisted market"):
            await venue.fetch()


async def test_the_exchange_quotes_its_spot_last_price() -> None:
    async with venue_on("okx", ("funding",)) as (fake, venue):
        fake.set_price("ETH", "3123.45")
        seen = await venue.observe("ETH", "USDT")
        with pytest.raises(LookupError):
            await venue.observe("DOGE", "USDT")
    assert seen.rate == D("3123.45")
    assert venue.cache_seconds == 5.0


async def test_aclose_closes_every_ccxt_session() -> None:
    async with venue_on("bybit", ("unified", "funding")) as (_, venue):
        await venue.fetch()
        await venue.observe("ETH", "USDT")
        clients = [venue.client(key) for key in ("unified", "funding", "market")]
        await venue.aclose()
    assert all(client.session is None or client.session.closed for client in clients)
    assert "CANARY" not in repr(venue)


# --- the real daemon's cycle ---------------------------------------------------------------


def exchange_venue(fake: FakeExchange, accounts: list[str], **extra: Any) -> dict[str, Any]:
    key, secret, password = SECRETS
    venue: dict[str, Any] = {
        "kind": fake.name,
        "name": "cex",
        "api_key": key,
        "secret": secret,
        "accounts": accounts,
        "base_url": fake.base_url,
        "rate_limit": False,
        "interval_seconds": 10,
        "timeout_seconds": 2,
        **extra,
    }
    if fake.name == "okx":
        venue["password"] = password
    return venue


def daemon(
    clock: Clock,
    venues: list[dict[str, Any]],
    prices: list[dict[str, Any]],
    markets: dict[str, Any] | None = None,
    **book: Any,
) -> Daemon:
    return Daemon(book_settings(venues, prices, markets, **book), clock)


def book_settings(
    venues: list[dict[str, Any]],
    prices: list[dict[str, Any]],
    markets: dict[str, Any] | None = None,
    **book: Any,
) -> Settings:
    """One book, `basis` (USDT unless `book` says otherwise), of these venues and prices, and
    the daemon's `markets`."""
    return Settings.model_validate(
        {
            "interval_seconds": 10,
            "http": {"port": 0},
            "markets": markets or {},
            "books": {
                "basis": {
                    "share_class": "USDT",
                    "venues": venues,
                    "prices": prices,
                    "reconciliation_tolerance": "0.001",
                    **book,
                }
            },
        }
    )


FIXED_USD: list[dict[str, Any]] = [
    {"base": "USD", "quote": "USDT", "fixed": "1"},
    {"base": "USDC", "quote": "USDT", "fixed": "1"},
]


# a 429 or 418 with Retry-After bans the whole host, its price requests included
BANS = (Fault.RATE_LIMIT, Fault.BANNED)


@pytest.mark.parametrize("fault", list(Fault))
@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_an_outage_never_lowers_equity_nor_fires_a_threshold(
    tmp_path: Path, exchange: str, fault: Fault
) -> None:
    clock = Clock()
    async with fake_exchange(exchange) as fake:
        fake.set_account(FAKE_ACCOUNT[exchange], FUTURES)
        fake.set_positions(POSITIONS)
        prices: list[dict[str, Any]] = [
            {"base": "ETH", "quote": "USDT", "sources": ["cex"]},
            *FIXED_USD,
        ]
        prices.append({"base": "BTC", "quote": "USDT", "sources": ["cex"]})
        run = daemon(clock, [exchange_venue(fake, [MAIN_ACCOUNT[exchange]])], prices)
        history = await History.open(tmp_path / "h.sqlite3")
        try:
            await run.fetch_all_once()
            with capture_logs():
                await run.cycle(history)
            before = run.latest()
            assert before is not None
            assert before.complete
            fake.fail(BALANCE_PATHS[exchange], fault, times=3, retry_after=30)
            for _ in range(2):
                clock.now += timedelta(seconds=20)
                with capture_logs():
                    await run.fetch_all_once()
                    events = await run.cycle(history)
                assert not [e for e in events if e.kind is EventKind.THRESHOLD]
                after = run.latest()
                assert after is not None
                assert after.equity == before.equity
                if fault in BANS:  # the host's tickers wait out the ban too: stale, named
                    assert {p.kind for p in after.problems} == {ProblemKind.STALE_PRICE}
                else:  # one outage within the max age is not an outage
                    assert after.complete
                (summary,) = after.venues
                assert summary.status == "failing"
        finally:
            await history.aclose()
            await run.aclose()


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_a_refused_key_raises_one_venue_refused_event_and_its_end_when_it_reads_again(
    tmp_path: Path, exchange: str
) -> None:
    clock = Clock()
    async with fake_exchange(exchange) as fake:
        fake.set_account(FAKE_ACCOUNT[exchange], {"USDT": Holding(balance=D(5000))})
        prices = [{"base": "ETH", "quote": "USDT", "sources": ["cex"]}, *FIXED_USD]
        hook = {"name": "ops", "url": "http://127.0.0.1:9/hook"}  # never called here
        venue = exchange_venue(fake, [MAIN_ACCOUNT[exchange]])
        run = daemon(clock, [venue], prices, webhooks=[hook])
        history = await History.open(tmp_path / "h.sqlite3")
        kinds: list[list[EventKind]] = []
        try:
            await run.fetch_all_once()
            with capture_logs():
                await run.cycle(history)
            fake.fail(BALANCE_PATHS[exchange], Fault.AUTH, times=4)  # the key was revoked
            for _ in range(5):  # four refused fetches, then the key works again
                clock.now += timedelta(seconds=20)
                with capture_logs():
                    await run.fetch_all_once()
                    kinds.append([e.kind for e in await run.cycle(history)])
            stored = await history.events()
            outbox = await history.due_deliveries("ops", clock.now + timedelta(days=1), 10)
        finally:
            await history.aclose()
            await run.aclose()
    assert kinds == [[EventKind.VENUE_REFUSED], [], [], [], [EventKind.VENUE_RESTORED]]
    refused, restored = stored
    assert (refused["kind"], refused["venue"], restored["kind"]) == (
        "venue_refused",
        "cex",
        "venue_restored",
    )
    assert refused["detail"].startswith("cex refused our key or a permission: ")
    assert refused["snapshot"]["complete"]  # within the max age: nothing else to say yet
    assert not any(secret in repr(stored) for secret in SECRETS)
    # queued for the webhook in the same transaction
    assert [row.event_id for row in outbox] == [refused["id"], restored["id"]]


def coin_off(rows_at: tuple[str | int, ...], coin_key: str, field: str) -> Any:
    """An edit of a balance answer: its USDT row's `field` 2 % higher, its total unchanged."""

    def edit(answer: Any) -> Any:
        node = answer
        for key in rows_at:
            node = node[key]
        for row in node:
            if row[coin_key] == "USDT":
                row[field] = str(Decimal(row[field]) * D("1.02"))
        return answer

    return edit


# (exchange, account, the fake's account, balance path, the edit of its answer)
INCONSISTENT = [
    (
        "bybit",
        "unified",
        "unified",
        BALANCE_PATHS["bybit"],
        coin_off(("result", "list", 0, "coin"), "coin", "walletBalance"),
    ),
    (
        "okx",
        "trading",
        "trading",
        BALANCE_PATHS["okx"],
        coin_off(("data", 0, "details"), "ccy", "cashBal"),
    ),
    (
        "binance",
        "usdm",
        "futures",
        BALANCE_PATHS["binance"],
        coin_off(("assets",), "asset", "walletBalance"),
    ),
    (
        "binance",
        "cross_margin",
        "margin",
        "/sapi/v1/margin/account",
        coin_off(("userAssets",), "asset", "free"),
    ),
]


@pytest.mark.parametrize(
    ("exchange", "account", "fake_account", "path", "edit"),
    INCONSISTENT,
    ids=[f"{e}-{a}" for e, a, *_ in INCONSISTENT],
)
async def test_a_coin_balance_off_by_two_percent_is_flagged_by_reconciliation(
    tmp_path: Path, exchange: str, account: str, fake_account: str, path: str, edit: Any
) -> None:
    clock = Clock()
    async with fake_exchange(exchange) as fake:
        # a leveraged short whose mark lags the price: the positions explain the exchange's
        # uPnL at its marks, the coin's 2 % (200 USDT) they do not
        fake.set_account(fake_account, {"USDT": Holding(balance=D(10000), unrealized_pnl=D(-100))})
        fake.set_positions([FakePosition("ETH", D(-20), D(3000))])
        fake.set_price("ETH", 3050, mark=3005)
        fake.tamper(path, edit)
        prices: list[dict[str, Any]] = [
            {"base": "ETH", "quote": "USDT", "sources": ["cex"]},
            {"base": "BTC", "quote": "USDT", "sources": ["cex"]},
            *FIXED_USD,
        ]
        run = daemon(clock, [exchange_venue(fake, [account])], prices)
        history = await History.open(tmp_path / "h.sqlite3")
        try:
            await run.fetch_all_once()
            with capture_logs():
                events = await run.cycle(history)
        finally:
            await history.aclose()
            await run.aclose()
    snap = run.latest()
    assert snap is not None
    (item,) = snap.reconciliations
    assert item.ratio is not None
    assert item.reported is not None
    expected = D(200) / item.reported  # of the total with its uPnL: 10,000 or 9,900
    assert abs(item.ratio - expected) < D("0.0001"), item
    assert item.unexplained_pnl in (None, 0)  # the coin's 200, not the positions
    assert [e.kind for e in events] == [EventKind.RECONCILIATION]
    assert run.instruments.registry.get_sample_value(
        "equity_daemon_reconciliation_difference_ratio",
        {"book": "basis", "venue": "cex", "account": account},
    ) == pytest.approx(float(expected), abs=1e-4)


WALLET = """
[[positions]]
account = "cold"
asset = "wstETH"
amount = "10"

[[quotes]]
base = "wstETH"
quote = "stETH"
rate = "1.2"

[[quotes]]
base = "stETH"
quote = "ETH"
rate = "0.999"
"""


async def test_the_running_daemon_closes_every_ccxt_session_when_it_stops(tmp_path: Path) -> None:
    async with fake_exchange("okx") as fake:
        fake.set_account("trading", PLAIN)
        prices = [{"base": "ETH", "quote": "USDT", "sources": ["cex"]}, *FIXED_USD]
        run = daemon(Clock(), [exchange_venue(fake, ["trading"])], prices)
        (venue,) = run.books[0].venues
        assert isinstance(venue, ExchangeVenue)
        history = await History.open(tmp_path / "h.sqlite3")
        try:
            with capture_logs():
                async with anyio.create_task_group() as tg:
                    await tg.start(partial(run.run, history, handle_signals=False))
                    clients = [venue.client(key) for key in ("trading", "market")]
                    assert all(client.session is not None for client in clients)
                    tg.cancel_scope.cancel()
        finally:
            await history.aclose()
    assert all(client.session is None or client.session.closed for client in clients)
    snap = run.latest()
    assert snap is not None
    assert snap.complete
    assert snap.equity == 5000 + 2 * 3000


async def test_portfolio_margin_um_positions_are_hedges_and_legs_from_the_papi() -> None:
    async with venue_on("binance", ("portfolio_margin",)) as (fake, venue):
        fake.set_account("portfolio", PORTFOLIO)
        fake.set_positions(POSITIONS)
        report = await venue.fetch()
    hedges = {p.line_id: p.amount for p in report.positions if p.kind is PositionKind.HEDGE}
    assert hedges == {
        "ETH/USDT:USDT:BOTH": -2,
        "BTC/USDT:USDT:BOTH": D("0.1"),
        "ETH/USDC:USDC:BOTH": 1,
    }
    found = lines(report)
    assert found[("USDT", "unrealized_pnl", "ETH/USDT:USDT:BOTH")] == 6200  # 2 × 3100
    assert found[("binance:ETH/USDT:USDT", "unrealized_pnl", "ETH/USDT:USDT:BOTH")] == -2
    # the UM uPnL is in the legs, never also a line of the exchange's own figure
    assert ("USDT", "unrealized_pnl", "upnl") not in found
    assert fake.calls("/papi/v1/um/positionRisk")
    assert not fake.calls("/fapi/v3/positionRisk")
