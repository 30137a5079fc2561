"""A packaging repository from a Debian source package: its ``debian/`` in a new git
repository, one commit dated and authored as the changelog's newest entry.

The debian tarball comes from beside the ``.dsc`` or from the mirror's pool, and must
match the ``.dsc``'s size and SHA-256. The same ``.dsc`` always gives the same commit.
Nothing is left behind when the import fails.
"""

from __future__ import annotations

import email.utils
import os
import shutil
import subprocess
import tempfile
from email.utils import parseaddr
from pathlib import Path

from debian.changelog import Changelog, ChangelogParseError

from kbo.config import Config
from kbo.errors import InfraError, UserError
from kbo.packaging import download
from kbo.packaging.dsc import DscInfo, read_dsc, unpack_debian


def import_dsc(dsc_path: Path, dest: Path, branch: str, config: Config) -> str:
    """Make ``dest`` a git repository holding the package's ``debian/``; return the commit."""
    check_branch_name(branch)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UserError("exists and is not empty", str(dest))
    info = read_dsc(dsc_path)
    tarball = download.source_file(
        dsc_path, info, info.debian_tarball, config.mirror, config.cache_path / "downloads"
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    # mkdtemp's 0700 would keep workers, which run as their own user, out of it.
    umask = os.umask(0)
    os.umask(umask)
    work.chmod(0o777 & ~umask)
    try:
        commit = _commit(info, tarball, work, branch)
        if dest.exists():
            dest.rmdir()
        work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return commit


def check_branch_name(branch: str) -> None:
    """A name git takes for a new branch, or a UserError (git's own rules, asked of git)."""
    try:
        result = subprocess.run(
            ["git", "check-ref-format", "--branch", branch],
            capture_output=True,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
            cwd="/",  # outside any repository: "@{-1}" is not expanded
            check=False,
        )
    except FileNotFoundError:
        raise InfraError("git is not installed") from None
    if result.returncode != 0 or branch.startswith("-"):
        raise UserError(f"--branch {branch!r} is not a valid git branch name")


def _commit(info: DscInfo, tarball: Path, work: Path, branch: str) -> str:
    unpack_debian(tarball, work, lambda _: True, links=True)
    where = f"{info.path}: {tarball.name}: debian/changelog"
    changelog = work / "debian/changelog"
    if changelog.is_symlink() or not changelog.is_file():
        raise UserError("missing, or not a regular file", where)
    try:
        entries = Changelog(changelog.read_bytes(), max_blocks=1, strict=True)
        entry = next(iter(entries))
    except (ChangelogParseError, ValueError, StopIteration) as e:  # not UTF-8 is a ValueError
        raise UserError(
            f"unreadable: {str(e).splitlines()[0] if str(e) else 'no entry'}", where
        ) from None
    name, mail = parseaddr(entry.author or "")
    if not name or not mail or not entry.date:
        raise UserError("the newest changelog entry has no usable trailer", where)
    try:
        email.utils.parsedate_to_datetime(entry.date)
    except (TypeError, ValueError):
        raise UserError(
            f"the newest entry's date is not an RFC 2822 date: {entry.date!r}", where
        ) from None
    identity = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": mail,
        "GIT_AUTHOR_DATE": entry.date,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": mail,
        "GIT_COMMITTER_DATE": entry.date,
    }
    message = f"Import {info.source} {info.version}"
    _git(work, identity, "init", "--quiet", "--initial-branch", branch)
    _git(work, identity, "add", "--all")
    _git(work, identity, "commit", "--quiet", "--no-verify", "-m", message)
    return _git(work, identity, "rev-parse", "HEAD").strip()


def _git(repo: Path, identity: dict[str, str], *args: str) -> str:
    argv = ["git", "-c", "commit.gpgsign=false", "-C", str(repo), *args]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(repo), "LC_ALL": "C.UTF-8"} | identity
    try:
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    except FileNotFoundError:
        raise InfraError("git is not installed") from None
    if result.returncode != 0:
        raise InfraError(f"git {args[0]} failed: {result.stderr.strip()}", str(repo))
    return result.stdout
