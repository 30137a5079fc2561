"""Prepare a Debian kernel source tree once per commit per host, the kernel team's way:
export ``debian/`` from the packaging repository at the commit, fetch the upstream orig
tarball (checked against a .dsc when one is known), then ``debian/rules orig`` (unpack
and quilt push) and, when control must be regenerated, ``debian/rules debian/control-real``.

Jobs on the host share the result read-only (each mounts it as an overlay). Every step
that runs the packaging's code runs in the sandbox; the orig tarball stays in the
worker's download cache, checked against its SHA-256 at each use and seen read-only.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from debian.changelog import Changelog

from kbo.config import Config
from kbo.errors import InfraError, UserError
from kbo.packaging import download, repository, safe_tar
from kbo.packaging.dsc import DscFile, read_dsc
from kbo.text import NAME
from kbo.workers import job_files, runner, sandbox, worker_paths

PREPARE_TIMEOUT = 3600
# A commit's debian/ exported as a tar archive larger than this is refused, git stopped.
MAX_DEBIAN_EXPORT = 1 << 30
EXPORT_POLL_SECONDS = 0.05
ORIG = re.compile(r".*\.orig\.tar\.(xz|gz|bz2)")
VERSION = re.compile(r"(?:\d+:)?[0-9][A-Za-z0-9.+~-]*")
# Debian's kernel changelog is 3.2 MB already and grows with every upload: room to grow,
# still bounded (the commit is hostile).
MAX_CHANGELOG = 64 << 20


class PrepareError(UserError):
    """The commit's packaging could not prepare the tree (``debian/rules orig`` failed,
    an unusable changelog): the message is the job's first error."""


@dataclass(frozen=True)
class Prepared:
    root: Path  # <cache>/<commit>/: holds src/ and the orig tarball beside it
    version: str
    upstream: str

    @property
    def src(self) -> Path:
        return self.root / "src"


def prepare(
    config: Config, source: str, commit: str, log: BinaryIO, base: sandbox.Spec
) -> Prepared:
    """The prepared tree for (source, commit); made under a lock if no job made it yet.

    ``base`` is the job's sandbox (its /etc, environment and limits): the packaging's
    own code (``debian/rules``) prepares the tree, so it runs there too.
    """
    trees = config.cache_path / "trees"
    trees.mkdir(parents=True, exist_ok=True)
    root = trees / commit
    # The stamp lies beside the tree, where the step that fills the tree cannot reach.
    stamp = trees / f"{commit}.ready"
    with (trees / f"{commit}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file():
            version, upstream = stamp.read_text().split()
            log.write(f"kbo: reusing the tree prepared for {commit[:12]}\n".encode())
            return _checked(Prepared(root, version, upstream))
        # What a failed or interrupted preparation left: as hostile as any build output.
        worker_paths.remove_tree(root)
        try:
            prepared = _checked(_prepare(config, source, commit, root, log, base))
        except BaseException:
            with contextlib.suppress(OSError):  # the next job to prepare it tries again
                worker_paths.remove_tree(root)
            raise
        stamp.write_text(f"{prepared.version} {prepared.upstream}\n")
        return prepared


def _checked(prepared: Prepared) -> Prepared:
    """The tree's ``src`` must be a real directory: a symlink there would make later
    jobs mount whatever it points to."""
    try:
        mode = os.lstat(prepared.src).st_mode
    except OSError as e:
        raise PrepareError(f"the prepared tree has no src directory ({e.strerror})") from None
    if not stat.S_ISDIR(mode):
        raise PrepareError("the prepared tree's src is not a directory")
    return prepared


def _prepare(
    config: Config, source: str, commit: str, root: Path, log: BinaryIO, base: sandbox.Spec
) -> Prepared:
    say = _sayer(log)
    src = root / "src"
    src.mkdir(parents=True)
    repo = repository.local_repository(source, config, mirrors=worker_paths.mirrors(config))
    say(f"exporting debian/ at {commit[:12]} from {source}")
    _export_debian(repo, commit, src)
    changelog = job_files.read_text(src, "debian/changelog", MAX_CHANGELOG)
    try:
        head = next(iter(Changelog(changelog, max_blocks=1)))
    except (StopIteration, ValueError) as e:
        raise PrepareError(f"debian/changelog has no usable entry: {e}") from None
    package, version = head.package or "linux", str(head.version)
    upstream = head.version.upstream_version or version
    if not VERSION.fullmatch(version) or not re.fullmatch(NAME, package):
        raise PrepareError(
            f"debian/changelog names an unusable package or version: {package} {version}"
        )
    name = f"{package}_{upstream}.orig.tar.xz"
    expected = _expected(config, package, version, name, say)
    url = download.pool_url(config.mirror, package, name)
    say(f"fetching {url}" + (" (checked against its .dsc)" if expected else " (no .dsc known)"))
    tarball = download.fetch(url, name, config.cache_path / "downloads", expected, say)
    # The tarball stays the worker's: the step sees it read-only beside the tree.
    spec = replace(
        base,
        binds=((str(root), "/build", True), (str(tarball), f"/build/{name}", False)),
        workdir="/build/src",
    )
    # The tree stays in the cache: the job's disk limit holds for it too.
    limit = config.job_disk_gb << 30
    watch = functools.partial(job_files.disk_problem, root, limit, "the prepared tree")
    _run_in_sandbox(["make", "-f", "debian/rules", "orig"], spec, log, watch)
    if not job_files.is_regular(src, "debian/control") or not job_files.is_regular(
        src, "debian/rules.gen"
    ):
        say("regenerating debian/control (this target fails on purpose when it did)")
        _run_in_sandbox(
            ["make", "-f", "debian/rules", "debian/control-real"], spec, log, watch, ok_codes=(0, 2)
        )
        if not job_files.is_regular(src, "debian/rules.gen"):
            raise PrepareError("debian/rules debian/control-real did not write debian/rules.gen")
    return Prepared(root, version, upstream)


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
    """Unpack the commit's ``debian/`` into ``dest`` through a temporary file beside it:
    git archive's output, held in memory, cost 543 MiB for a 256 MiB file of zeros that
    takes 1.3 MiB in git."""
    where = f"{repo} at {commit[:12]}"
    with tempfile.TemporaryFile(dir=dest.parent) as archive:
        _git_archive(repo, commit, archive, where)
        archive.seek(0)
        try:
            with tarfile.open(fileobj=archive) as tar:
                safe_tar.extract(tar, dest, where, within="debian")
        except (tarfile.TarError, EOFError, OSError) as e:
            raise InfraError(f"cannot unpack git archive's debian/: {e}", str(repo)) from None


def _git_archive(repo: Path, commit: str, archive: BinaryIO, where: str) -> None:
    """Write ``git archive`` of ``debian/`` to ``archive``; stop git once the archive is
    over ``MAX_DEBIAN_EXPORT`` (checked as it grows, and at the end)."""
    with tempfile.TemporaryFile() as errors:
        git = subprocess.Popen(
            ["git", "-C", str(repo), "archive", "--format=tar", commit, "debian"],
            stdin=subprocess.DEVNULL,
            stdout=archive,
            stderr=errors,
        )
        try:
            while git.poll() is None and _size(archive) <= MAX_DEBIAN_EXPORT:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    git.wait(EXPORT_POLL_SECONDS)
        finally:
            if git.poll() is None:
                git.kill()
                git.wait()
        if _size(archive) > MAX_DEBIAN_EXPORT:
            raise UserError(
                f"debian/ takes more than {MAX_DEBIAN_EXPORT >> 20} MiB as a tar archive", where
            )
        if git.returncode != 0:
            errors.seek(0)
            message = errors.read(4096).decode(errors="replace").strip()
            raise InfraError(f"git archive failed: {message}", str(repo))


def _size(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size


def _run_in_sandbox(
    argv: list[str],
    spec: sandbox.Spec,
    log: BinaryIO,
    watch: runner.Watch,
    ok_codes: tuple[int, ...] = (0,),
) -> None:
    result = runner.run(
        sandbox.wrap(argv, spec),
        log=log,
        timeout=PREPARE_TIMEOUT,
        no_output_timeout=PREPARE_TIMEOUT,
        watch=watch,
    )
    if result.timed_out or result.returncode not in ok_codes:
        raise PrepareError(f"preparing the source: {' '.join(argv)} {result.describe()}")


def build_env() -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": "/build",
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",  # noqa: S108 (a fresh tmpfs inside the sandbox)
        "TERM": "dumb",
    }
