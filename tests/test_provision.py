"""The test session installs what its tests need, or says why it could not (tests/provision.py).

npm and apt-get are stand-ins here (scripts on a PATH of their own that log their arguments and
make the files a real install makes): the real ones reach registries, and no test may.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests import provision
from tests.provision import ANVIL_PACKAGE, ANVIL_VERSION, DEBIAN_TOOLS, Provisioned
from tests.provision_plugin import summary

FAKE_NPM = """
import json, os, pathlib, sys, time
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("npm " + " ".join(sys.argv[1:]) + "\\n")
if os.environ.get("FAKE_OFFLINE"):
    sys.exit("npm error code ENOTFOUND\\nnpm error network request failed")
time.sleep(float(os.environ.get("FAKE_SLOW", "0")))
prefix = pathlib.Path(sys.argv[sys.argv.index("--prefix") + 1]) / "node_modules"
package = prefix / "@foundry-rs" / "anvil"
package.mkdir(parents=True, exist_ok=True)
(package / "package.json").write_text(json.dumps({"version": sys.argv[-1].rsplit("@", 1)[1]}))
if os.environ.get("FAKE_NO_BINARY"):  # npm's optional platform package: none for this machine
    sys.exit(0)
(prefix / ".bin").mkdir(exist_ok=True)
(prefix / ".bin" / "anvil").write_text("#!/bin/sh\\n")
(prefix / ".bin" / "anvil").chmod(0o755)
"""

FAKE_APT_GET = """
import json, os, pathlib, sys
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("apt-get " + " ".join(sys.argv[1:]) + "\\n")
if os.environ.get("FAKE_OFFLINE"):
    sys.exit("E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease")
if sys.argv[1] == "install":
    commands = json.loads(os.environ["FAKE_COMMANDS"])
    for package in sys.argv[2:]:
        for command in commands.get(package, []):
            made = pathlib.Path(os.environ["FAKE_BIN"]) / command
            made.write_text("#!/bin/sh\\n")
            made.chmod(0o755)
"""


class Machine:
    """A PATH of its own (with stand-ins for npm and apt-get) and a clone's cache of its own."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.log = tmp_path / "commands.log"
        self.log.touch()
        self.monkeypatch = monkeypatch
        monkeypatch.setattr(provision, "CACHE", tmp_path / "cache")
        monkeypatch.setattr(provision, "NPM_PREFIX", tmp_path / "cache" / "npm")
        monkeypatch.setenv("PATH", str(self.bin))
        monkeypatch.setenv("FAKE_LOG", str(self.log))
        monkeypatch.setenv("FAKE_BIN", str(self.bin))
        commands = {tool.package: tool.commands for tool in DEBIAN_TOOLS}
        monkeypatch.setenv("FAKE_COMMANDS", json.dumps(commands))
        monkeypatch.delenv("CI", raising=False)
        self.root(True)
        self.debian_tools()  # present unless a test takes them away

    def script(self, name: str, source: str) -> None:
        path = self.bin / name
        path.write_text(f"#!{sys.executable}\n{source}")
        path.chmod(0o755)

    def debian_tools(self, *except_packages: str) -> None:
        for tool in DEBIAN_TOOLS:
            for command in tool.commands:
                if tool.package not in except_packages:
                    self.script(command, "")
                else:
                    (self.bin / command).unlink(missing_ok=True)

    def root(self, is_root: bool) -> None:
        self.monkeypatch.setattr(os, "geteuid", lambda: 0 if is_root else 1000)

    def commands(self) -> list[str]:
        return self.log.read_text().splitlines()


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Machine:
    return Machine(tmp_path, monkeypatch)


def test_a_missing_anvil_is_installed_from_npm_into_the_clones_cache(machine: Machine) -> None:
    machine.script("npm", FAKE_NPM)

    first = provision.provision(lambda line: None)
    again = provision.provision(lambda line: None)

    assert first.missing == {}
    assert [line.split(" (")[0] for line in first.installed] == [
        f"anvil {ANVIL_VERSION} from npm into .cache/npm"
    ]
    assert again == Provisioned()  # once per clone
    assert len(machine.commands()) == 1
    assert machine.commands()[0].startswith(f"npm install --prefix {provision.NPM_PREFIX} ")
    assert machine.commands()[0].endswith(f" {ANVIL_PACKAGE}")
    assert provision.find_anvil() == str(provision.NPM_PREFIX / "node_modules" / ".bin" / "anvil")


def test_an_anvil_cached_before_the_pin_moved_is_replaced(machine: Machine) -> None:
    machine.script("npm", FAKE_NPM)
    provision.provision(lambda line: None)
    manifest = provision.NPM_PREFIX / "node_modules" / "@foundry-rs" / "anvil" / "package.json"
    manifest.write_text(json.dumps({"version": "0.2.0"}))

    provision.provision(lambda line: None)

    assert len(machine.commands()) == 2
    assert json.loads(manifest.read_text())["version"] == ANVIL_VERSION


def test_an_anvil_on_path_does_locally_but_under_ci_only_the_pinned_one_does(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine.script("npm", FAKE_NPM)
    machine.script("anvil", "")

    provision.provision(lambda line: None)
    assert machine.commands() == []
    assert provision.find_anvil() == str(machine.bin / "anvil")

    monkeypatch.setenv("CI", "true")
    provision.provision(lambda line: None)
    assert len(machine.commands()) == 1
    assert provision.find_anvil() == str(provision.NPM_PREFIX / "node_modules" / ".bin" / "anvil")


def test_offline_npm_leaves_anvil_missing_with_the_reason_and_the_command(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine.script("npm", FAKE_NPM)
    monkeypatch.setenv("FAKE_OFFLINE", "1")

    provisioned = provision.provision(lambda line: None)

    assert provisioned.installed == []
    assert provisioned.missing == {
        "anvil": f"npm install --prefix .cache/npm {ANVIL_PACKAGE} failed (offline?): "
        "exit 1: npm error network request failed"
    }


def test_an_npm_install_that_brings_no_binary_for_this_machine_leaves_anvil_missing(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine.script("npm", FAKE_NPM)
    monkeypatch.setenv("FAKE_NO_BINARY", "1")

    provisioned = provision.provision(lambda line: None)

    assert provisioned.installed == []
    assert provisioned.missing["anvil"].endswith(" left no anvil for " + platform.machine())


def test_without_npm_anvil_is_missing_and_the_message_says_how_to_install_it(
    machine: Machine,
) -> None:
    assert provision.provision(lambda line: None).missing == {
        "anvil": f"no npm here: npm install --prefix .cache/npm {ANVIL_PACKAGE}"
    }


def test_two_sessions_starting_at_once_install_anvil_once(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine.script("npm", FAKE_NPM)
    monkeypatch.setenv("FAKE_SLOW", "0.5")  # the second session arrives while npm is at work
    results: list[Provisioned] = []

    def session() -> None:
        results.append(provision.provision(lambda line: None))

    sessions = [threading.Thread(target=session) for _ in range(2)]
    for thread in sessions:
        thread.start()
    for thread in sessions:
        thread.join()

    assert len(machine.commands()) == 1
    assert sorted(len(result.installed) for result in results) == [0, 1]
    assert all(result.missing == {} for result in results)


def test_as_root_the_missing_debian_tools_are_installed_with_apt_get(machine: Machine) -> None:
    machine.script("anvil", "")
    machine.script("apt-get", FAKE_APT_GET)
    machine.debian_tools("chromium", "prometheus")
    said: list[str] = []

    provisioned = provision.provision(said.append)

    assert provisioned.missing == {}
    assert [line.split(" (")[0] for line in provisioned.installed] == [
        "Debian prometheus chromium with apt-get"
    ]
    assert [line.split(" -")[0] for line in machine.commands()] == [
        "apt-get update",
        "apt-get install",
    ]
    assert machine.commands()[1].endswith(" prometheus chromium")
    assert said == ["provision: apt-get install prometheus chromium (as root, once per machine)"]
    assert provision.missing_debian_tools() == []


def test_without_root_debian_tools_stay_missing_and_the_summary_says_why_and_how(
    machine: Machine,
) -> None:
    machine.script("anvil", "")
    machine.script("apt-get", FAKE_APT_GET)
    machine.debian_tools("buildah", "debootstrap")
    machine.root(False)

    provisioned = provision.provision(lambda line: None)

    assert machine.commands() == []
    why = "apt-get needs root: apt-get install buildah debootstrap"
    assert provisioned.missing == {"buildah": why, "debootstrap": why}
    assert summary(provisioned, []) == [
        f"provision: missing here, so their tests skip: buildah, debootstrap ({why})"
    ]


def test_an_apt_get_that_cannot_reach_its_mirror_is_named_in_the_reason(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine.script("anvil", "")
    machine.script("apt-get", FAKE_APT_GET)
    machine.debian_tools("chromium")
    monkeypatch.setenv("FAKE_OFFLINE", "1")

    provisioned = provision.provision(lambda line: None)

    assert provisioned.missing == {
        "chromium": "apt-get failed (offline?): exit 1: E: Failed to fetch "
        "http://deb.debian.org/debian/dists/bookworm/InRelease: apt-get install chromium"
    }


def test_the_gate_leaves_out_the_chain_modules_only_locally_and_only_without_anvil(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    without_anvil = Provisioned(missing={"anvil": "no npm here", "chromium": "not root"})
    left_out = provision.gate_leaves_out(without_anvil)

    assert str(provision.ROOT / "equity_daemon/venues/chain.py") in left_out
    assert provision.gate_leaves_out(Provisioned(missing={"chromium": "not root"})) == []
    assert summary(Provisioned(), left_out)[-1].startswith(
        "coverage gate: leaves out what only those tests run: equity_daemon/venues/chain.py, "
    )
    monkeypatch.setenv("CI", "true")
    assert provision.gate_leaves_out(without_anvil) == []


def test_every_module_the_gate_may_leave_out_exists() -> None:
    for modules in provision.ONLY_EXERCISED_WITH.values():
        for pattern in modules:
            assert list(provision.ROOT.glob(pattern)), pattern


def test_the_coverage_gate_counts_nothing_it_was_told_to_leave_out(tmp_path: Path) -> None:
    """Through pytest-cov's own gate: a module never run fails it, unless it is left out."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "ran.py").write_text("def one() -> int:\n    return 1\n")
    (tmp_path / "pkg" / "never_ran.py").write_text("def two() -> int:\n    return 2\n")
    (tmp_path / "test_one.py").write_text("from pkg.ran import one\n\ndef test_one():\n    one()\n")
    conftest = (
        "import os\nfrom tests.provision_plugin import leave_out_of_the_gate\n\n"
        "def pytest_sessionstart(session):\n"
        "    if os.environ.get('LEAVE_OUT'):\n"
        "        assert leave_out_of_the_gate(session.config, [os.environ['LEAVE_OUT']])\n"
    )
    (tmp_path / "conftest.py").write_text(conftest)
    # the child's coverage is its own: keep this session's subprocess measurement out of it
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env["PYTHONPATH"] = str(provision.ROOT)

    def gate(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "--cov=pkg",
                "--cov-fail-under=100",
            ],
            cwd=tmp_path,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    whole = gate()
    assert whole.returncode == 1, whole.stdout
    assert "never_ran.py" in whole.stdout
    narrowed = gate(LEAVE_OUT=str(tmp_path / "pkg" / "never_ran.py"))
    assert narrowed.returncode == 0, narrowed.stdout
    assert "Required test coverage of 100% reached" in narrowed.stdout
