"""`python -m equity_daemon.healthcheck`: exit 0 when the local daemon answers /healthz with 200.

For Docker's HEALTHCHECK (the image has no curl). The port is the daemon's: from
`EQUITY_DAEMON_HTTP__PORT` when set (it overrides the file, as for the daemon), else `http.port` in
the file at `$EQUITY_DAEMON_CONFIG`, else the default.
"""

from __future__ import annotations

import os
import sys
import tomllib
import urllib.request

DEFAULT_PORT = 9731


def check(port: int, timeout: float = 4.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def configured_port() -> int:
    if port := os.environ.get("EQUITY_DAEMON_HTTP__PORT"):
        return int(port)
    if config := os.environ.get("EQUITY_DAEMON_CONFIG"):
        try:
            with open(config, "rb") as handle:
                return int(tomllib.load(handle).get("http", {}).get("port", DEFAULT_PORT))
        except (OSError, ValueError, TypeError, AttributeError):
            pass  # the daemon reports a bad file itself; probe the default
    return DEFAULT_PORT


def main() -> int:
    return 0 if check(configured_port()) else 1


if __name__ == "__main__":
    sys.exit(main())
