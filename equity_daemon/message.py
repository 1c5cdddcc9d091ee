"""The short message a person reads for an event (Slack, Telegram, e-mail …): pure.

It is made from the event as stored in the outbox (`Event.to_json`), so every retry of an event
says the same thing, and a message sent after a restart says what the first try would have.

| kind             | title                                                  | severity |
|------------------|--------------------------------------------------------|----------|
| `threshold`      | `basis: equity −0.42 % to 1,234,567.89 USDT`            | warning  |
| `incomplete`     | `basis: incomplete, equity unknown`                    | warning  |
| `recovered`      | `basis: complete again, equity 1,234,567.89 USDT`       | success  |
| `reconciliation` | `basis: binance/spot is off its venue's own total`     | warning  |
| `venue_refused`  | `basis: binance refused our key`                       | failure  |
| `venue_restored` | `basis: binance reads again`                           | success  |

The body gives the equity, the reference and the change, why the book is incomplete and why
its equity is unknown, what the notice is about, the time and the event id (receivers of both a
webhook and a message can match them). An unknown equity reads `unknown`, never 0. Figures are
rounded for reading (2 places for USDT, 6 for ETH, as `once` prints them); the webhook's JSON
keeps every digit. `severity` is one of Apprise's notification types (info, success, warning,
failure): services that show one colour or icon per type use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from equity_daemon.render import figure

# an incomplete book lists at most this many problems; the rest are counted
PROBLEMS_SHOWN = 8
MINUS = "−"  # U+2212: reads as a minus in every chat font, unlike a hyphen
SEVERITY = {
    "threshold": "warning",
    "incomplete": "warning",
    "recovered": "success",
    "reconciliation": "warning",
    "venue_refused": "failure",
    "venue_restored": "success",
}


@dataclass(frozen=True, slots=True)
class Message:
    """What a person is told: a one-line title, a few lines of body, and how bad it is."""

    title: str
    body: str
    severity: str


def message_for(event: Mapping[str, Any]) -> Message:
    """The message for one stored event (`Event.to_json()`, as the outbox holds it)."""
    kind = str(event["kind"])
    book = str(event["book"])
    snapshot: Mapping[str, Any] = event.get("snapshot") or {}
    unit = str(snapshot.get("share_class", ""))
    return Message(
        title=f"{book}: {_headline(kind, event, unit)}",
        body="\n".join(_body(kind, event, snapshot, unit)),
        severity=SEVERITY.get(kind, "info"),
    )


def _headline(kind: str, event: Mapping[str, Any], unit: str) -> str:
    equity = amount(event.get("equity"), unit)
    match kind:
        case "threshold":
            move = _percent(event.get("relative_change")) or _change(event.get("change"), unit)
            return f"equity {move} to {equity}"
        case "incomplete" if event.get("equity") is None:
            return "incomplete, equity unknown"
        case "incomplete":
            return f"incomplete, best estimate {equity}"
        case "recovered":
            return f"complete again, equity {equity}"
        case "reconciliation":
            return f"{_about(event)} is off its venue's own total"
        case "venue_refused":
            return f"{event.get('venue')} refused our key"
        case "venue_restored":
            return f"{event.get('venue')} reads again"
    return kind.replace("_", " ")


def amount(value: object, unit: str) -> str:
    """`1,234,567.89 USDT`; `unknown` for a figure nobody knows (JSON null), never 0."""
    if value is None:
        return "unknown"
    return f"{_signed(figure(Decimal(str(value)), _places(unit)))} {unit}".rstrip()


def _places(unit: str) -> int:
    return 2 if unit == "USDT" else 6


def _signed(text: str) -> str:
    return MINUS + text[1:] if text.startswith("-") else text


def _change(value: object, unit: str) -> str:
    text = amount(value, unit)
    return text if text.startswith((MINUS, "unknown")) else "+" + text


def _percent(ratio: object) -> str | None:
    """`−0.42 %` from a relative change (a ratio); None where there is none (zero reference)."""
    if ratio is None:
        return None
    percent = Decimal(str(ratio)) * 100
    places = 2 if abs(percent) >= Decimal("0.01") or percent == 0 else 4
    text = _signed(f"{percent:,.{places}f}")
    return f"{text if text.startswith(MINUS) else '+' + text} %"


def _about(event: Mapping[str, Any]) -> str:
    """The account a reconciliation notice is about (its detail reads `venue/account: …`)."""
    detail = str(event.get("detail") or "")
    account, found, _ = detail.partition(": ")
    return account if found else "an account"


def _body(kind: str, event: Mapping[str, Any], snapshot: Mapping[str, Any], unit: str) -> list[str]:
    lines = [f"Equity: {amount(event.get('equity'), unit)}"]
    lines += [f"  unknown: {reason}" for reason in snapshot.get("equity_unknown_because") or ()]
    if event.get("reference") is not None:
        lines.append(f"Reference (last alert): {amount(event['reference'], unit)}")
    if event.get("change") is not None:
        percent = _percent(event.get("relative_change"))
        change = _change(event["change"], unit)
        lines.append(f"Change: {change}" + (f" ({percent})" if percent else ""))
    if event.get("detail"):
        lines.append(str(event["detail"]))
    problems = snapshot.get("problems") or ()
    if problems:
        lines.append("Incomplete because:")
        lines += [
            f"  {p.get('kind')} {p.get('subject')}: {p.get('detail')}"
            for p in problems[:PROBLEMS_SHOWN]
        ]
        if len(problems) > PROBLEMS_SHOWN:
            lines.append(f"  … and {len(problems) - PROBLEMS_SHOWN} more")
    if kind == "incomplete":
        lines.append("No threshold alert fires until the book is complete again.")
    lines.append(f"At {_when(event.get('at'))} · event {event.get('id')}")
    return lines


def _when(at: object) -> str:
    try:
        return f"{datetime.fromisoformat(str(at)):%Y-%m-%d %H:%M:%S %Z}".rstrip()
    except ValueError:
        return str(at)
