"""`python -m equity_daemon.healthcheck`: exit 0 when the local daemon answers /healthz with 200.

For Docker's HEALTHCHECK (the image has no curl). Reads the port from `EQUITY_DAEMON_HTTP__PORT`.
"""

from __future__ import annotations

import os
import sys
import urllib.request

DEFAULT_PORT = 9731


def check(port: int, timeout: float = 4.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def main() -> int:
    return 0 if check(int(os.environ.get("EQUITY_DAEMON_HTTP__PORT", DEFAULT_PORT))) else 1


if __name__ == "__main__":
    sys.exit(main())
