"""Every way an exchange fails, through ccxt, comes out as the daemon's error, with no secret."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import pytest
from structlog.testing import capture_logs

from equity_daemon.errors import VenueAuthError, VenueDataError, VenueError, VenueUnavailable
from equity_daemon.model import VenueReport
from equity_daemon.runtime.poller import PollPolicy, fetch_once
from equity_daemon.venues.exchange_client import BALANCES, fetch_balance, fetch_positions
from equity_daemon.venues.exchange_errors import (
    LONGEST_RETRY_AFTER,
    check_answer,
    exchange_errors,
    retry_after_seconds,
    translate,
)
from equity_daemon.venues.fake_exchange import Fault, Holding
from tests.venues.exchanges import EXCHANGES, SECRETS, NoMetrics, connected

pytestmark = pytest.mark.anyio

# the balance each exchange's failure tests fetch, and the path that answers it
ACCOUNT = {"binance": "spot", "bybit": "unified", "okx": "trading"}
BALANCE_PATH = {
    "binance": "/api/v3/account",
    "bybit": "/v5/account/wallet-balance",
    "okx": "/api/v5/account/balance",
}
POSITIONS_PATH = {
    "binance": "/fapi/v3/positionRisk",
    "bybit": "/v5/position/list",
    "okx": "/api/v5/account/positions",
}

# (fault, daemon error, reason prefix)
FAULTS = [
    (Fault.RATE_LIMIT, VenueUnavailable, "rate limited"),
    (Fault.BANNED, VenueUnavailable, "rate limited"),
    (Fault.SERVER_ERROR, VenueUnavailable, "unavailable"),
    (Fault.HANG, VenueUnavailable, "timed out"),
    (Fault.MALFORMED, VenueDataError, "spot balance: answer"),
    (Fault.EMPTY, VenueDataError, "spot balance: answer"),
    (Fault.AUTH, VenueAuthError, "auth refused"),
]


async def failing_balance(exchange: str, fault: Fault, **options: Any) -> VenueError:
    async with connected(exchange, request_timeout=0.5) as (fake, client):
        await client.load_markets()
        fake.set_holding(ACCOUNT[exchange], "USDT", Holding(balance=Decimal(1)))
        fake.fail(BALANCE_PATH[exchange], fault, **options)
        with pytest.raises(VenueError) as caught:
            await fetch_balance(client, "cex", ACCOUNT[exchange])
        # the fault was used up: the next fetch succeeds
        assert (await fetch_balance(client, "cex", ACCOUNT[exchange]))["USDT"]["total"] == 1
    return caught.value


@pytest.mark.parametrize("exchange", EXCHANGES)
@pytest.mark.parametrize(("fault", "error", "reason"), FAULTS, ids=[f[0].value for f in FAULTS])
async def test_each_failure_maps_to_the_daemons_error(
    exchange: str, fault: Fault, error: type[VenueError], reason: str
) -> None:
    got = await failing_balance(exchange, fault)
    assert type(got) is error
    assert got.venue == "cex"
    assert got.reason.startswith(reason.replace("spot", ACCOUNT[exchange]))
    assert "http" not in got.reason
    assert not any(secret in str(got) for secret in SECRETS)


@pytest.mark.parametrize("exchange", EXCHANGES)
@pytest.mark.parametrize("fault", [Fault.RATE_LIMIT, Fault.BANNED])
async def test_a_rate_limit_carries_the_exchanges_retry_after(exchange: str, fault: Fault) -> None:
    got = await failing_balance(exchange, fault, retry_after=7)
    assert isinstance(got, VenueUnavailable)
    assert got.retry_after == 7
    assert got.reason.endswith("; retry after 7s")


@pytest.mark.parametrize(
    ("exchange", "code"), [("binance", "-1003"), ("bybit", "10006"), ("okx", "50011")]
)
async def test_a_reason_names_the_class_and_the_exchanges_code(exchange: str, code: str) -> None:
    got = await failing_balance(exchange, Fault.RATE_LIMIT)
    assert isinstance(got, VenueUnavailable)
    assert got.retry_after is None
    assert code in got.reason


@pytest.mark.parametrize(
    ("exchange", "reason"),
    [
        ("binance", "auth refused (AuthenticationError, code -2015)"),
        ("bybit", "auth refused (AuthenticationError, code 10003)"),
        ("okx", "auth refused (AuthenticationError, code 50111)"),
    ],
)
async def test_an_auth_failure_is_permanent_and_named(exchange: str, reason: str) -> None:
    got = await failing_balance(exchange, Fault.AUTH)
    assert isinstance(got, VenueAuthError)
    assert got.reason == f"{reason}: GET {BALANCE_PATH[exchange]} answered 401"


async def test_a_server_error_of_any_5xx_is_unavailable() -> None:
    for status in (500, 502, 504):
        got = await failing_balance("binance", Fault.SERVER_ERROR, status=status)
        assert isinstance(got, VenueUnavailable), status


@pytest.mark.parametrize("exchange", EXCHANGES)
@pytest.mark.parametrize("fault", [Fault.EMPTY, Fault.MALFORMED])
async def test_an_empty_or_cut_positions_answer_is_not_no_positions(
    exchange: str, fault: Fault
) -> None:
    async with connected(exchange) as (fake, client):
        await client.load_markets()
        fake.fail(POSITIONS_PATH[exchange], fault)
        with pytest.raises(VenueDataError, match="positions: answer"):
            await fetch_positions(client, "cex", {"paginate": False})


async def test_ccxt_itself_reads_an_empty_200_as_an_empty_balance() -> None:
    """Why `check_answer` exists: without it the account would read as emptied."""
    async with connected("binance") as (fake, client):
        await client.load_markets()
        fake.fail("/api/v3/account", Fault.EMPTY)
        balance = await client.fetch_balance()
    assert balance["total"] == {}


async def test_the_canary_key_never_reaches_a_message_or_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ccxt's own exception texts carry the signed URL; the daemon's never do."""
    caplog.set_level(logging.DEBUG)
    raw: list[str] = []
    mapped: list[str] = []
    with capture_logs() as logs:
        for exchange in EXCHANGES:
            async with connected(exchange, request_timeout=0.5) as (fake, client):
                await client.load_markets()
                for fault, _, _ in FAULTS:
                    fake.fail(BALANCE_PATH[exchange], fault)
                    try:
                        await client.fetch_balance(dict(_params(exchange)))
                    except ccxt.BaseError as exc:
                        raw.append(str(exc))
                    fake.fail(BALANCE_PATH[exchange], fault)
                    venue = _BalanceVenue(client, exchange)
                    report = await fetch_once(venue, POLICY, _Clock(), NoMetrics())
                    assert report.error is not None
                    mapped.append(report.error)
    assert any("signature=" in text for text in raw)  # what would have leaked
    assert len(mapped) == len(EXCHANGES) * len(FAULTS)
    lines = [str(entry) for entry in logs] + [record.getMessage() for record in caplog.records]
    for text in mapped + lines:
        assert not any(secret in text for secret in SECRETS), text
        assert "signature" not in text.lower()
        assert "127.0.0.1" not in text


def _params(exchange: str) -> dict[str, Any]:
    return dict(BALANCES[exchange][ACCOUNT[exchange]].params)


POLICY = PollPolicy(interval=1.0, timeout=5.0)


class _Clock:
    def __call__(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return 0.0


class _BalanceVenue:
    """The smallest venue over `fetch_balance`: enough for the poller to log its failures."""

    name = "cex"

    def __init__(self, client: Any, exchange: str) -> None:
        self._client = client
        self._exchange = exchange

    async def fetch(self) -> VenueReport:
        await fetch_balance(self._client, self.name, ACCOUNT[self._exchange])
        return VenueReport(self.name, datetime.now(UTC))


# -- translate, without a server ------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "error", "reason"),
    [
        (ccxt.RateLimitExceeded("x"), VenueUnavailable, "rate limited (RateLimitExceeded)"),
        (ccxt.DDoSProtection("x"), VenueUnavailable, "rate limited (DDoSProtection)"),
        (ccxt.RequestTimeout("x"), VenueUnavailable, "timed out (RequestTimeout)"),
        (ccxt.OnMaintenance("x"), VenueUnavailable, "unavailable (OnMaintenance)"),
        (ccxt.ExchangeNotAvailable("x"), VenueUnavailable, "unavailable (ExchangeNotAvailable)"),
        (ccxt.InvalidNonce("x"), VenueUnavailable, "clock rejected (InvalidNonce)"),
        (ccxt.NetworkError("x"), VenueUnavailable, "network error (NetworkError)"),
        (ccxt.AuthenticationError("x"), VenueAuthError, "auth refused (AuthenticationError)"),
        (ccxt.PermissionDenied("x"), VenueAuthError, "auth refused (PermissionDenied)"),
        (ccxt.AccountNotEnabled("x"), VenueAuthError, "auth refused (AccountNotEnabled)"),
        (ccxt.AccountSuspended("x"), VenueAuthError, "auth refused (AccountSuspended)"),
        (ccxt.NullResponse("x"), VenueDataError, "bad response (NullResponse)"),
        (ccxt.BadResponse("x"), VenueDataError, "bad response (BadResponse)"),
        (ccxt.BadSymbol("x"), VenueDataError, "exchange error (BadSymbol)"),
        (ccxt.ExchangeError("x"), VenueDataError, "exchange error (ExchangeError)"),
        (ccxt.CancelPending("x"), VenueDataError, "ccxt error (CancelPending)"),
    ],
)
def test_translate_follows_the_table(exc: Exception, error: type[VenueError], reason: str) -> None:
    got = translate(exc, "cex")
    assert (type(got), got.venue, got.reason) == (error, "cex", reason)


def test_only_a_short_numeric_code_is_taken_from_a_ccxt_text() -> None:
    text = (
        "binance GET https://api.binance.com/api/v3/account?signature=abc 401 "
        '{"code":-2015,"msg":"Invalid API-key CANARYKEY7f3a9"}'
    )
    got = translate(ccxt.AuthenticationError(text), "cex")
    assert got.reason == "auth refused (AuthenticationError, code -2015)"
    odd = translate(ccxt.ExchangeError('okx {"code":"abc-secret"}'), "cex")
    assert odd.reason == "exchange error (ExchangeError)"


def test_translate_refuses_what_is_not_a_ccxt_error() -> None:
    with pytest.raises(TypeError, match="not a ccxt error: KeyError"):
        translate(KeyError("x"), "cex")


def test_the_ccxt_exception_is_not_chained() -> None:
    with pytest.raises(VenueUnavailable) as caught, exchange_errors("cex", object()):
        raise ccxt.RequestTimeout("binance GET https://host/?signature=abc")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_other_exceptions_pass_through_unchanged() -> None:
    with pytest.raises(KeyError), exchange_errors("cex", object()):
        raise KeyError("bug")


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"Retry-After": "Wed, 25 Nov 2026 12:00:30 GMT"}, 30.0),
        ({"Retry-After": "Wed, 25 Nov 2026 11:00:00 GMT"}, 0.0),
        ({"Retry-After": "-5"}, 0.0),
        ({"Retry-After": "999999999"}, LONGEST_RETRY_AFTER),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "Wed, 25 Nov 2026 12:00:30"}, None),  # no zone: not a real HTTP date
        ({}, None),
    ],
)
def test_retry_after_reads_seconds_and_dates(
    headers: dict[str, str], seconds: float | None
) -> None:
    assert retry_after_seconds(headers, NOW) == seconds


@pytest.mark.parametrize(
    ("answer", "required", "problem"),
    [
        ("", ((),), "answer is not a list"),
        ({"assets": []}, ((),), "answer is not a list"),
        ("", (("balances",),), "answer has no balances"),
        ({"result": {"list": []}}, (("result", "list", 0, "coin"),), "no result.list.0.coin"),
        ({"data": [{}]}, (("data", 0, "details"),), "answer has no data.0.details"),
        ({"data": {"0": 1}}, (("data", 0),), "answer has no data.0"),
        ({"balances": None}, (("balances",),), "answer has no balances"),
    ],
)
def test_check_answer_names_the_missing_field(
    answer: Any, required: tuple[tuple[str | int, ...], ...], problem: str
) -> None:
    with pytest.raises(VenueDataError, match=problem):
        check_answer("cex", "spot balance", answer, required)


def test_check_answer_accepts_empty_lists_that_are_there() -> None:
    check_answer("cex", "funding", [], ((),))
    check_answer("cex", "spot", {"balances": [], "updateTime": 0}, (("balances",), ("updateTime",)))
