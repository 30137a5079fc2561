"""Prepare a Debian kernel source tree once per commit per host, the kernel team's way:
export ``debian/`` from the packaging repository at the commit, fetch the upstream orig
tarball (checked against a .dsc when one is known), then ``debian/rules orig`` (unpack
and quilt push) and, when control must be regenerated, ``debian/rules debian/control-real``.

Jobs on the host share the result read-only (each mounts it as an overlay).
"""

from __future__ import annotations

import fcntl
import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from debian.changelog import Changelog

from kbo.config import Config
from kbo.errors import InfraError, KboError
from kbo.packaging import download, repository, safe_tar
from kbo.packaging.dsc import DscFile, read_dsc
from kbo.workers import runner, sandbox

PREPARE_TIMEOUT = 3600
ORIG = re.compile(r".*\.orig\.tar\.(xz|gz|bz2)")


class PrepareError(KboError):
    """The tree could not be prepared: the message is the job's first error."""


@dataclass(frozen=True)
class Prepared:
    root: Path  # <cache>/<commit>/: holds src/ and the orig tarball beside it
    version: str
    upstream: str

    @property
    def src(self) -> Path:
        return self.root / "src"


def prepare(
    config: Config,
    source: str,
    commit: str,
    log: BinaryIO,
    build_uid: int | None,
    build_gid: int | None,
) -> Prepared:
    """The prepared tree for (source, commit); made under a lock if no job made it yet."""
    root = config.cache_path / "prepared" / commit
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f"{commit}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = root / ".kbo-prepared"
        if stamp.exists():
            version, upstream = stamp.read_text().split()
            log.write(f"kbo: reusing the tree prepared for {commit[:12]}\n".encode())
            return Prepared(root, version, upstream)
        shutil.rmtree(root, ignore_errors=True)
        try:
            prepared = _prepare(config, source, commit, root, log, build_uid, build_gid)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        stamp.write_text(f"{prepared.version} {prepared.upstream}\n")
        return prepared


def _prepare(
    config: Config,
    source: str,
    commit: str,
    root: Path,
    log: BinaryIO,
    uid: int | None,
    gid: int | None,
) -> Prepared:
    say = _sayer(log)
    src = root / "src"
    src.mkdir(parents=True)
    repo = repository.local_repository(source, config)
    say(f"exporting debian/ at {commit[:12]} from {source}")
    _export_debian(repo, commit, src)
    changelog = safe_tar.read_inside(src, "debian/changelog", f"{source} at {commit[:12]}")
    head = next(iter(Changelog(changelog, max_blocks=1)))
    package, version = head.package or "linux", str(head.version)
    upstream = head.version.upstream_version or version
    name = f"{package}_{upstream}.orig.tar.xz"
    expected = _expected(config, package, version, name, say)
    url = download.pool_url(config.mirror, package, name)
    say(f"fetching {url}" + (" (checked against its .dsc)" if expected else " (no .dsc known)"))
    tarball = download.fetch(url, name, config.cache_path / "downloads", expected, say)
    _link_or_copy(tarball, root / name)  # the sandbox sees only the prepared directory
    if uid is not None and gid is not None:
        subprocess.run(["chown", "-R", f"{uid}:{gid}", str(root)], check=True)
    _run_in_sandbox(config, ["make", "-f", "debian/rules", "orig"], root, log, uid, gid)
    if not (src / "debian/control").exists() or not (src / "debian/rules.gen").exists():
        say("regenerating debian/control (this target fails on purpose when it did)")
        _run_in_sandbox(
            config,
            ["make", "-f", "debian/rules", "debian/control-real"],
            root,
            log,
            uid,
            gid,
            ok_codes=(0, 2),
        )
        if not (src / "debian/rules.gen").exists():
            raise PrepareError("debian/rules debian/control-real did not write debian/rules.gen")
    return Prepared(root, version, upstream)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _sayer(log: BinaryIO) -> Callable[[str], None]:
    def say(text: str) -> None:
        log.write(f"kbo: {text}\n".encode())
        log.flush()

    return say


def _expected(
    config: Config, package: str, version: str, name: str, say: Callable[[str], None]
) -> DscFile | None:
    """The orig tarball's size and checksum from a known .dsc, if there is one."""
    dsc_name = f"{package}_{version.split(':')[-1]}.dsc"
    for directory in config.dsc_dirs:
        path = Path(directory).expanduser() / dsc_name
        if path.exists():
            info = read_dsc(path)
            found = info.file(re.compile(re.escape(name)))
            if found is not None:
                say(f"orig tarball checked against {path}")
                return found
    return None


def _export_debian(repo: Path, commit: str, dest: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", commit, "debian"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise InfraError(f"git archive failed: {archive.stderr.decode().strip()}", str(repo))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            safe_tar.extract(tar, dest, f"{repo} at {commit[:12]}", within="debian")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise InfraError(f"cannot unpack git archive's debian/: {e}", str(repo)) from None


def _run_in_sandbox(
    config: Config,
    argv: list[str],
    root: Path,
    log: BinaryIO,
    uid: int | None,
    gid: int | None,
    ok_codes: tuple[int, ...] = (0,),
) -> None:
    spec = sandbox.Spec(
        staging=str(staging_dir(config)),
        binds=((str(root), "/build", True),),
        uid=uid,
        gid=gid,
        workdir="/build/src",
        env=build_env(),
    )
    result = runner.run(
        sandbox.wrap(argv, spec),
        log=log,
        timeout=PREPARE_TIMEOUT,
        no_output_timeout=PREPARE_TIMEOUT,
    )
    if result.timed_out or result.returncode not in ok_codes:
        raise PrepareError(f"preparing the source: {' '.join(argv)} {result.describe()}")


def staging_dir(config: Config) -> Path:
    path = config.state_path / "sandbox-root"
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_env() -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": "/build",
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",  # noqa: S108 (a fresh tmpfs inside the sandbox)
        "TERM": "dumb",
    }
