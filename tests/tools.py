"""Real tools the tests use: a missing one skips locally but fails under CI=true.

The session has already tried to install what is missing (tests/provision.py); its summary says
why it could not.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def require_tool(command: str, debian_package: str) -> str:
    """The tool's path, from Debian's `debian_package`."""
    found = shutil.which(command)
    if found is None:
        tool_missing(command, f"apt-get install {debian_package}")
    return found


def tool_missing(command: str, install: str) -> NoReturn:
    """Skip (locally) or fail (CI=true) for a tool that is not installed; `install` says how."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{command} is missing and could not be provisioned ({install})")
    pytest.skip(f"{command} not installed ({install})")
