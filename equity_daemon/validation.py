"""Readable one-line descriptions of pydantic validation errors, without the offending values."""

from __future__ import annotations

from pydantic import ValidationError


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
