"""Reading an exchange's raw answer (ccxt's `info`): numbers from its strings, texts, lists.

A field that is missing or holds something else fails with `BadField`, whose message names the
field; the venue turns it into a `VenueDataError` for the account (a bad report fails its venue).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

ZERO = Decimal(0)


class BadField(ValueError):
    """Raised when a raw answer lacks a field or holds a non-number; the message names it."""


def number(row: Any, key: str, *, default: Decimal | None = None) -> Decimal:
    """`row[key]` as a Decimal, parsed from the exchange's string (never through a float).

    An empty string reads as `default` when one is given (exchanges send `""` for "none").
    """
    if not isinstance(row, Mapping):
        raise BadField(f"expected an object holding {key}, got {type(row).__name__}")
    raw = row.get(key)
    if raw is None or raw == "":
        if default is not None:
            return default
        raise BadField(f"no {key}")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise BadField(f"{key} is not a decimal string")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise BadField(f"{key} is not a number") from None
    if not value.is_finite():
        raise BadField(f"{key} is {value}")
    return value


def text(row: Any, key: str) -> str:
    """`row[key]` as a non-empty string."""
    raw = row.get(key) if isinstance(row, Mapping) else None
    if not isinstance(raw, str) or not raw:
        raise BadField(f"no {key}")
    return raw


def rows(node: Any, what: str) -> list[Mapping[str, Any]]:
    """`node` as a list of objects."""
    if not isinstance(node, list) or not all(isinstance(r, Mapping) for r in node):
        raise BadField(f"{what} is not a list of objects")
    return node


def optional(row: Any, key: str) -> Decimal | None:
    """A number the exchange may leave empty (`""`, `"0"` for "no liquidation price")."""
    value = number(row, key, default=ZERO)
    return None if value == 0 else value
