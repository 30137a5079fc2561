"""A worker never builds as root. Started as root (by an admin, or by embedded mode's
`kbo submit`), it hands its own directories to ``worker_user`` and becomes that user
before it touches a job; then it checks that it can build unprivileged at all. There is
no fallback: a worker that cannot sandbox a step refuses to start, saying why.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
from pathlib import Path

import kbo
from kbo.config import Config
from kbo.errors import InfraError, UserError
from kbo.workers import sandbox
from kbo.workers.worker_paths import owned_by_worker, worker_dir


def become_worker_user(config: Config) -> None:
    """Drop from root to ``worker_user``; as any other user, stay as it is."""
    if os.geteuid() != 0:
        _own_environment(config)
        return
    try:
        entry = pwd.getpwnam(config.worker_user)
    except KeyError:
        raise UserError(
            f"will not build as root, and the worker user {config.worker_user!r} does not "
            "exist (deploy/setup-worker-host adds it)",
            "worker_user",
        ) from None
    if entry.pw_uid == 0:
        raise UserError("builds never run as root: name an unprivileged user", "worker_user")
    hand_over(config, entry)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    for needed in (Path(kbo.__file__).resolve().parent, config.state_path):
        if not os.access(needed, os.R_OK | os.X_OK):
            raise UserError(
                f"the worker user {config.worker_user} cannot read this (and builds never "
                "run as root): make it and its parents readable, or put it elsewhere",
                str(needed),
            )
    _own_environment(config)


def hand_over(config: Config, user: pwd.struct_passwd) -> None:
    """Give ``user`` what a worker writes (for a worker started as that user)."""
    for path in owned_by_worker(config):
        _hand_over(path, user.pw_uid, user.pw_gid)


def _hand_over(path: Path, uid: int, gid: int) -> None:
    """Make ``path`` the worker's: all of it the first time, later only what root left."""
    path.mkdir(parents=True, exist_ok=True)
    if path.stat().st_uid != uid:
        _chown_all(path, uid, gid)
        return
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.stat(follow_symlinks=False).st_uid != uid:
                _chown_all(Path(entry.path), uid, gid)


def _chown_all(path: Path, uid: int, gid: int) -> None:
    """Hand over ``path`` and all below it, never through a link.

    A build may swap a directory for a symlink to the host's files while root walks it,
    and may leave a tree deeper than Python can recurse. GNU chown's walk (fts, ``-P``)
    is iterative, changes each name relative to its directory's descriptor without
    following links, and enters only a directory that is the one it listed, so it does
    this job better than a walk of our own."""
    done = subprocess.run(
        ["chown", "-R", "-P", "--no-dereference", f"{uid}:{gid}", "--", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise OSError(
            f"cannot hand {path} to uid {uid}: {reason[0] if reason else done.returncode}"
        )


def _own_environment(config: Config) -> None:
    home = worker_dir(config)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["HOME"] = str(home)
    # The worker reads packaging repositories that other users own (the tracked one,
    # submitted paths); git refuses those unless told they are safe to read.
    os.environ |= {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "safe.directory",
        "GIT_CONFIG_VALUE_0": "*",
    }


def check_sandbox(config: Config) -> None:
    """Run one empty step with an overlay, as a build would; raise if it cannot run."""
    if problem := sandbox.problem():
        raise InfraError(f"cannot build unprivileged: {problem}")
    etc = sandbox.write_etc(worker_dir(config) / "etc")
    with tempfile.TemporaryDirectory(dir=worker_dir(config)) as scratch:
        parts = [Path(scratch, name) for name in ("lower", "upper", "work", "merged", "build")]
        for part in parts:
            part.mkdir()
        lower, upper, work, merged, build = map(str, parts)
        spec = sandbox.Spec(
            etc=str(etc),
            overlays=(sandbox.Overlay(lower, upper, work, merged, "/build/src"),),
            binds=((build, "/build", True),),
            env={"PATH": "/usr/bin:/bin"},
        )
        try:
            ran = subprocess.run(
                sandbox.wrap(["true"], spec), capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise InfraError(f"cannot build unprivileged: {e}") from None
        if ran.returncode != 0:
            lines = ran.stderr.strip().splitlines() or [f"exit status {ran.returncode}"]
            raise InfraError(
                f"cannot build unprivileged as {pwd.getpwuid(os.getuid()).pw_name}: {lines[-1]}"
                " (user namespaces must be allowed)"
            )
