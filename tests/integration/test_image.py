"""The Dockerfile builds, and its image runs: `once` prints the demo book, the daemon answers the
image's own HEALTHCHECK command, reads its config from a mounted file and its bearer token from
/run/secrets (a group-readable file; one only its owner reads is named), writes its history to
the volume, and exits 0 within 5 s of SIGTERM.

Built with buildah (chroot isolation: no Docker engine here, and podman cannot start containers)
on a stand-in for `python:3.11-slim` made from Debian's packages (no registry image can be
pulled), from a wheelhouse built on the host (pip cannot reach an index inside the build). The
first run in a clone makes the base with debootstrap (about a minute); later runs reuse
`.cache/image-base/`.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.images import (
    Buildah,
    apt_source_files,
    command_line,
    debian_mirror,
    descendants,
    kill_tree,
    stand_in_base_tarball,
)
from tests.integration.processes import free_port, wait_for
from tests.tools import require_tool

REPO = Path(__file__).parents[2]
CACHE = REPO / ".cache" / "image-base"
UID = 10001
TOKEN = "image-test-bearer-token"
HISTORY = "/var/lib/equity-daemon"

# minutes on the first run in a clone (debootstrap), well under one later
pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Image:
    buildah: Buildah
    name: str
    config: dict[str, Any]  # the Docker-format image configuration

    def env(self, name: str) -> str:
        for item in self.config["Env"]:
            key, _, value = item.partition("=")
            if key == name:
                return str(value)
        raise KeyError(name)


def _wheelhouse(into: Path) -> None:
    """Wheels of the package (as it is in the work tree) and of all its dependencies."""
    with tempfile.TemporaryDirectory() as source:
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(REPO / name, source)
        shutil.copytree(
            REPO / "equity_daemon",
            Path(source) / "equity_daemon",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        # pip and its build backend are no code under test: keep coverage out of them
        env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", source, "--wheel-dir", str(into)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    buildah = Buildah(require_tool("buildah", "buildah"))
    debootstrap = require_tool("debootstrap", "debootstrap")
    if os.geteuid() != 0:
        _unavailable("building the stand-in base image needs root (debootstrap, rootful buildah)")
    if sys.version_info[:2] != (3, 11):
        _unavailable(f"the stand-in base has Debian bookworm's Python 3.11, not {sys.version}")
    mirror = debian_mirror(apt_source_files())
    if mirror is None:
        _unavailable("no http(s) Debian mirror for bookworm in /etc/apt/sources.list{,.d}")
    assert mirror is not None
    tarball = stand_in_base_tarball(CACHE, debootstrap, mirror)

    tag = uuid.uuid4().hex[:12]
    base, app = f"localhost/equity-daemon-test-base:{tag}", f"localhost/equity-daemon-test:{tag}"
    wheelhouse = Path(tempfile.mkdtemp(prefix=".wheelhouse-", dir=REPO))  # in the build context
    made: list[str] = []
    try:
        _wheelhouse(wheelhouse)
        buildah.import_rootfs(tarball, base)
        made.append(base)
        build = subprocess.run(
            [
                buildah.path,
                "build",
                "--isolation=chroot",
                "--pull=never",
                "--format=docker",  # an OCI image cannot carry a HEALTHCHECK
                f"--build-arg=WHEELHOUSE={wheelhouse.name}",
                f"--build-arg=PYTHON_IMAGE={base}",
                f"--tag={app}",
                f"--file={REPO / 'Dockerfile'}",
                str(REPO),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if build.returncode == 0:
            made.append(app)
        assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
        yield Image(buildah, app, buildah.inspect_image(app)["Docker"]["config"])
    finally:
        shutil.rmtree(wheelhouse, ignore_errors=True)
        for name in reversed(made):
            buildah("rmi", name)


@pytest.fixture
def container(image: Image) -> Iterator[str]:
    """A working container of the image; removed afterwards."""
    name = image.buildah("from", "--pull=never", image.name)
    try:
        # buildah 1.28 mounts the image's anonymous VOLUME and a --volume at the same path in a
        # random order, so the anonymous one sometimes hides ours: drop it from this container
        image.buildah("config", "--volume", f"{HISTORY}-", name)
        yield name
    finally:
        image.buildah("rm", name)


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck_and_an_exec_entrypoint(
    image: Image, container: str
) -> None:
    config = image.config
    assert config["User"] == f"{UID}:{UID}"
    assert config["Healthcheck"]["Test"] == ["CMD", "python", "-m", "equity_daemon.healthcheck"]
    assert config["Entrypoint"] == ["equity-daemon"]  # exec form: a list, no shell
    assert config["Cmd"] == ["run"]
    assert HISTORY in config["Volumes"]
    assert "9731/tcp" in config["ExposedPorts"]
    assert image.env("EQUITY_DAEMON_HISTORY_PATH").startswith(HISTORY + "/")

    inside = image.buildah.run(
        container,
        [
            "sh",
            "-c",
            "id -u; id -g; stat -c %u "
            + HISTORY
            + "; for c in gcc cc c++ clang make; do command -v $c; done; true",
        ],
    )
    assert inside.returncode == 0, inside.stderr
    uid, gid, history_owner, *compilers = inside.stdout.split()
    assert (uid, gid, history_owner) == (str(UID), str(UID), str(UID))
    assert compilers == []


def test_once_prints_the_demo_book(image: Image, container: str) -> None:
    done = image.buildah.run(
        container, ["equity-daemon", "once", "--config", "/app/config/demo.toml"]
    )
    assert done.returncode == 0, done.stderr
    assert "book demo" in done.stdout
    assert "complete" in done.stdout


def _demo_with_token(tmp_path: Path) -> tuple[Path, Path]:
    """The demo configuration with `http.bearer_token_file = "api_token"`, and a secrets folder
    holding that token."""
    config_file = tmp_path / "equity.toml"
    config_file.write_text(
        (REPO / "config/demo.toml").read_text() + '\n[http]\nbearer_token_file = "api_token"\n'
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "api_token").write_text(TOKEN)
    return config_file, secrets


def _daemon_pid(run: subprocess.Popen[bytes]) -> int | None:
    """The daemon's own process below `buildah run` (the Python process, not buildah's helpers)."""
    for pid in descendants(run.pid):
        argv = [*command_line(pid), "", ""]
        if Path(argv[0]).name.startswith("python") and argv[1].endswith("/equity-daemon"):
            return pid
    return None


def test_the_daemon_answers_its_healthcheck_and_stops_on_sigterm(
    image: Image, container: str, tmp_path: Path
) -> None:
    config_file, secrets = _demo_with_token(tmp_path)
    history = tmp_path / "history"
    history.mkdir()
    os.chown(history, UID, UID)  # as a named volume would be: a copy of the image's directory
    mounts = {
        config_file: image.env("EQUITY_DAEMON_CONFIG") + ":ro",
        secrets: "/run/secrets:ro",
        history: HISTORY,
    }
    port = free_port()
    # chroot isolation shares the host's network: listen on loopback only, on a free port
    env = {"EQUITY_DAEMON_HTTP__PORT": str(port), "EQUITY_DAEMON_HTTP__HOST": "127.0.0.1"}
    url = f"http://127.0.0.1:{port}"
    healthcheck = image.config["Healthcheck"]["Test"][1:]

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        run = subprocess.Popen(
            image.buildah.run_argv(
                container, image.config["Entrypoint"] + image.config["Cmd"], env, mounts
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: healthy() or run.poll() is not None, 60, "the daemon's /healthz")
        assert run.poll() is None, log.read_text()

        checked = image.buildah.run(container, healthcheck, env)
        assert checked.returncode == 0, checked.stdout + checked.stderr

        assert httpx.get(f"{url}/snapshot", timeout=5).status_code == 401
        authorised = {"Authorization": f"Bearer {TOKEN}"}
        snapshot = httpx.get(f"{url}/snapshot", headers=authorised, timeout=5)
        assert snapshot.status_code == 200  # the token came from /run/secrets
        assert snapshot.json()["books"][0]["book"] == "demo"

        pid = _daemon_pid(run)
        assert pid is not None, [command_line(p) for p in descendants(run.pid)]
        # `docker stop` signals the entrypoint process; `buildah run` would not forward SIGTERM
        started = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        code = run.wait(timeout=10)
        took = time.monotonic() - started
    finally:
        if run.poll() is None:
            kill_tree(run)
    assert code == 0, log.read_text()
    assert took < 5
    assert '"event": "stopped"' in log.read_text()

    # the healthcheck fails when nothing answers
    assert image.buildah.run(container, healthcheck, env).returncode == 1

    # the history is in the volume, owned by the image's user, readable by a new container
    stored = history / Path(image.env("EQUITY_DAEMON_HISTORY_PATH")).name
    assert stored.stat().st_uid == UID
    exported = image.buildah.run(
        container, ["equity-daemon", "history", "--format", "csv"], env, mounts
    )
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert rows
    assert {row["book"] for row in rows} == {"demo"}


def test_a_secret_only_its_owner_reads_is_named_and_a_group_readable_one_works(
    image: Image, container: str, tmp_path: Path
) -> None:
    # a secret kept at mode 0600 on the host is unreadable by the image's uid 10001, and compose
    # applies no uid/gid/mode to a file secret: deploy/secrets/README.md, "Permissions"
    config_file, secrets = _demo_with_token(tmp_path)
    os.chown(secrets, 0, UID)
    secrets.chmod(0o750)  # the folder: enterable by the daemon's group
    token = secrets / "api_token"
    token.chmod(0o600)  # the operator's own file
    mounts = {config_file: image.env("EQUITY_DAEMON_CONFIG") + ":ro", secrets: "/run/secrets:ro"}
    refused = image.buildah.run(container, ["equity-daemon", "check-config"], mounts=mounts)
    assert refused.returncode == 2
    # the daemon's one line; buildah adds lines of its own about the exit status
    assert refused.stderr.splitlines()[0] == (
        "config error: http: bearer_token_file: cannot read secret 'api_token' "
        "(/run/secrets/api_token: permission denied to uid 10001)"
    )
    assert TOKEN not in refused.stdout + refused.stderr

    os.chown(token, 0, UID)  # the documented way: the daemon's group reads it
    token.chmod(0o640)
    accepted = image.buildah.run(container, ["equity-daemon", "check-config"], mounts=mounts)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout == "config ok: 1 book(s), 1 venue(s)\n"


def test_the_mirror_is_the_one_apt_uses_for_bookworm(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] https://vendor.example/apt vendor-bookworm main\n"
    )
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\n"
        "Types: deb deb-src\n# a comment\nURIs: mirror+file:/etc/mirrors\n"
        "  http://apt.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
    )
    (tmp_path / "sources.list.d" / "other.sources.disabled").write_text(
        "Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\n"
    )
    assert debian_mirror(apt_source_files(tmp_path)) == "http://apt.example/debian"
    assert debian_mirror(apt_source_files(tmp_path), suite="trixie") is None
    one_line = [("sources.list", "deb http://apt.example/debian bookworm main contrib\n")]
    assert debian_mirror(one_line) == "http://apt.example/debian"
