"""One flavour of Debian's `linux` package built for real through kbo, cross, and checked.

    .venv/bin/python benchmarks/linux_package.py ARCH FLAVOUR    (e.g. alpha alpha-generic)

The `linux` recipe runs the packaging's own setup_ and binary-arch_ targets for
<arch>_none_<flavour> with the profiles it records (cross nodoc pkg.linux.nokerneldbg
pkg.linux.notools) and DEB_BUILD_OPTIONS parallel=<CPUs>, through a real coordinator,
worker and redis-server, on the shared linux 6.1.176-1 sources and download cache of the
real-build tests. A flavour takes an hour or more on two cores: run it in the background
(nohup ... &). It prints a progress line every minute, then the packages with their
sizes and the python-debian checks, the wall time and the peak disk use (the build
filesystem's free space, sampled each minute, against its start).

Baseline, same run: the linux-libc-dev recipe for the same arch (Debian's rules, no
kernel build), so the figure says what the flavour's kernel costs on top.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from debian.debfile import DebFile  # noqa: E402

from tests.conftest import FIXTURES, reachable_by_workers  # noqa: E402
from tests.kernel import CACHE, packaging_repo  # noqa: E402
from tests.services import Cluster, RedisServer  # noqa: E402

ABINAME = "6.1.0-50"
TIMEOUT = 6 * 3600


def follow(cluster: Cluster, args: list[str], free_at_start: int) -> tuple[dict[str, Any], int]:
    """Submit and wait for the run to end, printing a line a minute; its one job and the
    peak disk use."""
    result: list[dict[str, Any]] = []
    waiter = threading.Thread(
        target=lambda: result.append(cluster.submit(*args, "--wait", timeout=TIMEOUT)),
        daemon=True,
    )
    started, peak = time.monotonic(), 0
    waiter.start()
    while waiter.is_alive():
        peak = max(peak, free_at_start - shutil.disk_usage(CACHE).free)
        rows = cluster.query(
            "SELECT j.state, a.stage FROM jobs j JOIN attempts a ON a.id = j.current_attempt"
            " ORDER BY j.id DESC LIMIT 1"
        )
        state, stage = (rows[0][0], rows[0][1]) if rows else ("queued", None)
        minutes = (time.monotonic() - started) / 60
        print(f"  {minutes:5.1f} min  {state:10} {stage or ''}  disk +{peak >> 20} MiB", flush=True)
        waiter.join(60)
    if not result:
        raise RuntimeError("the submission ended without a run")
    return result[0]["jobs"][0], peak


def check(deb: Path, arch: str, flavour: str) -> list[str]:
    """The checks the issue asks for, each as a line: what was found."""
    package = DebFile(str(deb))
    control = package.debcontrol()
    names = package.data.tgz().getnames()
    lines = [f"Package {control['Package']}, Architecture {control['Architecture']}"]
    assert control["Architecture"] == arch, control["Architecture"]
    if control["Package"].startswith("linux-image-"):
        assert control["Package"] == f"linux-image-{ABINAME}-{flavour}", control["Package"]
        kernels = [n for n in names if n.lstrip("./").startswith("boot/vmlinu")]
        modules = [n for n in names if f"lib/modules/{ABINAME}-{flavour}/" in n]
        assert kernels and modules, (kernels, len(modules))
        lines.append(f"{kernels[0]}; {len(modules)} files under /lib/modules/{ABINAME}-{flavour}")
    return lines


def main(arch: str, flavour: str) -> None:
    with tempfile.TemporaryDirectory(prefix="kbo-bench-linux-") as tmp_name:
        tmp = reachable_by_workers(Path(tmp_name))
        redis_server = RedisServer(tmp / "redis")
        redis_server.start()
        repo = packaging_repo(tmp / "linux")
        cluster = Cluster(
            tmp / "kbo",
            broker_url=redis_server.url,
            repo=repo,
            cache_dir=str(CACHE),
            dsc_dirs=[str(FIXTURES / "dsc")],
            lease_seconds=120,
            tracked_arches=[arch],
        )
        try:
            cluster.start_coordinator()
            cluster.start_worker("w-cross", arch, unprivileged=True)
            started = time.monotonic()
            base = cluster.submit(
                "--recipe", "linux-libc-dev", "--arch", arch, "--wait", timeout=TIMEOUT
            )
            baseline = time.monotonic() - started
            assert base["succeeded"], base["jobs"][0]["first_error"]
            print(f"baseline: linux-libc-dev for {arch} in {baseline:.0f} s", flush=True)
            free = shutil.disk_usage(CACHE).free
            started = time.monotonic()
            args = ["--recipe", "linux", "--arch", arch, "--flavour", flavour]
            job, peak = follow(cluster, args, free)
            wall = time.monotonic() - started
            print(
                f"\n{arch}_none_{flavour}: {job['state']} in {wall / 60:.1f} min, "
                f"peak disk +{peak / 2**30:.1f} GiB; first error: {job['first_error']}"
            )
            for artifact in job["artifacts"]:
                print(f"  {artifact['name']}  {artifact['size'] / 2**20:.1f} MiB")
                if artifact["name"].endswith(".deb"):
                    for line in check(Path(artifact["path"]), arch, flavour):
                        print(f"    {line}")
            print(f"\nagainst linux-libc-dev alone: {wall / baseline:.0f}x its {baseline:.0f} s")
        finally:
            cluster.stop_all()
            redis_server.stop()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: benchmarks/linux_package.py ARCH FLAVOUR")
    main(sys.argv[1], sys.argv[2])
