"""Shared fixtures: async tests run on asyncio through anyio's pytest plugin.

The session first provisions the tools its tests need (tests/provision_plugin.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest
import structlog

from equity_daemon import logs

pytest_plugins = ("tests.provision_plugin",)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def isolated_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI configures structlog for the whole process; undo it after every test.

    Caching is off in tests, or a logger cached while stdout was one test's capture would keep
    writing there (and `capture_logs` could not see it).
    """
    monkeypatch.setattr(logs, "configure", partial(logs.configure, cache=False))
    yield
    structlog.reset_defaults()
