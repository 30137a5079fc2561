"""Real build timings on this host, through kbo (Redis, real workers), on linux 6.1.176:

1. kbuild-smoke wall time per arch (cross, cold ccache): alpha, hppa, mips, mipsel;
2. the same alpha build at the next commit with a warm ccache, against the cold one;
3. the mipsel tinyconfig kernel emulated in a mipsel chroot (qemu), against cross.

Each figure is one job's wall time from claim to report (preparing the tree, shared
per commit, is reported apart). Set QEMU=0 to skip the emulated build (about 10 min).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.kernel import CACHE, commit_all, packaging_repo  # noqa: E402
from tests.services import Cluster, RedisServer  # noqa: E402

ARCHES = ("alpha", "hppa", "mips", "mipsel")
TIMEOUT = 7200


def step_times(log_path: str) -> dict[str, float]:
    with gzip.open(log_path, "rt", errors="replace") as f:
        return {
            m[1]: float(m[2]) for m in re.finditer(r"kbo: step (\S+) took ([\d.]+) s", f.read())
        }


def durations(
    cluster: Cluster, run: dict[str, object]
) -> dict[str, tuple[float, dict[str, float]]]:
    jobs = run["jobs"]
    assert isinstance(jobs, list)
    found = {}
    for job in jobs:
        assert job["state"] == "succeeded", (job["arch"], job["first_error"])
        row = cluster.query(
            "SELECT a.started_at, a.ended_at FROM attempts a"
            " JOIN jobs j ON j.current_attempt = a.id"
            " WHERE j.arch = ? AND j.commit_sha = ? AND j.recipe = 'kbuild-smoke'",
            job["arch"],
            run["commit_sha"],
        )[0]
        found[job["arch"]] = (row["ended_at"] - row["started_at"], step_times(job["log_path"]))
    return found


def report(label: str, seconds: float, steps: dict[str, float]) -> None:
    detail = ", ".join(f"{k} {v:.0f} s" for k, v in steps.items())
    print(f"{label:40} {seconds:7.1f} s   ({detail})")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kbo-bench-builds-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o711)  # the worker runs as its own user, and reads the repository here
        redis_server = RedisServer(tmp / "redis")
        redis_server.start()
        repo = packaging_repo(tmp / "linux")
        shutil.rmtree(CACHE / "ccache", ignore_errors=True)  # a cold compiler cache
        cluster = Cluster(
            tmp / "kbo",
            broker_url=redis_server.url,
            repo=repo,
            cache_dir=str(CACHE),
            dsc_dirs=[str(ROOT.parent / "shared/fixtures/dsc")],
            lease_seconds=60,
            tracked_arches=list(ARCHES),
        )
        try:
            cluster.start_coordinator()
            cluster.start_worker("w-cross", ",".join(ARCHES), "--executor", "cross")
            print("kbuild-smoke, linux 6.1.176, cross, cold ccache, one build at a time, -j2:")
            cold = cluster.submit(
                "--recipe", "kbuild-smoke", "--arch", ",".join(ARCHES), "--wait", timeout=TIMEOUT
            )
            times = durations(cluster, cold)
            for arch in ARCHES:
                report(f"  {arch}", *times[arch])

            (repo / "debian" / "changelog").write_text(
                (repo / "debian" / "changelog")
                .read_text()
                .replace(
                    "  * New upstream stable update:",
                    "  * Rebuild.\n  * New upstream stable update:",
                    1,
                )
            )
            commit_all(repo, "Next commit")
            warm = durations(
                cluster,
                cluster.submit(
                    "--recipe", "kbuild-smoke", "--arch", "alpha", "--wait", timeout=TIMEOUT
                ),
            )
            print("\nalpha at the next commit, warm ccache, fixed KBUILD_BUILD_TIMESTAMP:")
            report("  cold (first commit)", *times["alpha"])
            report("  warm (next commit)", *warm["alpha"])
            build = "bindeb-pkg"
            print(
                f"  ratio cold / warm, {build} step: "
                f"{times['alpha'][1][build] / warm['alpha'][1][build]:.1f}x; "
                f"whole job: {times['alpha'][0] / warm['alpha'][0]:.1f}x"
            )

            if os.environ.get("QEMU", "1") != "0":
                cluster.kill("w-cross")
                cluster.start_worker("w-qemu", "mipsel", "--executor", "qemu")
                # At the next commit: the first commit's mipsel job is done, and an
                # emulated build uses no ccache, so it compiles cold like the cross one.
                rerun = cluster.submit(
                    "--recipe", "kbuild-smoke", "--arch", "mipsel", "--wait", timeout=TIMEOUT
                )
                qemu = durations(cluster, rerun)
                print("\nmipsel tinyconfig kernel:")
                report("  qemu (mipsel chroot, emulated)", *qemu["mipsel"])
                report("  cross", *times["mipsel"])
                print(f"  ratio qemu / cross: {qemu['mipsel'][0] / times['mipsel'][0]:.1f}x")
        finally:
            cluster.stop_all()
            redis_server.stop()


if __name__ == "__main__":
    main()
