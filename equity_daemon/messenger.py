"""Apprise destinations: each event as a short message, from the durable outbox.

An `AppriseChannel` is one outbox target, as a webhook is: the outbox hands it one stored event
at a time, in commit order, and retries, dead-letters and counts it the same way (`notify.py`).
The channel turns the event into its message (`message.py`) and sends it with Apprise.

* Apprise is blocking: `notify()` runs on a worker thread (`anyio.to_thread.run_sync`, at most
  `APPRISE_THREADS` at once for the whole daemon), never on the event loop. It is given the
  destination's `timeout_seconds` as its own deadline; a call that still has not returned
  `GRACE` seconds later is left to finish on its thread and counted as an error.
* Apprise reports failure by its result, not by raising: anything but success is a failed try,
  retried with the outbox's backoff. It cannot tell a revoked token from an outage, so every
  failure counts towards the destination's `dead_letter_after_attempts`.
* At least once: a message whose answer was lost (a timeout after the service took it) is sent
  again, with the same text and event id. Chat services have no idempotency key: a person may,
  rarely, read a message twice.
* An Apprise URL carries the service's token. It is never logged, never in a metric label or an
  exception's text: a failure is described by Apprise's status alone, and Apprise's own log
  records (its plugins log request URLs at debug level) reach no handler: its logger does not
  propagate. A destination is named by its configured `name` everywhere.
"""

from __future__ import annotations

import json
import logging
from functools import partial

import anyio
import structlog
from apprise import Apprise, AppriseAsset, AppriseResultStatus, NotifyFormat, PersistentStoreMode

from equity_daemon.history import PendingDelivery
from equity_daemon.message import Message, message_for
from equity_daemon.notify import Outcome
from equity_daemon.settings import AppriseSettings

log = structlog.get_logger()

# worker threads for every destination together: a message takes a second or two
APPRISE_THREADS = 4
# seconds past Apprise's own deadline before the call is given up on (its thread finishes alone)
GRACE = 5.0


def apprise_accepts(url: str) -> bool:
    """Whether `url` is exactly one Apprise URL of a service Apprise supports."""
    return _load(url) is not None


def _load(url: str) -> Apprise | None:
    _quiet_apprise()
    # nothing on disk: the daemon writes only its history (Telegram's chat lookup stays in memory)
    loaded = Apprise(asset=AppriseAsset(storage_mode=PersistentStoreMode.MEMORY))
    if not loaded.add(url) or len(loaded) != 1:
        return None
    return loaded


def _quiet_apprise() -> None:
    """Keep Apprise's log records (and requests', through urllib3) out of every log.

    Apprise's plugins log the URLs they call, token included, at debug level; a process that
    embeds the daemon and logs at that level would write them down. Its records stop at its own
    logger (Apprise gives it a `NullHandler`). urllib3 gets one too, so that Python's last-resort
    handler never prints one of its warnings (they can quote a URL) on our stderr.
    """
    logging.getLogger("apprise").propagate = False
    urllib3 = logging.getLogger("urllib3")
    if not urllib3.handlers:
        urllib3.addHandler(logging.NullHandler())


class AppriseChannel:
    """Sends stored events to one Apprise destination. Returns an outcome; never raises."""

    def __init__(self, destination: AppriseSettings, limiter: anyio.CapacityLimiter) -> None:
        """Raises:
        ValueError: the URL is not one Apprise can use (settings validation checks it first).
        """
        self.name = destination.name
        self.max_backoff = destination.max_backoff_seconds
        self.dead_letter_after = destination.dead_letter_after_attempts
        self._timeout = destination.timeout_seconds
        self._limiter = limiter
        loaded = _load(destination.url.get_secret_value())
        if loaded is None:
            raise ValueError(f"apprise destination {self.name!r}: not a usable Apprise URL")
        self._apprise = loaded

    async def send(self, delivery: PendingDelivery) -> Outcome:
        """Send the event's message once."""
        try:
            message = message_for(json.loads(delivery.body))
        except Exception as exc:  # a bug here must cost this message, not the delivery loop
            log.error(
                "message_unwritable", target=self.name, event_id=delivery.event_id, exc_info=exc
            )
            return Outcome("error", f"message failed: {type(exc).__name__}", permanent=True)
        try:
            with anyio.move_on_after(self._timeout + GRACE):
                status = await anyio.to_thread.run_sync(
                    partial(self._notify, message), limiter=self._limiter, abandon_on_cancel=True
                )
                return outcome_of(status)
        except Exception as exc:  # Apprise promises not to raise; its text may hold the URL
            return Outcome("error", f"apprise raised {type(exc).__name__}", permanent=True)
        return Outcome("error", "apprise timeout", permanent=True)

    def _notify(self, message: Message) -> AppriseResultStatus:
        result = self._apprise.notify(
            body=message.body,
            title=message.title,
            notify_type=message.severity,
            body_format=NotifyFormat.TEXT,
            timeout=self._timeout,
        )
        return result.status


def outcome_of(status: AppriseResultStatus) -> Outcome:
    """What Apprise's status of one call comes to; every failure counts towards a dead letter."""
    if status is AppriseResultStatus.SUCCESS:
        return Outcome("delivered")
    if status is AppriseResultStatus.TIMEOUT:
        return Outcome("error", "apprise timeout", permanent=True)
    return Outcome("rejected", f"apprise {status.name.lower()}", permanent=True)
