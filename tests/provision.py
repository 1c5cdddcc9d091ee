"""What the tests need from outside Python, installed when it is missing, before the first test.

The README's test command is the whole recipe on a fresh machine: tests/conftest.py calls
`provision` when the session starts (`.ci/run` runs this file as a script first), and it installs

* anvil from npm (`@foundry-rs/anvil`, pinned) into `.cache/npm` in the clone, where
  tests/chain.py looks first; locally an `anvil` on PATH does as well, under CI=true only the
  pinned one;
* Debian's tools (promtool and Prometheus, amtool and Alertmanager, systemd-analyze, buildah and
  debootstrap for the image, Chromium for the status page) with apt-get, where the machine allows
  it: root and apt-get present.

One session at a time per clone provisions (a file lock); apt's own lock is waited for. What
cannot be installed (no npm, not root, offline) is named with the reason and the command that
installs it; its tests skip locally and fail under CI=true (tests/tools.py). This module uses the
standard library only, so `python3 tests/provision.py` runs before the clone has a venv.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
NPM_PREFIX = CACHE / "npm"
ANVIL_VERSION = "1.7.1"
ANVIL_PACKAGE = f"@foundry-rs/anvil@{ANVIL_VERSION}"
ANVIL_INSTALL = f"npm install --prefix .cache/npm {ANVIL_PACKAGE}"


@dataclass(frozen=True)
class DebianTool:
    package: str
    commands: tuple[str, ...]  # every one of them must be found


DEBIAN_TOOLS = (
    DebianTool("prometheus", ("promtool", "prometheus")),
    DebianTool("prometheus-alertmanager", ("amtool", "prometheus-alertmanager")),
    DebianTool("systemd", ("systemd-analyze",)),
    DebianTool("buildah", ("buildah",)),
    DebianTool("debootstrap", ("debootstrap",)),
    DebianTool("chromium", ("chromium",)),
)

# Modules that only one component's tests exercise. Where that component is missing locally its
# tests skip, and the coverage gate leaves these out instead of failing on code no test could run
# here; under CI=true a missing component fails its tests, and the gate is always whole.
ONLY_EXERCISED_WITH: dict[str, tuple[str, ...]] = {
    "anvil": (
        "equity_daemon/venues/chain.py",
        "equity_daemon/venues/multicall.py",
        "equity_daemon/venues/rpc.py",
        "equity_daemon/venues/protocols/*.py",
    ),
}


@dataclass
class Provisioned:
    """What a session installed, and what is still missing (component → why, and how)."""

    installed: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)


def under_ci() -> bool:
    return os.environ.get("CI") == "true"


def cached_anvil() -> str | None:
    """The pinned anvil in `.cache/npm`: npm's platform package, else npm's own wrapper."""
    modules = NPM_PREFIX / "node_modules"
    try:
        manifest = json.loads((modules / "@foundry-rs" / "anvil" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("version") != ANVIL_VERSION:
        return None  # a cache from before the pin moved
    system = {"Linux": "linux", "Darwin": "darwin"}.get(platform.system(), "")
    machine = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine(), ""
    )
    for candidate in (
        modules / "@foundry-rs" / f"anvil-{system}-{machine}" / "bin" / "anvil",
        modules / ".bin" / "anvil",
    ):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_anvil() -> str | None:
    """The pinned anvil of `.cache/npm`; else, outside CI, one on PATH."""
    return cached_anvil() or (None if under_ci() else shutil.which("anvil"))


def missing_debian_tools() -> list[DebianTool]:
    return [t for t in DEBIAN_TOOLS if not all(shutil.which(c) for c in t.commands)]


def provision(say: Callable[[str], None]) -> Provisioned:
    """Install what is missing (once per clone at a time); what is still missing, and why."""
    done = Provisioned()
    with _lock(CACHE / "provision.lock"):
        _provision_anvil(done, say)
        _provision_debian(done, say)
    return done


def gate_leaves_out(provisioned: Provisioned) -> list[str]:
    """Absolute path patterns the coverage gate leaves out here (none under CI=true)."""
    if under_ci():
        return []
    return [
        str(ROOT / module)
        for component in sorted(provisioned.missing)
        for module in ONLY_EXERCISED_WITH.get(component, ())
    ]


def _provision_anvil(done: Provisioned, say: Callable[[str], None]) -> None:
    if find_anvil() is not None:
        return
    npm = shutil.which("npm")
    if npm is None:
        done.missing["anvil"] = f"no npm here: {ANVIL_INSTALL}"
        return
    say(f"provision: {ANVIL_INSTALL}")
    started = time.monotonic()
    quiet = ["--no-audit", "--no-fund", "--loglevel=error", "--fetch-retries=1"]
    failed = _run([npm, "install", "--prefix", str(NPM_PREFIX), *quiet, ANVIL_PACKAGE], timeout=600)
    if failed is not None:
        done.missing["anvil"] = f"{ANVIL_INSTALL} failed (offline?): {failed}"
    elif find_anvil() is None:
        done.missing["anvil"] = f"{ANVIL_INSTALL} left no anvil for {platform.machine()}"
    else:
        took = time.monotonic() - started
        done.installed.append(f"anvil {ANVIL_VERSION} from npm into .cache/npm ({took:.0f} s)")


def _provision_debian(done: Provisioned, say: Callable[[str], None]) -> None:
    missing = missing_debian_tools()
    if not missing:
        return
    packages = [tool.package for tool in missing]
    install = "apt-get install " + " ".join(packages)
    apt = shutil.which("apt-get")
    failed: str | None
    if apt is None:
        failed = "no apt-get here"
    elif os.geteuid() != 0:
        failed = "apt-get needs root"
    else:
        say(f"provision: {install} (as root, once per machine)")
        started = time.monotonic()
        wait = ["-o", "DPkg::Lock::Timeout=900"]  # another clone's session may be installing
        failed = _run([apt, "update", "-qq", *wait], timeout=600) or _run(
            [apt, "install", "-y", "-qq", "--no-install-recommends", *wait, *packages],
            timeout=1800,
        )
        if failed is not None:
            failed = f"apt-get failed (offline?): {failed}"
        took = f"{time.monotonic() - started:.0f} s"
        got = [tool.package for tool in missing if tool not in missing_debian_tools()]
        if got:
            done.installed.append(f"Debian {' '.join(got)} with apt-get ({took})")
    for tool in missing_debian_tools():
        done.missing[tool.package] = f"{failed or 'not installed'}: {install}"


def _run(command: Sequence[str], timeout: float) -> str | None:
    """None when the command succeeded, else what went wrong, in one line."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if result.returncode == 0:
        return None
    lines = (result.stderr or result.stdout).strip().splitlines()
    return f"exit {result.returncode}: {lines[-1] if lines else 'no output'}"


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def main() -> int:
    """For `.ci/run`: provision, say what is there, exit 1 if anything is still missing."""

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    provisioned = provision(say)
    for line in provisioned.installed:
        say(f"provision: installed {line}")
    for component, why in sorted(provisioned.missing.items()):
        say(f"provision: {component} is missing: {why}")
    say(f"provision: the tests' anvil is {find_anvil()}")
    return 1 if provisioned.missing else 0


if __name__ == "__main__":
    sys.exit(main())
