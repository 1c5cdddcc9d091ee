"""structlog configuration, applied once by the CLI (never at import time).

JSON lines on stdout with ISO UTC timestamps; a console renderer only when asked for, or when
`auto` and stderr is a terminal. Secrets never reach a log line because nothing logs settings:
venues, sources and webhooks are logged by their configured names.
"""

from __future__ import annotations

import logging
import sys

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(
    level: str = "info", fmt: str = "auto", *, to_stderr: bool = False, cache: bool = True
) -> None:
    """Configure structlog for the process.

    Args:
        to_stderr: for commands whose stdout is their output (`once`, `history`).
        cache: `False` lets tests reconfigure it.
    """
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr if to_stderr else sys.stdout),
        cache_logger_on_first_use=cache,
    )
