"""Real tools the tests use: a missing one skips locally but fails under CI=true."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def require_tool(command: str, debian_package: str) -> str:
    """The tool's path; `.ci/run` installs `debian_package` so CI never skips."""
    found = shutil.which(command)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{command} is missing; .ci/run installs it (Debian {debian_package})")
        pytest.skip(f"{command} not installed (apt-get install {debian_package})")
    return found


def tool_missing(command: str, install: str) -> NoReturn:
    """Skip (locally) or fail (CI=true) for a tool that is not installed; `install` says how."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{command} is missing; .ci/run installs it ({install})")
    pytest.skip(f"{command} not installed ({install})")
