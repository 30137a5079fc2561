"""Hostile commits: each probe is a packaging commit that the real worker, running as its
unprivileged user, builds through the real recipe path (prepare, the recipe's step,
artifacts, the smoke check). Each tries one escape and says ``ESCAPED: ...`` if it
worked; each test asserts that it did not, and that the host is unchanged. Where cheap,
the same attack also runs unconfined on the host, to show that it would be seen.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kbo.workers.smoke import version_code
from tests.conftest import git, reachable_by_workers
from tests.services import Cluster, RedisServer

SECRET = "hostile-probe-secret-5d1c"  # noqa: S105 (a marker to look for, not a password)
ORIG = f"orig tarball {SECRET}\n".encode() * 100
UPSTREAM = "6.1.176"
RULES = """\
#!/usr/bin/make -f
# A stand-in for the kernel team's rules: `orig` runs the commit's debian/prepare.
orig:
\ttest -r ../linux_6.1.176.orig.tar.xz
\tif [ -f debian/prepare ]; then sh debian/prepare; fi

debian/control-real:
\t@echo "nothing to regenerate"
"""
RECIPE = """\
description = "hostile-commit probe: runs the commit's debian/probe"
scope = "arch"
needs_source = true
executors = ["native", "cross"]
ccache = true
timeout = 120
no_output_timeout = 60

[[step]]
name = "probe"
argv = ["sh", "debian/probe"]
"""
LIMITS = {"job_memory_mb": 512, "job_processes": 256, "job_disk_gb": 1}


@dataclass
class Listener:
    """A TCP server on the host's loopback that counts the connections it accepts."""

    server: socket.socket
    accepted: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.getsockname()[1])

    def serve(self) -> None:
        with contextlib.suppress(OSError):  # closed at teardown
            while True:
                connection, peer = self.server.accept()
                self.accepted.append(str(peer))
                connection.close()


@dataclass
class Probes:
    cluster: Cluster
    root: Path
    listener: Listener
    redis_port: int
    mirror_port: int
    other_job: Path  # another job's directory, planted where the worker keeps them

    @property
    def state(self) -> Path:
        return self.cluster.tmp / "state"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def commit(self, message: str, files: dict[str, str], *, trusted: bool = True) -> str:
        """A commit of ``files`` on main (the tracked branch), or on a branch of its own
        (a submitted commit outside the trust domain of the shared compiler cache)."""
        repo = self.cluster.repo
        if not trusted:
            git(repo, "checkout", "-q", "-b", f"probe-{time.monotonic_ns()}", "main")
        try:
            # Every probe is a commit of its own, even when its files are not new.
            # Each probe starts from a harmless prepare step and probe, not the last one's.
            files = {"debian/prepare": "true\n", "debian/probe": "echo PROBE-START\n"} | files
            for name, text in (files | {"debian/probe-id": f"{time.monotonic_ns()}\n"}).items():
                (repo / name).write_text(text)
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", message)
            return git(repo, "rev-parse", "HEAD")
        finally:
            git(repo, "checkout", "-q", "main")

    def build(self, sha: str, arch: str = "amd64") -> Build:
        run = self.cluster.submit(
            "--recipe", "probe", "--arch", arch, "--rev", sha, "--wait", timeout=300
        )
        assert len(run["jobs"]) == 1, run
        job = run["jobs"][0]
        with gzip.open(str(job["log_path"]), "rt", errors="replace") as f:
            log = f.read()
        return Build(job["state"], job["first_error"], log, job["artifacts"])


@dataclass(frozen=True)
class Build:
    state: str
    first_error: str | None
    log: str
    artifacts: list[dict[str, Any]]

    def assert_nothing_escaped(self) -> None:
        escaped = [line for line in self.log.splitlines() if line.startswith("ESCAPED")]
        assert escaped == [], escaped
        assert SECRET not in self.log
        assert SECRET not in (self.first_error or "")

    @property
    def probe_ran(self) -> bool:
        return "PROBE-START" in self.log


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probes]:
    root = reachable_by_workers(tmp_path_factory.mktemp("hostile"))
    pool = root / "mirror" / "pool/main/l/linux"
    pool.mkdir(parents=True)
    (pool / f"linux_{UPSTREAM}.orig.tar.xz").write_bytes(ORIG)
    handler = functools.partial(_QuietHandler, directory=str(root / "mirror"))
    mirror = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=mirror.serve_forever, daemon=True).start()
    listener = Listener(socket.create_server(("127.0.0.1", 0)))
    threading.Thread(target=listener.serve, daemon=True).start()
    redis_server = RedisServer(root / "redis")
    redis_server.start()
    recipes = root / "recipes"
    recipes.mkdir()
    (recipes / "probe.toml").write_text(RECIPE)
    cluster = Cluster(
        root / "kbo",
        broker_url=redis_server.url,
        mirror=f"http://127.0.0.1:{mirror.server_address[1]}",
        recipe_dirs=[str(recipes)],
        cache_dir=str(root / "cache"),
        smtp_password=SECRET,
        lease_seconds=30,
        **LIMITS,
    )
    # The fixture's debian/ has no rules: add a stand-in, and a harmless probe.
    (cluster.repo / "debian/rules").write_text(RULES)
    (cluster.repo / "debian/probe").write_text("echo PROBE-START\n")
    git(cluster.repo, "add", "-A")
    git(cluster.repo, "commit", "-q", "-m", "A stand-in debian/rules")
    other_job = cluster.tmp / "state/worker/builds/linux-other-job/build"
    other_job.mkdir(parents=True)
    (other_job / "secret").write_text(SECRET)
    probes = Probes(cluster, root, listener, redis_server.port, mirror.server_address[1], other_job)
    try:
        cluster.start_coordinator()
        cluster.env["KBO_PROBE_SECRET"] = SECRET  # in the worker's environment only
        cluster.start_worker("w-probe", "amd64,alpha", unprivileged=True)
        yield probes
    finally:
        cluster.stop_all()
        listener.server.close()
        mirror.shutdown()
        redis_server.stop()


def unconfined(script: str) -> str:
    """Run a probe's script on the host, as root and outside any sandbox: what it prints
    then shows that it can see an escape."""
    ran = subprocess.run(
        ["sh", "-c", script],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
        check=False,
    )
    return ran.stdout + ran.stderr


def survivors(pattern: str) -> str:
    found = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    return found.stdout


# -- reading host files --------------------------------------------------------------


def read_probe(p: Probes) -> str:
    targets = [
        "/etc/shadow",
        str(p.cluster.config),
        str(p.state / "kbo.sqlite"),
        str(p.other_job / "secret"),
        str(p.cache / "downloads" / f"linux_{UPSTREAM}.orig.tar.xz"),
        str(p.state / "worker" / "ccache.conf"),
        "/proc/1/root/etc/shadow",
    ]
    lines = ["echo PROBE-START"]
    for target in targets:
        lines.append(
            f"if head -c 100000 '{target}' >/dev/null 2>&1; then echo 'ESCAPED: read {target}'; fi"
        )
        lines.append(f"cat '{target}' 2>&1 | head -c 200")
    # PID 1 of the step's namespace is bwrap's: it must not carry the worker's environment.
    lines.append("grep -q KBO_PROBE_SECRET /proc/1/environ && echo 'ESCAPED: worker environment'")
    builds = p.other_job.parent.parent
    lines.append(f"ls '{builds}' >/dev/null 2>&1 && echo 'ESCAPED: listed {builds}'")
    return "\n".join([*lines, "true"]) + "\n"


def test_a_step_cannot_read_shadow_kbo_config_state_other_jobs_or_downloads(
    probes: Probes,
) -> None:
    script = read_probe(probes)
    build = probes.build(probes.commit("Probe: read host files", {"debian/probe": script}))
    assert build.probe_ran, build.log
    build.assert_nothing_escaped()
    assert "ESCAPED: read /etc/shadow" in unconfined(script)
    assert f"ESCAPED: read {probes.cluster.config}" in unconfined(script)
    assert SECRET in unconfined(script)


def test_the_prepare_step_cannot_read_host_files_either(probes: Probes) -> None:
    script = read_probe(probes)
    sha = probes.commit(
        "Probe: read host files from debian/rules orig",
        {"debian/prepare": script, "debian/probe": "echo PROBE-START\n"},
    )
    build = probes.build(sha)
    assert build.state == "succeeded", build.first_error
    assert build.log.count("PROBE-START") == 2  # once in prepare, once in the step
    build.assert_nothing_escaped()


# -- the network ---------------------------------------------------------------------


def test_a_step_reaches_no_listener_on_the_hosts_loopback(probes: Probes) -> None:
    ports = [probes.listener.port, probes.redis_port, probes.mirror_port]
    connect = "\n".join(
        f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 3)\""
        f" 2>/dev/null && echo 'ESCAPED: connected to port {port}'"
        for port in ports
    )
    script = f"echo PROBE-START\n{connect}\ntrue\n"
    sha = probes.commit("Probe: network", {"debian/probe": script, "debian/prepare": script})
    build = probes.build(sha)
    assert build.state == "succeeded", build.first_error
    build.assert_nothing_escaped()
    assert probes.listener.accepted == []
    assert f"ESCAPED: connected to port {probes.listener.port}" in unconfined(script)
    assert wait_for_accepted(probes.listener)


def wait_for_accepted(listener: Listener) -> bool:
    deadline = time.monotonic() + 5
    while not listener.accepted and time.monotonic() < deadline:
        time.sleep(0.1)
    accepted = bool(listener.accepted)
    listener.accepted.clear()
    return accepted


# -- writing outside the job directory -----------------------------------------------


def test_an_untrusted_commit_writes_nothing_outside_its_job_directory(probes: Probes) -> None:
    marker = "hostile-probe-marker"
    host = [
        probes.state / marker,
        probes.state / "worker" / marker,
        probes.cache / marker,
        probes.cache / "downloads" / marker,
        probes.cache / "trees" / marker,
        probes.cache / "ccache" / marker,
        probes.cluster.repo / marker,
        probes.other_job / marker,
        Path("/root") / marker,
    ]
    # The step's own /tmp and root are fresh tmpfs: writing there is allowed, but nothing
    # may reach the host's.
    its_own = [Path("/tmp") / marker, Path("/etc") / marker, Path("/") / marker]

    def touch(targets: list[str]) -> str:
        return "".join(f"touch '{t}' 2>/dev/null && echo 'ESCAPED: wrote {t}'\n" for t in targets)

    inside = [f"{d}/{marker}" for d in ("/ccache", "/usr", "/var/lib/dpkg")]
    own = f"touch /build/src/debian/{marker} && echo 'overlay: wrote {marker}'\n"
    script = "echo PROBE-START\n" + touch([*map(str, host), *inside]) + own
    script += "".join(f"touch {p} 2>/dev/null\n" for p in its_own)
    sha = probes.commit("Probe: write outside", {"debian/probe": script}, trusted=False)
    build = probes.build(sha)
    assert build.state == "succeeded", build.first_error
    assert build.probe_ran and f"overlay: wrote {marker}" in build.log  # its own upper layer
    build.assert_nothing_escaped()
    assert [p for p in [*host, *its_own] if p.exists()] == []
    # The shared prepared tree is unchanged: the write went to the job's overlay.
    assert not (probes.cache / "trees" / sha / "src/debian" / marker).exists()
    assert "ESCAPED: wrote" in unconfined(touch([str(p) for p in host]))
    for path in host:
        path.unlink(missing_ok=True)


# -- symlinks, FIFOs and devices where the worker reads ------------------------------

DEB_CONTROL = "Package: probe-ok\nVersion: 1.0\nArchitecture: amd64\nMaintainer: k <k@x>\n"


def test_symlinks_fifos_and_devices_among_the_artifacts_fail_the_build(probes: Probes) -> None:
    """Each trap under a package's name fails the build, naming it (the first in name
    order here); none is followed, waited on or copied (tests/test_job_files.py has
    each kind alone)."""
    config, db = probes.cluster.config, probes.state / "kbo.sqlite"
    script = f"""set -u
echo PROBE-START
ln -s /etc/shadow /build/shadow.changes
ln -s '{config}' /build/config.changes
ln -s '{db}' /build/state.buildinfo
ln -s '{probes.other_job}/secret' /build/other.deb
mkfifo /build/fifo.deb
mknod /build/null.udeb c 1 3 2>/dev/null && echo 'ESCAPED: made a device'
mkdir /build/dir.deb
mkdir -p pkg/DEBIAN
printf '{DEB_CONTROL}Description: a real package beside the traps\\n' > pkg/DEBIAN/control
dpkg-deb --build pkg /build/probe-ok_1.0_amd64.deb
ls -l /build
"""
    started = time.monotonic()
    build = probes.build(probes.commit("Probe: artifact traps", {"debian/probe": script}))
    assert time.monotonic() - started < 120
    assert build.state == "failed"
    assert build.first_error == "config.changes is a symlink, not a regular file"
    build.assert_nothing_escaped()
    stored = probes.state / "worker" / "artifacts"
    assert SECRET.encode() not in b"".join(p.read_bytes() for p in stored.rglob("*") if p.is_file())


def test_a_deb_whose_control_member_is_a_symlink_to_a_host_file(probes: Probes) -> None:
    script = f"""set -eu
echo PROBE-START
mkdir -p c d
ln -s '{probes.cluster.config}' c/control
printf '2.0\\n' > debian-binary
tar -C c -czf control.tar.gz ./control
tar -C d -czf data.tar.gz .
ar rc /build/evil_1.0_amd64.deb debian-binary control.tar.gz data.tar.gz
"""
    build = probes.build(probes.commit("Probe: deb control symlink", {"debian/probe": script}))
    assert build.state == "failed"
    assert build.first_error is not None
    assert build.first_error.startswith("evil_1.0_amd64.deb is not a valid Debian package")
    build.assert_nothing_escaped()


@pytest.mark.parametrize(
    ("trap", "command"),
    [
        ("fifo", "rm debian/control; mkfifo debian/control"),
        ("symlink to /etc/shadow", "rm debian/control; ln -s /etc/shadow debian/control"),
        ("symlink to kbo.toml", "rm debian/control; ln -s {config} debian/control"),
        ("fifo rules.gen", "rm debian/rules.gen; mkfifo debian/rules.gen"),
    ],
)
def test_the_prepare_step_replacing_debian_control_fails_clearly(
    probes: Probes, trap: str, command: str
) -> None:
    prepare = "echo PROBE-START\n" + command.format(config=probes.cluster.config) + "\n"
    sha = probes.commit(f"Probe: debian/control as a {trap}", {"debian/prepare": prepare})
    started = time.monotonic()
    build = probes.build(sha)
    assert time.monotonic() - started < 120  # ended, did not hang on a FIFO
    assert build.state == "failed"
    assert build.first_error is not None
    if "rules.gen" in trap:
        assert "did not write debian/rules.gen" in build.first_error
    else:
        assert build.first_error.startswith("debian/control")
    build.assert_nothing_escaped()


# -- processes outliving their step --------------------------------------------------


def test_nothing_a_step_or_the_prepare_step_starts_outlives_it(probes: Probes) -> None:
    daemons = """echo PROBE-START
setsid sleep {0}1 &
(sleep {0}2 >/dev/null 2>&1 &) &
nohup sh -c 'trap "" TERM HUP; sleep {0}3' >/dev/null 2>&1 &
setsid sh -c 'exec </dev/null >/dev/null 2>&1; sleep {0}4' &
sleep 0.5
echo "daemons running: $(pgrep -c -f 'sleep {0}')"
"""
    sha = probes.commit(
        "Probe: daemons",
        {"debian/probe": daemons.format("31337"), "debian/prepare": daemons.format("31338")},
    )
    started = time.monotonic()
    build = probes.build(sha)
    assert build.state == "succeeded", build.first_error
    started_daemons = re.findall(r"^daemons running: (\d+)$", build.log, re.MULTILINE)
    assert [int(n) >= 4 for n in started_daemons] == [True, True], build.log  # they did start
    assert time.monotonic() - started < 90
    time.sleep(1)
    assert survivors("sleep 3133[78]") == ""


# -- the compiler cache --------------------------------------------------------------

EVIL = """#!/bin/sh
echo EVIL-WRAPPER-RAN
touch /tmp/evil-ran /build/evil-ran 2>/dev/null
exec "$@"
"""
POISON = f"""set -u
echo PROBE-START
for dir in "$CCACHE_DIR" /ccache /build; do
    mkdir -p "$dir" 2>/dev/null
    cat > "$dir/evil" 2>/dev/null <<'EOF' && chmod +x "$dir/evil"
{EVIL}EOF
    echo "prefix_command=$dir/evil" > "$dir/ccache.conf" 2>/dev/null && echo "poisoned $dir"
done
true
"""
COMPILE = """set -u
echo PROBE-START
echo "const char *probe = \"$KBO_COMMIT\";" > /build/probe.c
$KBO_CC -c /build/probe.c -o /build/probe.o
for m in /tmp/evil-ran /build/evil-ran; do
    [ -e "$m" ] && echo "ESCAPED: the poisoned ccache.conf ran its prefix_command"
done
echo "const char *again = \"$KBO_COMMIT\";" > /build/again.c
env -u CCACHE_CONFIGPATH ccache gcc -c /build/again.c -o /build/again.o
[ -e /tmp/evil-ran ] && echo "CONTROL: ccache.conf honoured without kbo's CCACHE_CONFIGPATH"
true
"""


def test_a_poisoned_ccache_conf_never_runs_in_a_later_build(probes: Probes) -> None:
    poisoned = probes.build(probes.commit("Probe: poison ccache.conf", {"debian/probe": POISON}))
    assert "poisoned /ccache" in poisoned.log  # a tracked-branch build may write the cache
    untrusted = probes.build(
        probes.commit("Probe: poison from outside", {"debian/probe": POISON}, trusted=False)
    )
    assert "poisoned /ccache" not in untrusted.log  # read-only for it
    assert "poisoned /build" in untrusted.log  # the probe wrote where it could
    later = probes.build(probes.commit("Probe: compile after", {"debian/probe": COMPILE}))
    assert later.state == "succeeded", later.first_error
    later.assert_nothing_escaped()
    # Without kbo's settings file the poison would have worked: the probe can see it.
    assert "CONTROL: ccache.conf honoured" in later.log
    outside = probes.build(
        probes.commit("Probe: compile outside", {"debian/probe": COMPILE}, trusted=False)
    )
    assert outside.state == "succeeded", outside.first_error
    outside.assert_nothing_escaped()  # kbo's compile, before the control below, ran clean
    # It reads the same (read-only) shared cache: without kbo's settings file, the
    # poisoned ccache.conf there would have run.
    assert "CONTROL: ccache.conf honoured" in outside.log


# -- the smoke check -----------------------------------------------------------------


LIBC_DEV_CONTROL = (
    "Package: linux-libc-dev\\nVersion: 1.0\\nArchitecture: alpha\\nMaintainer: k <k@x>\\n"
    "Description: hostile headers\\n"
)


def test_a_hostile_libc_dev_runs_only_inside_the_smoke_sandbox(probes: Probes) -> None:
    marker = probes.root / "smoke-marker"
    header = f"""#define LINUX_VERSION_CODE {version_code(UPSTREAM)}
#include <stdio.h>
__attribute__((constructor)) static void kbo_probe(void)
{{
    printf("SMOKE-PAYLOAD-RAN\\n");
    if (fopen("/etc/shadow", "r")) printf("ESCAPED: smoke read /etc/shadow\\n");
    if (fopen("{probes.cluster.config}", "r")) printf("ESCAPED: smoke read kbo.toml\\n");
    if (fopen("{marker}", "w")) printf("ESCAPED: smoke wrote on the host\\n");
    fflush(stdout);
}}
"""
    script = f"""set -eu
echo PROBE-START
mkdir -p pkg/DEBIAN pkg/usr/include/linux
cat > pkg/usr/include/linux/version.h <<'EOF'
{header}EOF
printf '{LIBC_DEV_CONTROL}' > pkg/DEBIAN/control
dpkg-deb --build pkg /build/linux-libc-dev_1.0_alpha.deb
"""
    build = probes.build(
        probes.commit("Probe: hostile headers", {"debian/probe": script}), arch="alpha"
    )
    assert "SMOKE-PAYLOAD-RAN" in build.log, build.log[-3000:]  # its code did run
    assert build.state == "succeeded", build.first_error
    build.assert_nothing_escaped()
    assert not marker.exists()


# -- limits --------------------------------------------------------------------------

MEMORY = """echo PROBE-START
python3 -c 'b = bytearray(2 << 30); print("ESCAPED: allocated 2 GiB")'
"""
PROCESSES = """echo PROBE-START
python3 - <<'EOF'
import os, signal, time
children = []
try:
    while len(children) < 1000:
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)
    print("ESCAPED: forked 1000 processes")
except OSError as e:
    print(f"fork refused after {len(children)}: {e}")
for pid in children:
    os.kill(pid, signal.SIGKILL)
raise SystemExit(f"error: could only fork {len(children)} processes")
EOF
"""
DISK = """echo PROBE-START
fallocate -l 1100M /build/one-file && echo 'ESCAPED: one file over the file size limit'
rm -f /build/one-file
fallocate -l 600M /build/a
fallocate -l 600M /build/b
echo 'waiting for the disk watchdog'
sleep 50
echo 'ESCAPED: outlived the disk watchdog'
"""


def test_memory_process_and_disk_limits_end_the_job_and_spare_the_worker(
    probes: Probes,
) -> None:
    memory = probes.build(probes.commit("Probe: memory", {"debian/probe": MEMORY}))
    assert memory.state == "failed"
    assert "MemoryError" in memory.log
    memory.assert_nothing_escaped()

    processes = probes.build(probes.commit("Probe: processes", {"debian/probe": PROCESSES}))
    assert processes.state == "failed"
    assert processes.first_error is not None
    assert processes.first_error.startswith("error: could only fork")
    assert int(processes.first_error.split()[-2]) < LIMITS["job_processes"]
    processes.assert_nothing_escaped()

    disk = probes.build(probes.commit("Probe: disk", {"debian/probe": DISK}))
    assert disk.state == "failed"
    assert disk.first_error == "step probe used more than 1 GiB of disk under the job directory"
    disk.assert_nothing_escaped()
    assert [
        p for p in (probes.state / "worker/builds").iterdir() if p.name != "linux-other-job"
    ] == []

    still_up = probes.build(probes.commit("A harmless commit", {"debian/probe": "echo fine\n"}))
    assert still_up.state == "succeeded", still_up.first_error


def test_the_prepare_step_filling_the_disk_is_stopped(probes: Probes) -> None:
    prepare = DISK.replace("sleep 50", "sleep 25")
    sha = probes.commit("Probe: disk in prepare", {"debian/prepare": prepare})
    build = probes.build(sha)
    assert build.state == "failed"
    assert build.first_error == (
        "preparing the source: make -f debian/rules orig used more than 1 GiB of disk under "
        "the prepared tree"
    )
    build.assert_nothing_escaped()
    assert not (probes.cache / "trees" / sha).exists()  # the shared cache keeps none of it


# A tar whose ./control is BOMB_BYTES of zeros, written as a stream: no file on disk.
BOMB_PY = """import io, sys, tarfile

class Zeros(io.RawIOBase):
    def readable(self):
        return True

    def readinto(self, buffer):
        buffer[:] = bytes(len(buffer))
        return len(buffer)

with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as tar:
    info = tarfile.TarInfo("./control")
    info.size = int(sys.argv[1])
    tar.addfile(info, io.BufferedReader(Zeros(), 1 << 20))
"""
BOMB_BYTES = 3 << 29  # 1.5 GiB
BOMB = f"""set -eu
echo PROBE-START
mkdir -p d
tar -C d -czf data.tar.gz .
printf '2.0\\n' > debian-binary
python3 debian/bomb.py {BOMB_BYTES} | zstd -q -1 -o control.tar.zst
python3 debian/bomb.py {BOMB_BYTES} | gzip -1 > control.tar.gz
ar rc /build/bomb-zst_1.0_amd64.deb debian-binary control.tar.zst data.tar.gz
ar rc /build/bomb-gz_1.0_amd64.deb debian-binary control.tar.gz data.tar.gz
ls -l /build
"""


def worker_peak_kib(pid: int) -> int:
    """The largest peak resident size among ``pid`` and its descendants."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    family, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in family} - family
        grew = bool(more)
        family |= more
    peak = 0
    for member in family:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    return peak


def test_a_deb_with_a_decompression_bomb_for_control_is_refused_unread(probes: Probes) -> None:
    worker = probes.cluster.processes["w-probe"].pid
    before = worker_peak_kib(worker)
    sha = probes.commit(
        "Probe: control member bomb", {"debian/probe": BOMB, "debian/bomb.py": BOMB_PY}
    )
    build = probes.build(sha)
    assert build.probe_ran, build.log
    assert worker_peak_kib(worker) - before < 256 << 10, "the worker read the bomb"
    assert build.state == "failed"
    assert build.first_error is not None
    assert "its control file is not a regular file of at most 1024 KiB" in build.first_error
    assert build.first_error.startswith("bomb-gz_1.0_amd64.deb is not a valid Debian package")
    build.assert_nothing_escaped()
    # Each alone is refused too (the first one found ends the collection).
    only_zst = BOMB.replace("/build/bomb-gz_1.0_amd64.deb", "/build/bomb-gz.not-collected")
    zst = probes.commit("Probe: zstd bomb", {"debian/probe": only_zst, "debian/bomb.py": BOMB_PY})
    alone = probes.build(zst)
    assert alone.first_error == (
        "bomb-zst_1.0_amd64.deb is not a valid Debian package: control.tar.zst: kbo reads xz,"
        " gzip or uncompressed control members only"
    )
    assert worker_peak_kib(worker) - before < 256 << 10, "the worker read the zstd bomb"


def test_the_steps_tmp_holds_no_more_than_the_disk_limit(probes: Probes) -> None:
    """/tmp and /var/tmp are tmpfs: host memory that neither the disk watchdog nor the
    per-process memory limit sees."""
    script = """echo PROBE-START
for dir in /tmp /var/tmp; do
    fallocate -l 700M $dir/a && fallocate -l 700M $dir/b && echo "ESCAPED: 1.4 GB in $dir"
    rm -f $dir/a $dir/b
done
true
"""
    build = probes.build(probes.commit("Probe: fill /tmp", {"debian/probe": script}))
    assert build.state == "succeeded", build.first_error
    assert build.probe_ran and "No space left on device" in build.log
    build.assert_nothing_escaped()
