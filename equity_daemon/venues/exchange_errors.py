"""ccxt's exceptions, and answers ccxt accepts but we must not, as the daemon's `VenueError`s.

Written once for every exchange: ccxt already sorts each exchange's HTTP statuses and error codes
into its class tree, so the class decides.

| ccxt raises                                                | daemon raises      | reason says    |
|------------------------------------------------------------|--------------------|----------------|
| `RateLimitExceeded`, `DDoSProtection` (429, 418, -1003 …)  | `VenueUnavailable` | rate limited   |
| `RequestTimeout`                                           | `VenueUnavailable` | timed out      |
| `ExchangeNotAvailable`, `OnMaintenance` (5xx, refused)     | `VenueUnavailable` | unavailable    |
| `InvalidNonce` (our clock off by more than the window)     | `VenueUnavailable` | clock rejected |
| any other `NetworkError`                                   | `VenueUnavailable` | network error  |
| `AuthenticationError`, `PermissionDenied`, `AccountSuspended` | `VenueAuthError` | auth refused |
| `BadResponse`, `NullResponse`                              | `VenueDataError`   | bad response   |
| any other `ExchangeError` (a code ccxt does not sort)      | `VenueDataError`   | exchange error |
| any other ccxt error                                       | `VenueDataError`   | ccxt error     |

A `VenueUnavailable` carries `retry_after` when the exchange sent `Retry-After`, and a request
our own ban held back (`HostBanned`, raised by the host's `RequestBudget` without sending it)
the time left of that ban.

**Which request failed.** `exchange_client` names every failed REST request on its ccxt
exception (`name_request`: method, path without the query, and the HTTP status when one came
back), and the reason ends with it: `unavailable (ExchangeNotAvailable): GET
/fapi/v1/multiAssetsMargin answered 404`. A fetch that reads several endpoints then says which
one failed, at the default log level.

**No secret reaches a message.** ccxt's own texts carry the URL (with its query string and
signature) and the response body; headers carry the API key. A reason here is built from the
ccxt class name and the exchange's numeric error code only, and the ccxt exception is not
chained (`from None`), so a logged traceback cannot show it either.

ccxt also accepts answers it should not: an HTTP 200 with an empty or cut-off body parses as an
empty balance. `check_answer` is the daemon's own check that an answer has the fields its
exchange always sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

import ccxt.async_support as ccxt

from equity_daemon.errors import VenueAuthError, VenueDataError, VenueError, VenueUnavailable

# (ccxt class, daemon class, what the reason says); the first match wins, so subclasses first
MAPPING: tuple[tuple[type[Exception], type[VenueError], str], ...] = (
    (ccxt.RateLimitExceeded, VenueUnavailable, "rate limited"),
    (ccxt.DDoSProtection, VenueUnavailable, "rate limited"),
    (ccxt.RequestTimeout, VenueUnavailable, "timed out"),
    (ccxt.ExchangeNotAvailable, VenueUnavailable, "unavailable"),  # OnMaintenance too
    (ccxt.InvalidNonce, VenueUnavailable, "clock rejected"),
    (ccxt.NetworkError, VenueUnavailable, "network error"),
    (ccxt.AuthenticationError, VenueAuthError, "auth refused"),  # PermissionDenied too
    (ccxt.AccountSuspended, VenueAuthError, "auth refused"),
    (ccxt.BadResponse, VenueDataError, "bad response"),  # NullResponse too
    (ccxt.ExchangeError, VenueDataError, "exchange error"),
    (ccxt.BaseError, VenueDataError, "ccxt error"),
)


class HostBanned(ccxt.RateLimitExceeded):  # type: ignore[misc]  # ccxt is untyped (Any)
    """Raised instead of sending a request while its exchange host's ban runs: the host answered
    418 or 429 with a `Retry-After` (Binance bans an IP for minutes, and for days when the bans
    are ignored), and every caller of the host waits it out (`exchange_budget`).

    A ccxt error, so that ccxt's own code paths (a stream's listen-key request) treat it as any
    refusal of the exchange's.
    """

    def __init__(self, exchange: str, until: datetime, seconds_left: float) -> None:
        super().__init__(f"{exchange} banned until {until:%H:%M:%S} UTC")
        self.until = until
        self.seconds_left = seconds_left


# An exchange's error code, as its JSON bodies name it: Binance/OKX `code`, Bybit `retCode`,
# OKX per-item `sCode`. Only a short integer is taken, so nothing else of the body can leak.
_CODE = re.compile(r'"(?:code|retCode|ret_code|sCode)"\s*:\s*"?(-?\d{1,8})\b')
LONGEST_RETRY_AFTER = 86_400.0  # Binance bans for up to three days; a day is enough to wait


def translate(exc: Exception, venue: str, headers: Mapping[str, str] | None = None) -> VenueError:
    """The daemon's error for a ccxt exception (see the module's table).

    Args:
        headers: the response headers of the failed request (ccxt's `last_response_headers`),
            read for `Retry-After` only.
    """
    found = next((row for row in MAPPING if isinstance(exc, row[0])), None)
    if found is None:
        raise TypeError(f"not a ccxt error: {type(exc).__name__}")
    _, daemon_class, what = found
    request = getattr(exc, REQUEST, None)
    where = "" if request is None else f": {request}"
    if isinstance(exc, HostBanned):
        reason = f"rate limited (banned until {exc.until:%H:%M:%S} UTC, not sent){where}"
        reason += f"; retry after {exc.seconds_left:.0f}s"
        return VenueUnavailable(venue, reason, exc.seconds_left)
    reason = f"{what} ({type(exc).__name__}{_code(exc)}){where}"
    if daemon_class is VenueUnavailable:
        retry_after = retry_after_seconds(headers or {})
        if retry_after is not None:
            reason += f"; retry after {retry_after:g}s"
        return VenueUnavailable(venue, reason, retry_after)
    return daemon_class(venue, reason)


@contextmanager
def exchange_errors(venue: str, exchange: Any) -> Iterator[None]:
    """Run ccxt calls inside: a ccxt exception leaves as the daemon's `VenueError`.

    `Retry-After` is read from the exchange's last response headers: with concurrent calls on
    one instance they may be another request's (one instance per account, one call at a time,
    keeps them right).
    """
    try:
        yield
    except ccxt.BaseError as exc:
        headers = getattr(exchange, "last_response_headers", None)
        raise translate(exc, venue, headers if isinstance(headers, Mapping) else None) from None


REQUEST = "equity_daemon_request"  # the attribute `name_request` sets on a ccxt exception


def name_request(exc: BaseException, method: str, path: str, status: int | None) -> None:
    """Note on a ccxt exception which request failed: `GET /api/v3/account answered 503`
    (`path` without its query, which carries the signature)."""
    answered = "" if status is None else f" answered {status}"
    setattr(exc, REQUEST, f"{method} {path}{answered}")


def error_code(exc: BaseException) -> str | None:
    """The exchange's numeric error code in a ccxt error's text (`-1125`), if it has one."""
    match = _CODE.search(str(exc))
    return match.group(1) if match else None


def _code(exc: Exception) -> str:
    code = error_code(exc)
    return "" if code is None else f", code {code}"


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), if there is one."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    try:
        # read as Decimal like every number off the wire; it leaves as seconds to sleep
        delay = Decimal(value)
    except InvalidOperation:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        wait = when - (now or datetime.now(UTC))
    else:
        if not delay.is_finite():
            return None
        capped = min(max(delay, Decimal(0)), Decimal(LONGEST_RETRY_AFTER))
        wait = timedelta(milliseconds=int(capped * 1000))
    return min(max(wait.total_seconds(), 0.0), LONGEST_RETRY_AFTER)


Path = tuple[str | int, ...]


def check_answer(venue: str, what: str, answer: Any, required: Sequence[Path]) -> None:
    """Raise `VenueDataError` unless every `required` path leads to a value in `answer`.

    A path is a sequence of dict keys and list indexes (`("result", "list", 0, "coin")`); the
    empty path requires `answer` to be a list. An HTTP 200 with an empty or cut-off body,
    which ccxt reads as an empty balance, fails here.
    """
    for path in required:
        node = answer
        if not path and not isinstance(node, list):
            raise VenueDataError(venue, f"{what}: answer is not a list")
        for step in path:
            node = _step(node, step)
            if node is None:
                where = ".".join(str(s) for s in path)
                raise VenueDataError(venue, f"{what}: answer has no {where}")


def _step(node: Any, step: str | int) -> Any:
    if isinstance(step, int):
        return node[step] if isinstance(node, list) and -len(node) <= step < len(node) else None
    return node.get(step) if isinstance(node, dict) else None
