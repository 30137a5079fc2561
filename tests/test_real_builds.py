"""Real Debian kernel builds on this amd64 host: cross toolchains, QEMU user emulation and
the real linux 6.1.176 sources from Debian's archive. Minutes, not seconds. The workers
run as the unprivileged worker user from the start, as deploy/'s unit runs them."""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from debian.debfile import DebFile

from kbo.workers.smoke import version_code
from tests.conftest import FIXTURES, reachable_by_workers
from tests.kernel import CACHE, add_breaking_patch, commit_all, packaging_repo
from tests.services import Cluster, RedisServer, wait_for

pytestmark = pytest.mark.slow

REAL = {
    "cache_dir": str(CACHE),
    "dsc_dirs": [str(FIXTURES / "dsc")],
    "lease_seconds": 60,
    "default_recipe": "kbuild-smoke",
    "tracked_arches": ["alpha", "hppa", "mips"],
}
DEFAULT_FLAVOURS = "alpha-smp,parisc,4kc-malta"
BUILD_TIMEOUT = 1800


@pytest.fixture(scope="module")
def kernel_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return packaging_repo(reachable_by_workers(tmp_path_factory.mktemp("packaging")) / "linux")


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer, kernel_repo: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path / "kbo", broker_url=redis_server.url, repo=kernel_repo, **REAL)
    cluster.start_coordinator()
    yield cluster
    cluster.stop_all()


def log_of(job: dict[str, object]) -> str:
    with gzip.open(str(job["log_path"]), "rt", errors="replace") as f:
        return f.read()


def test_kbuild_smoke_gives_real_debs_for_alpha_hppa_and_mips(cluster: Cluster) -> None:
    cluster.start_worker("w-cross", "alpha,hppa,mips", unprivileged=True)
    run = cluster.submit(
        "--recipe", "kbuild-smoke", "--arch", "alpha,hppa,mips", "--wait", timeout=BUILD_TIMEOUT
    )
    assert run["succeeded"] is True, [(j["arch"], j["first_error"]) for j in run["jobs"]]
    jobs = {job["arch"]: job for job in run["jobs"]}
    assert sorted(jobs) == ["alpha", "hppa", "mips"]
    for arch, job in jobs.items():
        assert job["executor"] == "cross"
        images = [
            a
            for a in job["artifacts"]
            if a["name"].startswith("linux-image-") and a["name"].endswith(".deb")
        ]
        assert len(images) == 1
        assert DebFile(images[0]["path"]).debcontrol()["Architecture"] == arch
        log = log_of(job)
        assert "== kbo step qemu-smoke ==" in log
        assert f"kbo-smoke {version_code('6.1.176')}" in log
    assert any("reusing the tree prepared for" in log_of(job) for job in jobs.values())
    status = cluster.status()
    assert {arch: s["state"] for arch, s in status.items()} == dict.fromkeys(jobs, "OK")
    assert all(s["last_good"]["commit"] == run["commit_sha"] for s in status.values())


def test_linux_recipe_setup_stage_for_the_default_flavours(cluster: Cluster) -> None:
    cluster.start_worker("w-cross", "alpha,hppa,mips", unprivileged=True)
    run = cluster.submit(
        "--recipe",
        "linux-setup",
        "--arch",
        "alpha,hppa,mips",
        "--flavour",
        DEFAULT_FLAVOURS,
        "--wait",
        timeout=BUILD_TIMEOUT,
    )
    assert run["succeeded"] is True, [(j["arch"], j["first_error"]) for j in run["jobs"]]
    assert len(run["jobs"]) == 3
    for job in run["jobs"]:
        key = job["target"].removeprefix("binary-arch_")
        log = log_of(job)
        assert f"make -f debian/rules.gen setup_{key}" in log
        assert "KCONFIG='debian/config/config " in log  # the flavour's Debian config
        assert "the build did not produce" not in log  # its .config was written
        assert "== kbo stage check Build-Depends ==" in log


def test_linux_libc_dev_is_built_by_debians_rules_for_alpha_hppa_and_mips(cluster: Cluster) -> None:
    """binary-arch_<arch>_real_libc-dev of the real packaging, cross, with the `linux`
    recipe's profiles and dpkg-checkbuilddeps: linux-libc-dev_<version>_<arch>.deb."""
    cluster.start_worker("w-cross", "alpha,hppa,mips", unprivileged=True)
    run = cluster.submit(
        "--recipe", "linux-libc-dev", "--arch", "alpha,hppa,mips", "--wait", timeout=BUILD_TIMEOUT
    )
    assert run["succeeded"] is True, [(j["arch"], j["first_error"]) for j in run["jobs"]]
    for job in run["jobs"]:
        arch = job["arch"]
        (deb,) = [a for a in job["artifacts"] if a["name"].endswith(".deb")]
        assert deb["name"] == f"linux-libc-dev_6.1.176-1_{arch}.deb"
        control = DebFile(deb["path"]).debcontrol()
        assert (control["Package"], control["Architecture"]) == ("linux-libc-dev", arch)
        log = log_of(job)
        assert f"make -f debian/rules.gen binary-arch_{arch}_real_libc-dev" in log
        assert "-P cross,nodoc,pkg.linux.nokerneldbg,pkg.linux.notools" in log
        assert "kbo: every Build-Depends is installed" in log
    hppa = log_of(next(j for j in run["jobs"] if j["arch"] == "hppa"))
    assert "though the packaging does not say :native: binutils-hppa64-linux-gnu" in hppa


def test_a_host_lacking_one_build_depends_waits_and_builds_once_it_is_back(
    cluster: Cluster,
) -> None:
    """kernel-wedge removed from this host: the job is dep-wait naming it, never failed.
    Installed again, the same job, given back, builds."""
    cluster.start_worker("w-cross", "alpha", unprivileged=True)
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "kernel-wedge"]
    subprocess.run(["dpkg", "--remove", "kernel-wedge"], capture_output=True, check=True)
    try:
        run = cluster.submit(
            "--recipe", "linux-libc-dev", "--arch", "alpha", "--wait", timeout=BUILD_TIMEOUT
        )
        (job,) = run["jobs"]
        assert job["state"] == "dep-wait", job
        assert job["first_error"] == "missing Build-Depends: kernel-wedge (>= 2.102~)"
    finally:
        subprocess.run(apt, capture_output=True, check=True)
    assert cluster.kbo("retry", str(job["id"])).returncode == 0
    ended = wait_for(
        lambda: cluster.query(
            "SELECT state, current_attempt FROM jobs WHERE id = ? AND state NOT IN"
            " ('queued', 'running')",
            job["id"],
        ),
        BUILD_TIMEOUT,
        "the job to build again",
    )
    # Attempt 2 is the one the dep-wait queued for later; the give-back is attempt 3.
    assert tuple(ended[0]) == ("succeeded", 3), tuple(ended[0])
    assert cluster.query("SELECT COUNT(*) FROM outbox")[0][0] == 0  # no author hears of it


def test_qemu_executor_builds_natively_in_a_mipsel_chroot(cluster: Cluster) -> None:
    cluster.start_worker("w-qemu", "mipsel", "--executor", "qemu", unprivileged=True)
    run = cluster.submit(
        "--recipe",
        "linux-setup",
        "--arch",
        "mipsel",
        "--flavour",
        "4kc-malta",
        "--wait",
        timeout=3600,
    )
    job = run["jobs"][0]
    assert run["succeeded"] is True, job["first_error"]
    assert job["executor"] == "qemu"
    log = log_of(job)
    assert "make -f debian/rules.gen setup_mipsel_none_4kc-malta" in log
    assert "DEB_BUILD_PROFILES" not in log  # native inside the chroot: not a cross build


def test_a_patch_breaking_alpha_fails_alpha_only_and_names_file_and_line(
    tmp_path: Path, redis_server: RedisServer, kernel_repo: Path
) -> None:
    repo = tmp_path / "linux"
    subprocess.run(["git", "clone", "-q", str(kernel_repo), str(repo)], check=True)
    add_breaking_patch(
        repo, "arch/alpha/kernel/setup.c", 30, '#error "kbo test: this commit breaks alpha"'
    )
    cluster = Cluster(tmp_path / "kbo", broker_url=redis_server.url, repo=repo, **REAL)
    try:
        cluster.start_coordinator()
        cluster.start_worker("w-cross", "alpha,hppa,mips", unprivileged=True)
        run = cluster.submit(
            "--recipe", "kbuild-smoke", "--arch", "alpha,hppa,mips", "--wait", timeout=BUILD_TIMEOUT
        )
        states = {job["arch"]: job["state"] for job in run["jobs"]}
        assert states == {"alpha": "failed", "hppa": "succeeded", "mips": "succeeded"}
        alpha = next(job for job in run["jobs"] if job["arch"] == "alpha")
        assert "arch/alpha/kernel/setup.c:31:" in alpha["first_error"]
        assert "kbo test: this commit breaks alpha" in alpha["first_error"]
        status = cluster.status()
        assert (status["alpha"]["state"], status["hppa"]["state"]) == ("FAILING", "OK")
    finally:
        cluster.stop_all()


def test_the_dashboard_follows_a_patch_breaking_alpha_to_its_first_error(
    tmp_path: Path, redis_server: RedisServer, kernel_repo: Path
) -> None:
    """tests/test_dashboard.py's browser test on a real kbuild-smoke build: Debian's
    chromium watches the grid while a quilt patch breaks alpha and hppa builds, then
    follows alpha's cell to the log page, its first error marked."""
    from tests.browser import chromium, state_of
    from tests.services import free_port, wait_for
    from tests.test_web import Web

    repo = tmp_path / "linux"
    subprocess.run(["git", "clone", "-q", str(kernel_repo), str(repo)], check=True)
    add_breaking_patch(
        repo, "arch/alpha/kernel/setup.c", 30, '#error "kbo test: this commit breaks alpha"'
    )
    port = free_port()
    cluster = Cluster(
        tmp_path / "kbo", broker_url=redis_server.url, repo=repo, web_port=port, **REAL
    )
    web = Web(cluster, port)
    try:
        web.start()
        cluster.start_coordinator()
        cluster.start_worker("w-cross", "alpha,hppa", unprivileged=True)
        with chromium(tmp_path) as browser:
            browser.get(web.url + "/")
            assert state_of(browser, "#arch-alpha td.arch") == "NEVER"
            browser.execute_script("window.kboNotReloaded = true;")
            answer = web.submit(arches=["alpha", "hppa"], recipe="kbuild-smoke")
            assert answer.status_code == 201, answer.text
            for arch, state in (("alpha", "FAILING"), ("hppa", "OK")):
                wait_for(
                    lambda arch=arch, state=state: (
                        state_of(browser, f"#arch-{arch} td.arch") == state
                    ),
                    BUILD_TIMEOUT,
                    f"{arch} to be {state} on the grid",
                )
            assert browser.execute_script("return window.kboNotReloaded === true;")
            browser.find_element("css selector", "#arch-alpha .cell a.log").click()
            wait_for(lambda: "/attempts/" in browser.current_url, 30, "the log page")
            marked = browser.find_element("id", "first-error")
            assert "arch/alpha/kernel/setup.c:31:" in marked.text
            assert "kbo test: this commit breaks alpha" in marked.text
    finally:
        cluster.stop_all()


def test_a_bisection_of_real_builds_names_the_commit_whose_patch_breaks_alpha(
    tmp_path: Path, redis_server: RedisServer, kernel_repo: Path
) -> None:
    """Four real alpha builds in all: the last good commit, HEAD, and the bisection's two
    steps over the three commits between them, the middle one adding a quilt patch that
    breaks alpha's compile."""
    repo = tmp_path / "linux"
    subprocess.run(["git", "clone", "-q", str(kernel_repo), str(repo)], check=True)
    settings = REAL | {"bisect_max_steps": 8}
    cluster = Cluster(tmp_path / "kbo", broker_url=redis_server.url, repo=repo, **settings)
    try:
        cluster.start_coordinator()
        cluster.start_worker("w-cross", "alpha", unprivileged=True)
        good = cluster.submit("--arch", "alpha", "--wait", timeout=BUILD_TIMEOUT)
        assert good["succeeded"] is True, [j["first_error"] for j in good["jobs"]]
        notes = repo / "debian/kbo-test-notes"
        notes.write_text("a harmless change\n")
        first = commit_all(repo, "Add notes")
        culprit = add_breaking_patch(
            repo, "arch/alpha/kernel/setup.c", 30, '#error "kbo test: this commit breaks alpha"'
        )
        notes.write_text("a harmless change\nand another\n")
        commit_all(repo, "More notes")
        bad = cluster.submit("--arch", "alpha", "--wait", timeout=BUILD_TIMEOUT)
        assert bad["jobs"][0]["state"] == "failed"
        row = wait_for(
            lambda: cluster.query(
                "SELECT state, steps, culprit FROM bisections WHERE state != 'running'"
            ),
            2 * BUILD_TIMEOUT,
            "the bisection",
        )[0]
        assert tuple(row) == ("found", 2, culprit)
        steps = cluster.query(
            "SELECT commit_sha, state FROM jobs WHERE commit_sha IN (?, ?)", first, culprit
        )
        assert {(r[0], r[1]) for r in steps} == {(first, "succeeded"), (culprit, "failed")}
    finally:
        cluster.stop_all()
