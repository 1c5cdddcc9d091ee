"""A few words for people about what an excluded line's details say, where a table has room
for one cell: `once` and the status page. The details themselves are in `/snapshot`.

    | details (a `locked` line)                            | note                    |
    |------------------------------------------------------|-------------------------|
    | `request_id=41237 finalized=true valid=true`         | `request 41237 claimable` |
    | `request_id=41238 finalized=false valid=true`        | `request 41238 pending`   |
    | `request_id=41239 valid=false`                       | `request 41239 invalid`   |
    | `request_id=0x9f3c…(32 bytes) finalized=false`       | `request 0x9f3c…2a1b pending` |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

_SHOWN_HEX: Final = 6  # a request hash is shown as 0x + its first and last hex digits


def excluded_note(kind: str, details: Mapping[str, str]) -> str:
    """The note for an excluded line of `kind` (a `PositionKind` value); "" when none."""
    request = details.get("request_id")
    if kind != "locked" or request is None:
        return ""
    if details.get("valid") == "false":
        state = "invalid"  # value at risk: it may never pay
    elif details.get("finalized") == "true":
        state = "claimable"
    else:
        state = "pending"
    return f"request {_short(request)} {state}"


def _short(request: str) -> str:
    digits = request.removeprefix("0x")
    if request.startswith("0x") and len(digits) > 2 * _SHOWN_HEX:
        return f"0x{digits[:_SHOWN_HEX]}…{digits[-_SHOWN_HEX:]}"
    return request
