"""What naming the commit that broke alpha costs: builds and wall time of kbo's
bisection over 8 commits after the last good build (commit 5 breaks alpha), from the
failing build's report to the verdict.

Baseline, same run, same cluster: rebuilding every commit of the range to find the
first that fails (the 7 commits before HEAD, one `kbo submit --rev` each, as a
maintainer without bisection would, or a cron that built every commit).

The builds are the stand-in recipe (tests/recipes/scripted.sh) sleeping BUILD_SECONDS
each, not kernels: the figures are kbo's overhead plus that sleep per build. Real,
with redis-server, a coordinator and one worker (one slot) for alpha, hppa and mips;
with more slots the baseline's builds could overlap, but they stay 7. Named
``bisection.py``: a script named ``bisect.py`` would shadow the standard library's
``bisect`` for everything it imports.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kbo.orchestrator.bisect import most_builds  # noqa: E402
from tests.services import RedisServer, wait_for  # noqa: E402
from tests.test_bisect import bisect_cluster, history  # noqa: E402

BUILD_SECONDS = os.environ.get("BUILD_SECONDS", "2")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kbo-bench-bisect-") as tmp:
        root = Path(tmp)
        root.chmod(0o711)  # the worker runs as its own user, and reads the recipes here
        redis = RedisServer(root / "redis")
        redis.start()
        (root / "kbo").mkdir(mode=0o711)
        cluster = bisect_cluster(root / "kbo", redis.url)  # its SMTP server is never up
        try:
            result = cluster.kbo("snapshot", "--wait", timeout=300)
            assert result.returncode == 0, result.stderr
            commits = history(cluster)
            (cluster.control / "sleep").write_text(BUILD_SECONDS)

            started = time.perf_counter()
            cluster.kbo("submit", "--arch", "alpha", "--wait", timeout=300)
            failed_at = time.perf_counter()
            row = wait_for(
                lambda: cluster.query(
                    "SELECT steps, culprit, ended_at FROM bisections WHERE state != 'running'"
                ),
                600,
                "the bisection",
            )[0]
            bisected = time.perf_counter()
            assert row["culprit"] == commits[4], row
            builds, bisect_wall = int(row["steps"]), bisected - failed_at

            # The same recipe under another name: jobs of their own, none reused.
            recipes = root / "kbo/bisect-recipes"
            (recipes / "linear.toml").write_text((recipes / "bisect-script.toml").read_text())
            linear_started = time.perf_counter()
            first_bad = None
            for n, sha in enumerate(commits[:-1], 1):
                run = cluster.submit(
                    "--rev", sha, "--recipe", "linear", "--arch", "alpha", "--wait", timeout=300
                )
                (job,) = run["jobs"]
                if job["state"] == "failed" and first_bad is None:
                    first_bad = n
            linear_wall = time.perf_counter() - linear_started
            assert first_bad == 5, first_bad
        finally:
            cluster.stop_all()
            redis.stop()
    print(f"8 commits after the last good build, commit 5 breaks alpha; {BUILD_SECONDS} s/build")
    print(f"  the failing build at HEAD:           {failed_at - started:6.1f} s")
    print(
        f"  bisection:   {builds} builds (ceil(log2(8)) = {most_builds(8)}),"
        f" {bisect_wall:6.1f} s from the failure to the verdict"
    )
    print(f"  every commit: 7 builds, {linear_wall:6.1f} s (the baseline)")
    print(f"  bisection takes {bisect_wall / linear_wall:.0%} of the baseline's wall time")


if __name__ == "__main__":
    main()
