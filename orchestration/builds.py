"""Builds under test, and the mall processes that run them.

A build is a checkout directory, a git ref of this repository (checked out once into a
worktree under the cache), or the URL of a mall already running.  Each build's mall runs its
own code: the process starts in the build's directory with that directory first on the
import path, on the database and clock the harness hands it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .cores import keep_to

REPO = Path(__file__).resolve().parent.parent


class BuildError(Exception):
    """The build named cannot be found or run."""


@dataclass(frozen=True)
class Build:
    spec: str                 # as the user wrote it
    kind: str                 # checkout | ref | url
    path: Path | None = None  # where its code is (checkout, ref)
    url: str | None = None    # a running mall (url)
    commit: str = "unknown"

    def describe(self) -> str:
        where = self.url if self.kind == "url" else str(self.path)
        return f"{self.spec} ({self.kind} {where}, commit {self.commit[:12]})"


def _git(*args: str, cwd: Path = REPO) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(result.stderr.strip() or f"git {' '.join(args)} failed")
    return result.stdout.strip()


def _commit_of(path: Path) -> str:
    try:
        commit = _git("rev-parse", "HEAD", cwd=path)
    except (BuildError, OSError):
        return "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           cwd=path, capture_output=True, text=True).stdout.strip()
    return f"{commit}-dirty" if dirty else commit


def _is_checkout(path: Path) -> bool:
    return (path / "mall" / "app.py").is_file() and (path / "xingcheng" / "cli.py").is_file()


def resolve(spec: str, worktrees: Path) -> Build:
    if spec.startswith(("http://", "https://")):
        return Build(spec, "url", url=spec.rstrip("/"), commit="unknown")
    path = Path(spec)
    if path.is_dir():
        if not _is_checkout(path):
            raise BuildError(f"{spec} is a directory but not a Xingcheng checkout")
        return Build(spec, "checkout", path=path.resolve(), commit=_commit_of(path))
    try:
        commit = _git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    except BuildError as exc:
        raise BuildError(f"{spec!r} is no directory, URL or git ref of {REPO}") from exc
    tree = (worktrees / commit[:12]).resolve()
    if not _is_checkout(tree):
        tree.parent.mkdir(parents=True, exist_ok=True)
        _git("worktree", "prune")
        _git("worktree", "add", "--force", "--detach", str(tree), commit)
    return Build(spec, "ref", path=tree, commit=commit)


def supports(build: Build, option: str) -> bool:
    """Whether the build's `xingcheng` knows `option`: a baseline may be a build from before
    it existed, and must still run as it did then."""
    return build.path is not None and option in (build.path / "xingcheng" / "cli.py").read_text(
        encoding="utf-8")


def mall_command(build: Build, db: Path | str, port: int, clock: str, since: float,
                 faults: Path | None = None, payer: tuple[str, Path] | None = None
                 ) -> list[str]:
    """`xingcheng serve` for this build on the harness's database and clock.  Its simulated
    clock is anchored at `since`, the run's one anchor, and it takes payments through `payer`
    (URL, keyring), where the build knows how (older builds start their clock when they start
    and pay in the mall, as they always did)."""
    where = str(db.resolve()) if isinstance(db, Path) else db
    command = ["serve", "--db", where, "--port", str(port), "--clock", clock]
    if supports(build, "--since"):
        command += ["--since", f"{since:.3f}"]
    if payer is not None and supports(build, "--payer"):
        command += ["--payer", payer[0], "--payer-keys", str(payer[1].resolve())]
    if faults is not None:
        command += ["--faults", str(faults.resolve())]
    return command


def start(build: Build, command: list[str], log: Path, again: bool = False,
          cores: frozenset[int] | None = None) -> subprocess.Popen:
    """`xingcheng COMMAND...` from the build's own code, its output to `log` (appended when
    it starts `again` after a crash), kept to `cores` if given (before it starts a thread:
    the interpreter is still starting up)."""
    assert build.path is not None
    env = {**os.environ, "PYTHONPATH": str(build.path), "XINGCHENG_BUILD_COMMIT": build.commit}
    with log.open("a" if again else "w") as out:
        # A session of its own: the terminal's Ctrl-C reaches the harness alone, which
        # stops what it started in its order (`xingcheng up`: the crowd, the mall, the payer).
        process = subprocess.Popen([sys.executable, "-m", "xingcheng.cli", *command],
                                   cwd=build.path, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    if cores is not None:
        # One that died at once is reported by the wait for it to answer, with its log.
        with contextlib.suppress(ProcessLookupError):
            keep_to(cores, process.pid)
    return process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
