"""Who may read the daemon's data over HTTP: a bearer token, or a browser session opened with it.

Without a configured token everyone may. With one, a request must carry
`Authorization: Bearer <token>` (the scheme in any case, RFC 9110 section 11.1; the token exact),
or the session cookie a browser receives from `POST /login` with the token.

The cookie never holds the token: it holds an expiry time and an HMAC-SHA256, keyed with the
token, of that time. So it lets nobody recover the token, stops working when it expires or when
the token changes, and needs no server-side state (it survives restarts). Every comparison is in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

SESSION_COOKIE = "equity_session"
SESSION_SECONDS = 7 * 24 * 3600


class Access:
    """The token check. `clock` gives Unix seconds (tests move it)."""

    def __init__(self, token: str | None, clock: Callable[[], float] = time.time) -> None:
        self._token = None if token is None else token.encode()
        self._clock = clock

    @property
    def open(self) -> bool:
        """True when no token is configured: every request may read."""
        return self._token is None

    def allows(self, authorization: str | None, session: str | None) -> bool:
        """Whether a request with this `Authorization` header and session cookie may read."""
        if self._token is None:
            return True
        return self._bearer_matches(authorization or "") or self.session_valid(session)

    def token_matches(self, candidate: str) -> bool:
        """The token typed into the login form, compared exactly and in constant time."""
        if self._token is None:
            return True
        return hmac.compare_digest(candidate.encode(), self._token)

    def new_session(self) -> str:
        """A session cookie value, valid for `SESSION_SECONDS` from now (empty with no token:
        there is nothing to open)."""
        if self._token is None:
            return ""
        expires = int(self._clock()) + SESSION_SECONDS
        return f"{expires}.{_sign(self._token, expires)}"

    def session_valid(self, value: str | None) -> bool:
        """Whether a session cookie value was made with this token and has not expired."""
        if self._token is None or not value:
            return False
        expires_text, _, signature = value.partition(".")
        if not expires_text.isdigit():
            return False
        expires = int(expires_text)
        signed = hmac.compare_digest(signature.encode(), _sign(self._token, expires).encode())
        return signed and expires > self._clock()

    def _bearer_matches(self, authorization: str) -> bool:
        # `Bearer <token>`: the scheme in any case, then one or more spaces
        scheme, _, token = authorization.partition(" ")
        token_matches = self.token_matches(token.lstrip(" "))
        return scheme.lower() == "bearer" and token_matches


def _sign(token: bytes, expires: int) -> str:
    message = f"equity-daemon session until {expires}".encode()
    return hmac.new(token, message, hashlib.sha256).hexdigest()
