"""How the status page writes figures and times: plain text, escaped by whoever puts it in HTML.

Money stays `Decimal` here: a figure arrives as the decimal string of a `/snapshot` document.

    | input                    | function          | text                    |
    |--------------------------|-------------------|-------------------------|
    | `"512500"`, USDT         | `money`           | `512,500.00`            |
    | `"1.5"`, ETH             | `money`           | `1.5000`                |
    | None                     | `figure`          | `unknown` (never 0)     |
    | `"-600"`, `"-0.00117"`   | `change`          | `-600.00 (-0.117 %)`    |
    | `95.0` seconds           | `age`             | `2 min`                 |
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from html import escape
from typing import Any

PLACES = {"USDT": 2, "ETH": 4}  # decimals shown for money, by share class


def decimal(text: Any) -> Decimal | None:
    """A document's decimal string as a `Decimal`; None for null or a text that is none."""
    if text is None:
        return None
    try:
        return Decimal(str(text))
    except InvalidOperation:
        return None


def figure(text: Any, share_class: str) -> str:
    """A total or breakdown entry of a snapshot document: `unknown` for null, never 0."""
    return "unknown" if text is None else money(text, share_class)


def money(text: Any, share_class: str) -> str:
    """A share-class value with thousands separators, to the cent (USDT) or 4 places (ETH)."""
    value = decimal(text)
    if value is None:
        return "" if text is None else str(text)
    if not value.is_finite():
        return "n/a"
    return f"{value:,.{PLACES.get(share_class, 4)}f}"


def change(amount: Decimal, relative: Decimal | None, share_class: str) -> str:
    """A signed move, with its share of where it started: `+600.00 (+0.117 %)`."""
    text = money(amount, share_class)
    if not text.startswith("-"):
        text = "+" + text
    if relative is not None:
        text += f" ({relative * 100:+.3f} %)"
    return text


def amount(text: Any, places: int = 8) -> str:
    """An amount or rate as HTML, with thousands separators and at most `places` decimals (the
    exact figure, when rounded, in a tooltip)."""
    value = decimal(text)
    if value is None or not value.is_finite():
        return escape(str(text))
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -places:
        return escape(f"{value:,f}")
    rounded = value.quantize(Decimal(1).scaleb(-places)).normalize()
    return f'<span title="{escape(str(text))}">{escape(f"{rounded:,f}")}</span>'


def age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60} min"


def clock_time(iso: str, now: datetime) -> str:
    """`HH:MM:SS` today (UTC), with the date before it on another day."""
    at = datetime.fromisoformat(iso).astimezone(UTC)
    return f"{at:%H:%M:%S}" if at.date() == now.astimezone(UTC).date() else f"{at:%Y-%m-%d %H:%M}"
