"""Checking untrusted input (the configuration, operator files): bounded number types, and
readable one-line descriptions of pydantic validation errors without the offending values."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationError

# Wide enough for any real balance or price, narrow enough that a typo such as `1E+999999999`
# cannot overflow Decimal arithmetic (a traceback) or print a billion digits in plain notation.
MAX_MAGNITUDE = Decimal("1e30")
MAX_DECIMAL_PLACES = 36  # of a non-zero value; an 18-decimal token needs half of it


def _plain_zero(value: Decimal) -> Decimal:
    # a zero keeps any exponent through the bounds (`0E-999999999`): make it a plain 0
    return value if value else Decimal(0)


# A finite amount: |x| < 1e30, at most 36 decimal places.
Amount = Annotated[
    Decimal,
    Field(
        gt=-MAX_MAGNITUDE,
        lt=MAX_MAGNITUDE,
        decimal_places=MAX_DECIMAL_PLACES,
        allow_inf_nan=False,
    ),
    AfterValidator(_plain_zero),
]
# A conversion rate: a positive `Amount`.
Rate = Annotated[Amount, Field(gt=0)]


def describe_errors(exc: ValidationError, root: str = "") -> list[str]:
    """`books.basis.venues[2].path: Field required`, one line per error, values never echoed."""
    lines = []
    for error in exc.errors():
        path = root
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = str(error["msg"]).removeprefix("Value error, ")
        # a model-level check (empty loc) names its own field path in its message
        lines.append(f"{path}: {message}" if path else message)
    return lines
