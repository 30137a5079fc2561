"""The packaging repository: where it is (a path, or a URL mirrored locally), and reading
it through git objects, never touching a working tree."""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from kbo.config import Config
from kbo.errors import InfraError, UserError

# The largest file of debian/ read from git objects, and the most read at once: the
# files planning reads (the changelog, config defines) are KiBs, each read whole.
MAX_BLOB = 64 << 20
MAX_BLOBS = 256 << 20
_URL = re.compile(r"^(https?|git|ssh|file)://|^[\w.-]+@[\w.-]+:")


def is_url(source: str) -> bool:
    return bool(_URL.match(source))


def source_id(source: str) -> str:
    """How jobs name their source: the URL, or the repository's absolute path."""
    return source if is_url(source) else str(Path(source).expanduser().resolve())


def local_repository(
    source: str, config: Config, *, fetch: bool = True, mirrors: Path | None = None
) -> Path:
    """A local git repository for SOURCE: the path itself, or a mirror of the URL (under
    ``mirrors``, by default the state directory's), fetched now unless ``fetch`` is False
    and a mirror exists."""
    if not is_url(source):
        path = Path(source).expanduser()
        if not path.exists():
            raise UserError("packaging repository does not exist", source)
        if not is_repository(path):
            raise UserError("not a git repository", source)
        return path
    mirror = (mirrors or config.state_path / "repos") / (
        hashlib.sha256(source.encode()).hexdigest()[:16] + ".git"
    )
    if not mirror.exists():
        _git_network(["git", "clone", "--quiet", "--mirror", "--", source, str(mirror)], source)
    elif fetch:
        _git_network(["git", "-C", str(mirror), "fetch", "--quiet", "--prune", "origin"], source)
    return mirror


def _git_network(argv: list[str], source: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        raise InfraError("git timed out reaching the repository", source) from None
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise InfraError(f"cannot fetch: {lines[-1] if lines else 'git failed'}", source)


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", "-C", str(repo), *args], input=stdin, capture_output=True, check=False
        )
    except FileNotFoundError:
        raise InfraError("git is not installed") from None


def is_ancestor(repo: Path, commit: str, rev: str) -> bool:
    """Whether ``commit`` is ``rev`` or one of its ancestors."""
    tip = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    if tip.returncode != 0:
        return False
    found = _git(repo, "merge-base", "--is-ancestor", commit, tip.stdout.decode().strip())
    return found.returncode == 0


def is_repository(path: Path) -> bool:
    return path.is_dir() and _git(path, "rev-parse", "--git-dir").returncode == 0


def is_bare(path: Path) -> bool:
    """A repository without a working tree (a mirror, a server's repository)."""
    result = _git(path, "rev-parse", "--is-bare-repository")
    return result.returncode == 0 and result.stdout.strip() == b"true"


def resolve(repo: Path, rev: str) -> str:
    """The full commit id of ``rev``, or a UserError naming the repository."""
    if rev.startswith("-"):
        raise UserError(f"invalid revision {rev!r}", str(repo))
    result = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    if result.returncode != 0:
        raise UserError(f"revision {rev!r} does not exist", str(repo))
    return result.stdout.decode().strip()


def prefix(repo: Path) -> str:
    """Where ``repo`` (maybe a subdirectory) sits inside its top-level tree, '' or 'x/y/'."""
    return _git(repo, "rev-parse", "--show-prefix").stdout.decode().strip()


def read_blobs(
    repo: Path, commit: str, under: str, want: Callable[[str], bool]
) -> dict[str, bytes]:
    """Contents of the files below ``under`` at ``commit`` whose paths ``want`` accepts.

    One ``ls-tree`` and one ``cat-file --batch``, however many files: the 6.1 tree
    has about a hundred ``defines`` files. A commit is hostile, and its blobs are read
    whole: the sizes ``ls-tree`` gives are checked first, none over ``MAX_BLOB``.
    """
    listing = _git(repo, "ls-tree", "-r", "-l", "-z", "--full-tree", commit, "--", under)
    if listing.returncode != 0:
        raise InfraError(f"git ls-tree failed: {listing.stderr.decode().strip()}", str(repo))
    wanted: dict[str, str] = {}
    total = 0
    for record in listing.stdout.split(b"\0"):
        if not record:
            continue
        meta, path = record.decode().split("\t", 1)
        _mode, kind, sha, size = meta.split()
        if kind == "blob" and want(path):
            if int(size) > MAX_BLOB:
                raise UserError(
                    f"{path} is {size} bytes; kbo reads no file over {MAX_BLOB >> 20} MiB",
                    f"{repo} at {commit[:12]}",
                )
            wanted[sha] = path
            total += int(size)
    if total > MAX_BLOBS:
        raise UserError(
            f"the files kbo reads below {under} take {total} bytes, over {MAX_BLOBS >> 20} MiB",
            f"{repo} at {commit[:12]}",
        )
    if not wanted:
        return {}
    batch = _git(repo, "cat-file", "--batch", stdin="".join(f"{s}\n" for s in wanted).encode())
    if batch.returncode != 0:
        raise InfraError(f"git cat-file failed: {batch.stderr.decode().strip()}", str(repo))
    return _split_batch(batch.stdout, wanted)


def _split_batch(output: bytes, paths_by_sha: dict[str, str]) -> dict[str, bytes]:
    blobs: dict[str, bytes] = {}
    pos = 0
    while pos < len(output):
        header_end = output.index(b"\n", pos)
        sha, _kind, size = output[pos:header_end].decode().split()
        start = header_end + 1
        blobs[paths_by_sha[sha]] = output[start : start + int(size)]
        pos = start + int(size) + 1
    return blobs


def history(repo: Path, rev: str, limit: int = 10000) -> list[tuple[str, int]]:
    """(sha, commit time) along the first-parent line from ``rev``, newest first."""
    result = _git(
        repo,
        "log",
        "--first-parent",
        f"--max-count={limit}",
        "--format=%H %ct",
        "--end-of-options",
        rev,
        "--",
    )
    if result.returncode != 0:
        raise UserError(
            f"cannot read history of {rev!r}: {result.stderr.decode().strip()}", str(repo)
        )
    return [
        (sha, int(ts)) for sha, ts in (ln.split() for ln in result.stdout.decode().splitlines())
    ]


def authors(repo: Path, commits: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(author, subject) of each of these commits the repository has; the others are
    left out (a commit of a fork, or one pruned since)."""
    if not commits:
        return {}
    result = _git(
        repo,
        "log",
        "--no-walk=unsorted",
        "--ignore-missing",
        "--format=%H%x00%an%x00%s",
        "--end-of-options",
        *commits,
        "--",
    )
    found: dict[str, tuple[str, str]] = {}
    for line in result.stdout.decode("utf-8", errors="replace").splitlines():
        sha, _, rest = line.partition("\0")
        author, _, subject = rest.partition("\0")
        found[sha] = (author, subject)
    return found


def first_parent_range(repo: Path, good: str, bad: str, limit: int = 10000) -> list[str]:
    """``git rev-list --first-parent good..bad``, oldest first (``bad`` last): the commits
    of bad's first-parent line that good lacks, each a full sha."""
    result = _git(
        repo,
        "rev-list",
        "--first-parent",
        "--reverse",
        f"--max-count={limit}",
        "--end-of-options",
        f"{good}..{bad}",
        "--",
    )
    shas = result.stdout.decode().split()
    if result.returncode != 0 or not all(re.fullmatch("[0-9a-f]{40}", s) for s in shas):
        raise UserError(
            f"cannot list {good[:12]}..{bad[:12]}: {result.stderr.decode().strip()}", str(repo)
        )
    return shas


def count_commits(repo: Path, good: str, bad: str) -> int:
    """How many commits ``bad`` has that ``good`` lacks (``git rev-list --count``)."""
    result = _git(repo, "rev-list", "--count", "--end-of-options", f"{good}..{bad}", "--")
    out = result.stdout.decode().strip()
    return int(out) if result.returncode == 0 and out.isdigit() else 0
