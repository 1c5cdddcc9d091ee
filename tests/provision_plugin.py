"""The test session provisions what its tests need (tests/provision.py) before the first runs.

It does once it has collected something to run (not for `--collect-only`). At the end it says
in one line what it installed, and in one what is still missing, why, and how to install it.
Locally, the coverage gate then leaves out the modules that only a missing component's tests
exercise (their tests skipped, so nothing here could measure them); under CI=true the gate is
whole and a missing component fails its tests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests import provision

PROVISIONED = pytest.StashKey[provision.Provisioned]()
LEFT_OUT = pytest.StashKey[list[str]]()  # path patterns the coverage gate leaves out


@pytest.hookimpl(trylast=True)  # after the terminal says what it collected
def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if config.option.collectonly or not session.items:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    say: Callable[[str], None] = reporter.write_line if reporter else lambda line: None
    provisioned = provision.provision(say)
    config.stash[PROVISIONED] = provisioned
    left_out = provision.gate_leaves_out(provisioned)
    config.stash[LEFT_OUT] = left_out if leave_out_of_the_gate(config, left_out) else []


def leave_out_of_the_gate(config: pytest.Config, patterns: list[str]) -> bool:
    """Add `patterns` to the omit list of pytest-cov's report; False with coverage off."""
    controller = getattr(config.pluginmanager.get_plugin("_cov"), "cov_controller", None)
    report = getattr(controller, "combining_cov", None)  # the Coverage that reports and gates
    if report is None or not patterns:
        return False
    omitted = report.get_option("report:omit") or []
    report.set_option("report:omit", [*omitted, *patterns])
    return True


def summary(provisioned: provision.Provisioned, left_out: list[str]) -> list[str]:
    """The session's last words on provisioning: nothing when nothing was needed."""
    lines = []
    if provisioned.installed:
        lines.append(f"provision: installed {', '.join(provisioned.installed)}")
    if provisioned.missing:
        alike: dict[str, list[str]] = {}  # one reason, one install command: say them once
        for name, why in provisioned.missing.items():
            alike.setdefault(why, []).append(name)
        lines.append(
            "provision: missing here, so their tests "
            + ("fail (CI=true)" if provision.under_ci() else "skip")
            + ": "
            + "; ".join(f"{', '.join(names)} ({why})" for why, names in alike.items())
        )
    if left_out:
        relative = (str(Path(p).relative_to(provision.ROOT)) for p in left_out)
        lines.append(f"coverage gate: leaves out what only those tests run: {', '.join(relative)}")
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    provisioned = terminalreporter.config.stash.get(PROVISIONED, None)
    if provisioned is None:
        return
    for line in summary(provisioned, terminalreporter.config.stash[LEFT_OUT]):
        terminalreporter.write_line(line, yellow="missing" in line or "gate" in line)
