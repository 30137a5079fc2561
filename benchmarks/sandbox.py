"""What a sandboxed build step costs to start, before and after bubblewrap, in one run.

- bare: ``true`` with no sandbox at all (the floor);
- before: kbo's earlier sandbox (util-linux ``unshare`` plus its own Python init that
  assembled a root with ``pivot_root``), taken from git at BEFORE and run as root, as
  it had to be;
- after: ``bwrap`` as the unprivileged worker user, without and with the source overlay
  (``unshare`` plus the mount helper first), and with the limits (``prlimit``).

Run as root on a host set up by ./dev (the ``kbo`` user exists). Prints the median and
the 90th percentile of N starts each.
"""

from __future__ import annotations

import json
import os
import pwd
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kbo.workers import sandbox  # noqa: E402

BEFORE = os.environ.get("BEFORE", "0aa6733")  # the last commit with the old sandbox
N = int(os.environ.get("N", "40"))
USER = "kbo"


def timed(run: Callable[[], None]) -> list[float]:
    run()  # warm the page cache
    times = []
    for _ in range(N):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def report(label: str, times: list[float], floor: float | None = None) -> float:
    median = statistics.median(times)
    p90 = sorted(times)[int(len(times) * 0.9) - 1]
    extra = f"  (+{(median - floor) * 1000:5.1f} ms over bare)" if floor is not None else ""
    print(f"{label:<52} median {median * 1000:6.1f} ms  p90 {p90 * 1000:6.1f} ms{extra}")
    return median


def as_user(argv: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups", "--", *argv]


def old_sandbox(tmp: Path) -> list[str]:
    """The argv of the old sandbox for ``true``, from its source at BEFORE."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BEFORE}:workers/sandbox.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = tmp / "old_sandbox.py"
    module.write_text(source)
    (tmp / "stage").mkdir()
    spec = json.dumps(
        {
            "staging": str(tmp / "stage"),
            "chroot": None,
            "overlays": [],
            "binds": [[str(tmp / "build"), "/build", True]],
            "network": False,
            "uid": None,
            "gid": None,
            "workdir": "/build",
            "env": {},
        }
    )
    namespaces = ["--mount", "--pid", "--fork", "--ipc", "--uts", "--net"]
    return ["unshare", *namespaces, "--", sys.executable, str(module), spec, "/bin/true"]


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("benchmarks/sandbox.py: run it as root (the old sandbox needed root)")
    user = pwd.getpwnam(USER)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as scratch:
        tmp = Path(scratch)
        tmp.chmod(0o755)
        for name in ("build", "lower", "upper", "work", "merged"):
            (tmp / name).mkdir()
            os.chown(tmp / name, user.pw_uid, user.pw_gid)
        etc = sandbox.write_etc(tmp / "etc")
        plain = sandbox.Spec(etc=str(etc), binds=((str(tmp / "build"), "/build", True),))
        lower, upper, work, merged = (str(tmp / n) for n in ("lower", "upper", "work", "merged"))
        overlay = sandbox.Overlay(lower, upper, work, merged, "/build/src")
        full = sandbox.Spec(
            etc=str(etc),
            overlays=(overlay,),
            binds=plain.binds,
            limits=sandbox.Limits(8 << 30, 2048, 40 << 30),
        )

        def run(argv: list[str]) -> Callable[[], None]:
            return lambda: subprocess.run(argv, check=True)

        print(f"{N} starts of a step running /bin/true, each way:")
        floor = report("bare (no sandbox)", timed(run(["/bin/true"])))
        before = report(
            f"before: unshare + pivot_root init, root ({BEFORE})",
            timed(run(old_sandbox(tmp))),
            floor,
        )
        report("after: bwrap, kbo user", timed(run(as_user(sandbox.wrap(["true"], plain)))), floor)
        after = report(
            "after: bwrap + overlay + limits, kbo user",
            timed(run(as_user(sandbox.wrap(["true"], full)))),
            floor,
        )
        print(f"after/before (a build step with the source overlay): {after / before:.2f}x")


if __name__ == "__main__":
    main()
