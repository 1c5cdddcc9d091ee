"""The exception hierarchy of equity-daemon.

* `EquityDaemonError`
  * `ConfigError` — the configuration cannot be used; the CLI prints its lines and exits 2.
  * `StartupError` — the daemon cannot start here (port taken, history unwritable); exit 1.
  * `HistoryUnavailable` — the history database refuses a write right now; try again later.
  * `VenueError` — a venue fetch went wrong (carries `venue`).
    * `VenueUnavailable` — transient (network, timeout, rate limit): back off and retry.
    * `VenueAuthError` — permanent (bad key, missing permission, suspended account): no fast
      retry; an operator must act.
    * `VenueDataError` — the venue answered with something we cannot read.

Messages never carry secrets: venue adapters describe failures by kind and host, not by URL.
"""

from __future__ import annotations

from collections.abc import Sequence


class EquityDaemonError(Exception):
    """Base class of every error equity-daemon raises on purpose."""


class ConfigError(EquityDaemonError):
    """Raised when the configuration file or environment cannot be used.

    `problems` holds one line per problem, each starting with the field path.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class StartupError(EquityDaemonError):
    """Raised when the daemon cannot acquire what it needs to run: its port, its database."""


class HistoryUnavailable(EquityDaemonError):
    """Raised when the history database refuses a write right now: locked past the busy timeout,
    disk full, read-only, I/O error; the caller keeps the data and tries again later.

    `reason` is short and readable (SQLite's own words, e.g. "database is locked"), without paths.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"history unavailable: {reason}")


class VenueError(EquityDaemonError):
    """Raised by a venue adapter when a fetch fails."""

    def __init__(self, venue: str, reason: str) -> None:
        self.venue = venue
        self.reason = reason
        super().__init__(f"{venue}: {reason}")


class VenueUnavailable(VenueError):
    """Raised when a venue cannot be reached right now; the poller backs off and retries.

    `retry_after` is the venue's own hint, in seconds, when it sent one (an HTTP `Retry-After`
    with a 429, 418 or 503): retrying sooner only extends a rate-limit ban.
    """

    def __init__(self, venue: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(venue, reason)
        self.retry_after = retry_after


class VenueAuthError(VenueError):
    """Raised when a venue refuses our credentials: an invalid or expired key, a key without
    the permission the call needs, a suspended account.

    Permanent: no fast retry, because retrying cannot fix it and some venues ban an IP that
    keeps failing authentication; an operator must act.
    """


class VenueDataError(VenueError):
    """Raised when a venue's answer is malformed; the venue is marked failed with the reason."""
