"""Webhook delivery from the durable outbox: at least once, in order, nothing lost.

Events reach the outbox in the same transaction that records them (`History.record_cycle`), one
row per webhook target. A delivery loop per target then POSTs them oldest first:

* body: the event's JSON exactly as stored, so every retry sends the same bytes;
* headers: `X-Equity-Event-Id` (stable: receivers de-duplicate on it) and, when the target has a
  secret, `X-Equity-Signature: sha256=<hex HMAC-SHA256 of the body>`;
* a target's events are sent in the order they were committed, one at a time;
* a 2xx answer marks the row delivered; anything else (an error status, a refused connection, a
  timeout) leaves it pending and retries it after an exponential, jittered backoff capped at
  `max_backoff_seconds`. Later events wait behind it, so a receiver sees them in order;
* a permanent refusal (a 4xx other than 408 Request Timeout and 429 Too Many Requests: the
  receiver will not take these bytes, and they never change) is retried too, but after
  `DEAD_LETTER_AFTER` of them in a row the event is dead-lettered: its row is kept with its last
  error, counted in `equity_daemon_webhook_dead_letters_total`, logged (`webhook_dead_lettered`),
  and the target moves on to the next event. `equity-daemon outbox retry` sends it again.
  Transient failures (no answer, 5xx, 408, 429) are retried for as long as they last.

A history that refuses a read or a write for a while (locked, disk full) never ends a loop: it
logs the reason once (`outbox_history_unavailable`), waits with the same backoff, and tries again.

Rows survive restarts: a daemon that stops with a backlog resumes delivering it when it starts.
Rows of a target no longer configured are "orphaned": reported at start (`outbox_orphaned`, one
line per target) and left for `equity-daemon outbox list|drop`. Each loop reads the database
every time it looks, so rows the CLI changes meanwhile are seen at the loop's next wake-up.
Failures are logged by target name and status, never by URL (a URL may carry a token).
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple

import anyio
import httpx
import structlog

from equity_daemon.errors import HistoryUnavailable
from equity_daemon.history import History, PendingDelivery
from equity_daemon.settings import WebhookSettings
from equity_daemon.store import Trigger

log = structlog.get_logger()

SIGNATURE_HEADER = "X-Equity-Signature"
EVENT_ID_HEADER = "X-Equity-Event-Id"
FIRST_RETRY = 1.0
# permanent refusals in a row before an event is dead-lettered (some 15 s of backoff for a new
# event): enough to ride out a receiver's bad deploy, few enough that one poison event does not
# hold up the rest for long
DEAD_LETTER_AFTER = 5
# statuses in 4xx that say "not now" rather than "never"
TRANSIENT_4XX = frozenset({408, 429})
# seconds a target with nothing due waits before it looks again on its own: events written by
# this daemon wake it at once (`Outbox.wake`); the look is for rows another process changed
IDLE_LOOK = 60.0


def sign(secret: str, body: bytes) -> str:
    """The signature header's value; receivers recompute it over the raw body and compare."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_delay(attempts: int, cap: float, rng: random.Random) -> float:
    """Seconds before attempt `attempts + 1`: doubling from 1 s, capped, jittered to 50-100 %."""
    return min(cap, FIRST_RETRY * 2.0 ** min(attempts - 1, 30)) * rng.uniform(0.5, 1.0)


class Outcome(NamedTuple):
    """What one POST came to: `delivered`, `rejected` (an error status) or `error` (no answer).

    `permanent` marks a refusal that sending the same bytes again will not change.
    """

    result: str
    reason: str | None = None
    permanent: bool = False


def refused_for_good(status: int) -> bool:
    """Whether an error status is a permanent refusal: a 4xx other than 408 and 429."""
    return 400 <= status < 500 and status not in TRANSIENT_4XX


class WebhookClient:
    """POSTs one stored event to one target. Returns an outcome; never raises on HTTP trouble."""

    def __init__(self, target: WebhookSettings, client: httpx.AsyncClient) -> None:
        self.name = target.name
        self._url = target.url.get_secret_value()
        self._secret = None if target.secret is None else target.secret.get_secret_value()
        self._timeout = target.timeout_seconds
        self._client = client

    async def post(self, delivery: PendingDelivery) -> Outcome:
        """POST the event once."""
        headers = {"Content-Type": "application/json", EVENT_ID_HEADER: delivery.event_id}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, delivery.body)
        try:
            response = await self._client.post(
                self._url, content=delivery.body, headers=headers, timeout=self._timeout
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # the exception's text can hold the URL; its class says enough
            return Outcome("error", type(exc).__name__)
        if response.is_success:
            return Outcome("delivered")
        status = response.status_code
        return Outcome("rejected", f"HTTP {status}", refused_for_good(status))


class Outbox:
    """Runs the delivery loop of every webhook target."""

    def __init__(
        self,
        history: History,
        targets: list[WebhookSettings],
        client: httpx.AsyncClient,
        clock: Callable[[], datetime],
        on_outcome: Callable[[str, str], None],
        rng: random.Random | None = None,
        *,
        on_dead_letter: Callable[[str], None] | None = None,
    ) -> None:
        """`on_outcome(target, result)` hears every attempt, `on_dead_letter(target)` each dead
        letter (the daemon counts both in its metrics)."""
        self._history = history
        self._targets = targets
        self._client = client
        self._clock = clock
        self._on_outcome = on_outcome
        self._on_dead_letter = on_dead_letter or (lambda target: None)
        self._rng = rng or random.Random()
        self._wakeups = {target.name: Trigger() for target in targets}
        self.backlog: dict[str, int] = dict.fromkeys(self._wakeups, 0)

    def wake(self) -> None:
        """Events were written to the outbox (new ones, or ones held through a history outage):
        every target looks now instead of at its next retry or idle look."""
        for trigger in self._wakeups.values():
            trigger.pull()

    async def run(self) -> None:
        """Report orphaned rows, then deliver to every target until cancelled."""
        try:
            await self.report_orphans()
        except HistoryUnavailable as exc:  # only a report: delivery matters more
            log.warning("outbox_orphans_unknown", reason=exc.reason)
        async with anyio.create_task_group() as tg:
            for target in self._targets:
                tg.start_soon(self._deliver_forever, target)

    async def report_orphans(self) -> None:
        """One warning per target no longer configured that still has events waiting for it.

        Nothing delivers them any more: `equity-daemon outbox list` shows them, `outbox drop`
        forgets them (or the target comes back in the configuration).
        """
        configured = {target.name for target in self._targets}
        rows = await self._history.undelivered()
        orphaned = Counter(row.target for row in rows if row.state(configured) == "orphaned")
        for target, pending in sorted(orphaned.items()):
            log.warning("outbox_orphaned", target=target, pending=pending)

    async def _deliver_forever(self, target: WebhookSettings) -> None:
        client = WebhookClient(target, self._client)
        wakeup = self._wakeups[target.name]
        trouble: str | None = None  # what the history last said, logged once, not every try
        tries = 0
        while True:
            try:
                delay = await self._deliver_due(client, target.max_backoff_seconds)
            except HistoryUnavailable as exc:
                # the rows wait in the database; a sent event whose delivery could not be
                # written down is sent again (receivers de-duplicate on the event id)
                if exc.reason != trouble:
                    log.warning("outbox_history_unavailable", target=target.name, reason=exc.reason)
                trouble, tries = exc.reason, tries + 1
                delay = retry_delay(tries, target.max_backoff_seconds, self._rng)
            else:
                if trouble is not None:
                    log.info("outbox_history_available", target=target.name)
                trouble, tries = None, 0
            with anyio.move_on_after(delay):
                await wakeup.wait()

    async def _deliver_due(self, client: WebhookClient, cap: float) -> float:
        """Deliver what is due, oldest first; returns how long to wait before looking again."""
        while True:
            now = self._clock()
            self.backlog[client.name] = await self._history.outbox_backlog(client.name)
            following = await self._history.next_delivery_at(client.name)
            if following is not None and following - now > timedelta(seconds=cap):
                # no backoff is that long: the wall clock was stepped back since; due now
                now = following
            due = await self._history.due_deliveries(client.name, now, limit=1)
            if not due:
                if following is None:
                    return IDLE_LOOK
                return max(0.0, (following - now).total_seconds())
            delivery = due[0]
            outcome = await client.post(delivery)
            self._on_outcome(client.name, outcome.result)
            if outcome.result == "delivered":
                await self._history.mark_delivered(delivery.event_id, client.name, self._clock())
                log.info("webhook_delivered", target=client.name, event_id=delivery.event_id)
                continue
            attempts = delivery.attempts + 1
            reason = outcome.reason or outcome.result
            refusals = delivery.refusals + 1 if outcome.permanent else 0
            if refusals >= DEAD_LETTER_AFTER:
                await self._history.mark_dead(
                    delivery.event_id, client.name, attempts, self._clock(), reason
                )
                self._on_dead_letter(client.name)
                log.error(
                    "webhook_dead_lettered",
                    target=client.name,
                    event_id=delivery.event_id,
                    attempts=attempts,
                    reason=reason,
                )
                continue
            delay = retry_delay(attempts, cap, self._rng)
            retry_at = self._clock() + timedelta(seconds=delay)
            await self._history.mark_attempt_failed(
                delivery.event_id, client.name, attempts, retry_at, reason, refusals
            )
            log.warning(
                "webhook_failed",
                target=client.name,
                event_id=delivery.event_id,
                attempts=attempts,
                reason=reason,
                retry_in=round(delay, 1),
            )
            return delay
