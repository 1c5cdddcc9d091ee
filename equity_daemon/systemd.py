"""sd_notify without libsystemd: a datagram to `$NOTIFY_SOCKET`, when systemd gave us one.

`READY=1` after the first cycle (so `Type=notify` units start only once equity is known),
`WATCHDOG=1` from the calculator loop (so a stuck loop gets the service restarted), and
`STOPPING=1` on shutdown. Without `NOTIFY_SOCKET` every call does nothing.
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send one notification; returns whether a socket was there to send it to."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())
    return True
