"""Container images without a Docker engine: buildah (chroot isolation) and a Debian stand-in base.

No registry image can be pulled on CI's machines, so the base image is made from Debian's packages
with debootstrap, from the mirror the machine's apt sources name, and cached in the clone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

# Debian's python3 in this suite is the interpreter the project targets (3.11).
SUITE = "bookworm"
PACKAGES = "python3,python3-venv,ca-certificates"
APT_SOURCES = Path("/etc/apt")


def _one_line_sources(text: str) -> Iterator[tuple[list[str], list[str], list[str]]]:
    """(types, uris, suites) of each `deb [options] URI suite components` line."""
    for line in text.splitlines():
        line = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0])
        words = line.split()
        if len(words) >= 3:
            yield [words[0]], [words[1]], [words[2]]


def _deb822_sources(text: str) -> Iterator[tuple[list[str], list[str], list[str]]]:
    """(types, uris, suites) of each enabled stanza of a `.sources` file."""
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        name = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and name:  # a continuation line
                fields[name] += " " + line.strip()
            elif ":" in line:
                name, value = line.split(":", 1)
                name = name.strip().lower()
                fields[name] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        yield (
            fields.get("types", "").split(),
            fields.get("uris", "").split(),
            fields.get("suites", "").split(),
        )


def debian_mirror(files: Iterable[tuple[str, str]], suite: str = SUITE) -> str | None:
    """The first http(s) `deb` URI that apt's sources list for `suite`.

    `files` are (file name, text) pairs; a `.sources` file is deb822, anything else one-line.
    """
    for file_name, text in files:
        parse = _deb822_sources if file_name.endswith(".sources") else _one_line_sources
        for types, uris, suites in parse(text):
            if "deb" in types and suite in suites:
                for uri in uris:
                    if uri.startswith(("http://", "https://")):
                        return uri
    return None


def apt_source_files(root: Path = APT_SOURCES) -> list[tuple[str, str]]:
    """apt's own source files, in the order apt reads them."""
    paths = [root / "sources.list"]
    parts = root / "sources.list.d"
    if parts.is_dir():
        paths += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    return [(p.name, p.read_text()) for p in paths if p.is_file()]


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first."""
    found = []
    prefix = str(root.resolve())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def _remove_rootfs(root: Path) -> None:
    """Remove a (possibly half-made) root file system; never through a mount left inside it."""
    for point in _mounts_under(root):  # a failed debootstrap may leave /proc or /sys mounted
        subprocess.run(["umount", "--lazy", point], check=False)
    if _mounts_under(root):
        raise RuntimeError(f"{root} still has mounts: {_mounts_under(root)}; not removing it")
    shutil.rmtree(root, ignore_errors=True)


def stand_in_base_tarball(cache: Path, debootstrap: str, mirror: str) -> Path:
    """A tar of a minimal Debian with python3 and venv, made once per clone and kept in `cache`."""
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"debian-{SUITE}-python3.tar"
    with (cache / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run in this clone may be making it
        if tarball.is_file():
            return tarball
        root = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache))
        try:
            options = ["--variant=minbase", f"--include={PACKAGES}"]
            done = subprocess.run(
                [debootstrap, *options, SUITE, str(root), mirror],
                capture_output=True,
                text=True,
                timeout=900,
            )
            if done.returncode != 0:
                raise RuntimeError(f"debootstrap failed:\n{done.stdout[-3000:]}{done.stderr}")
            for leftover in [
                *(root / "var/cache/apt/archives").glob("*.deb"),
                *(root / "var/lib/apt/lists").glob("*_*"),
            ]:
                leftover.unlink()
            partial = tarball.with_suffix(".part")
            subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
            partial.rename(tarball)
        finally:
            _remove_rootfs(root)
    return tarball


class Buildah:
    """The `buildah` command line; every container runs with chroot isolation."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [self.path, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise AssertionError(f"buildah {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
        return done.stdout.strip()

    def import_rootfs(self, tarball: Path, name: str) -> None:
        """An image `name` whose one layer is the tarball (`podman import`, without podman)."""
        container = self("from", "--pull=never", "scratch")
        try:
            self("add", "--quiet", container, str(tarball), "/", timeout=300)
            self("commit", "--quiet", container, name, timeout=300)
        finally:
            self("rm", container)

    def inspect_image(self, name: str) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(self("inspect", "--type", "image", name))
        return config

    def run_argv(
        self,
        container: str,
        command: Sequence[str],
        env: dict[str, str] | None = None,
        mounts: dict[Path, str] | None = None,
    ) -> list[str]:
        argv = [self.path, "run", "--isolation", "chroot"]
        for name, value in (env or {}).items():
            argv += ["--env", f"{name}={value}"]
        for source, target in (mounts or {}).items():
            argv += ["--volume", f"{source}:{target}"]
        return [*argv, container, "--", *command]

    def run(
        self,
        container: str,
        command: Sequence[str],
        env: dict[str, str] | None = None,
        mounts: dict[Path, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.run_argv(container, command, env, mounts),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                # the command name may hold spaces and parentheses: the fields follow the last ")"
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    children = _children()
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def command_line(pid: int) -> list[str]:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a `buildah run` and whatever it started, and reap it."""
    for pid in [*descendants(process.pid), process.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=30)
