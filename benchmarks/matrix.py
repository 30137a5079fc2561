"""Time ``kbo matrix`` on the 6.1 tree (56,000-line changelog plus changelog.old).

Baselines in the same run: the bare interpreter start, and the import of kbo's CLI,
so the figure shows what reading the tree itself costs.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT.parent / "shared" / "fixtures" / "linux-6.1.176-1"
KBO = Path(sys.executable).parent / "kbo"
RUNS = 20


def wall(argv: Sequence[str | Path], runs: int = RUNS) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(a) for a in argv], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def report(label: str, times: list[float]) -> None:
    print(
        f"{label:44} median {statistics.median(times) * 1000:7.1f} ms"
        f"   min {min(times) * 1000:7.1f} ms   ({len(times)} runs)"
    )


def in_process(runs: int = RUNS) -> list[float]:
    sys.path.insert(0, str(ROOT))
    from kbo.packaging.package import read_package

    times = []
    for _ in range(runs):
        start = time.perf_counter()
        read_package(str(TREE))
        times.append(time.perf_counter() - start)
    return times


def git_repo(tmp: Path) -> Path:
    repo = tmp / "linux"
    shutil.copytree(TREE / "debian", repo / "debian")
    env = ["-c", "user.name=kbo", "-c", "user.email=kbo@localhost"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", *env, "-C", str(repo), "commit", "-qm", "import"], check=True)
    return repo


def main() -> None:
    lines = sum(1 for _ in (TREE / "debian/changelog").open()) + sum(
        1 for _ in (TREE / "debian/changelog.old").open()
    )
    print(f"linux 6.1.176-1: {lines} changelog lines, 50 jobs\n")
    report("baseline: python3 -c pass", wall([sys.executable, "-c", "pass"]))
    report("baseline: import kbo.cli", wall([sys.executable, "-c", "import kbo.cli"]))
    report("kbo matrix TREE --json (process)", wall([KBO, "matrix", TREE, "--json"]))
    report("kbo matrix TREE (table)", wall([KBO, "matrix", TREE]))
    with tempfile.TemporaryDirectory() as tmp:
        repo = git_repo(Path(tmp))
        report(
            "kbo matrix GIT-REPO --rev HEAD --json",
            wall([KBO, "matrix", repo, "--rev", "HEAD", "--json"]),
        )
    report("read_package(TREE) in process", in_process())


if __name__ == "__main__":
    main()
