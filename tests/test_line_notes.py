"""The few words `once` and the status page show beside an excluded line."""

from __future__ import annotations

import pytest

from equity_daemon.line_notes import excluded_note

HASH = "0x9f3c" + "00" * 28 + "2a1b"


@pytest.mark.parametrize(
    ("kind", "details", "note"),
    [
        (
            "locked",
            {"request_id": "7", "finalized": "true", "valid": "true"},
            "request 7 claimable",
        ),
        ("locked", {"request_id": "8", "finalized": "false", "valid": "true"}, "request 8 pending"),
        ("locked", {"request_id": "9", "finalized": "true", "valid": "false"}, "request 9 invalid"),
        ("locked", {"request_id": HASH, "finalized": "false"}, "request 0x9f3c00…002a1b pending"),
        ("locked", {}, ""),  # a locked line a venue says nothing about
        ("in_transit", {"direction": "deposit", "txid": "0xab"}, ""),
        ("hedge", {"symbol": "ETH/USDT:USDT", "side": "short"}, ""),
    ],
)
def test_a_withdrawal_request_says_its_id_and_whether_it_can_be_claimed(
    kind: str, details: dict[str, str], note: str
) -> None:
    assert excluded_note(kind, details) == note
