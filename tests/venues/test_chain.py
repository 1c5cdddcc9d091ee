"""The test chain's own plumbing: a missing or broken anvil is reported, never hidden."""

from __future__ import annotations

import shutil

import pytest

from tests import chain
from tests.chain import Anvil, require_anvil


def test_a_missing_anvil_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain, "find_anvil", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"npm install --prefix \.cache/npm"):
        require_anvil()


def test_a_missing_anvil_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain, "find_anvil", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(
        pytest.fail.Exception, match="anvil is missing and could not be provisioned"
    ):
        require_anvil()


def test_an_anvil_that_dies_at_once_is_reported() -> None:
    dead = shutil.which("false")
    assert dead is not None
    anvil = Anvil(dead)
    try:
        with pytest.raises(RuntimeError, match="anvil exited with 1"):
            anvil.start(attempts=2)
    finally:
        anvil.close()
