"""deploy/: the Redis configuration runs, the units verify, the scheduled commands parse,
and the worker-host set-up installs what the arches named need."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import redis

from tests.conftest import KBO, ROOT
from tests.services import free_port, wait_for

DEPLOY = ROOT / "deploy"


def test_the_redis_configuration_keeps_messages_and_never_evicts(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            str(DEPLOY / "redis/kbo.conf"),
            "--port",
            str(port),
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, socket_timeout=5)

        def ping() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_for(ping, 20, "redis-server with deploy/redis/kbo.conf")
        settings = {
            key: client.config_get(key)[key]
            for key in ("appendonly", "appendfsync", "maxmemory-policy", "protected-mode")
        }
        assert settings == {
            "appendonly": "yes",
            "appendfsync": "everysec",
            "maxmemory-policy": "noeviction",
            "protected-mode": "yes",
        }
        client.lpush("build.alpha", "message")
        wait_for(lambda: any((tmp_path / "appendonlydir").glob("kbo.aof.*.incr.aof")), 10, "AOF")
    finally:
        server.terminate()
        server.wait(20)


def exec_start(unit: Path) -> list[str]:
    line = next(ln for ln in unit.read_text().splitlines() if ln.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_the_systemd_units_verify(tmp_path: Path) -> None:
    for unit in (DEPLOY / "systemd").iterdir():
        text = unit.read_text().replace("/opt/kbo/bin/kbo", str(KBO))
        (tmp_path / unit.name).write_text(text)
    (tmp_path / "kbo-worker@alpha.service").write_text(
        (tmp_path / "kbo-worker@.service").read_text()
    )
    names = [
        "kbo-coordinator.service",
        "kbo-web.service",
        "kbo-snapshot.service",
        "kbo-snapshot.timer",
    ]
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in names),
         str(tmp_path / "kbo-worker@alpha.service")],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_every_scheduled_and_service_command_is_one_kbo_accepts() -> None:
    commands = [exec_start(unit) for unit in (DEPLOY / "systemd").glob("*.service")]
    cron = [ln for ln in (DEPLOY / "cron/kbo").read_text().splitlines() if ln and ln[0].isdigit()]
    assert len(cron) == 1
    fields = cron[0].split()
    assert len(fields[:5]) == 5 and fields[5] == "kbo" and fields[6] == "/opt/kbo/bin/kbo"
    commands.append(fields[6:])
    assert sorted(c[1] for c in commands) == [
        "coordinator",
        "snapshot",
        "snapshot",
        "web",
        "worker",
    ]
    for argv in commands:
        assert argv[0] == "/opt/kbo/bin/kbo"
        args = [a.replace("%I", "alpha,hppa") for a in argv[1:]]
        parsed = subprocess.run(
            [str(KBO), *args, "--help"], capture_output=True, text=True, check=False
        )
        assert parsed.returncode == 0, (argv, parsed.stderr)
        flags = [a for a in args if a.startswith("--")]
        assert all(flag in parsed.stdout for flag in flags), argv


def test_setup_worker_host_installs_what_the_arches_named_need() -> None:
    result = subprocess.run(
        [str(DEPLOY / "setup-worker-host"), "alpha", "mips"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DRY_RUN": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    install = next(ln for ln in result.stdout.splitlines() if " apt-get install " in ln).split()
    wanted = {"qemu-user-static", "binfmt-support", "mmdebstrap", "ccache"}
    for arch in ("alpha", "mips"):
        info = tomllib.loads((ROOT / f"arches/{arch}.toml").read_text())
        wanted |= set(info["cross_packages"])
    assert wanted <= set(install)
    assert "gcc-hppa-linux-gnu" not in install
    assert "+ update-binfmts --enable" in result.stdout
    assert r"+ systemctl enable --now kbo-worker@alpha\x2cmips.service" in result.stdout


def test_setup_worker_host_refuses_an_unknown_arch_before_doing_anything() -> None:
    result = subprocess.run(
        [str(DEPLOY / "setup-worker-host"), "alpha", "vax;reboot"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DRY_RUN": "1"},
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "packages-for: 'vax;reboot': unknown architecture (see arches/)\n"


def test_the_host_arch_needs_no_cross_toolchain() -> None:
    host = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    native = subprocess.run(
        [str(DEPLOY / "packages-for"), host], capture_output=True, text=True, check=True
    ).stdout.split()
    alpha = subprocess.run(
        [str(DEPLOY / "packages-for"), host, "alpha"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "gcc" in native and not any(p.endswith("-cross") for p in native)
    assert set(alpha) - set(native) == {"gcc-alpha-linux-gnu", "libc6.1-dev-alpha-cross"}


def test_install_build_depends_asks_apt_for_what_the_cross_builds_lack(tmp_path: Path) -> None:
    """dpkg-checkbuilddeps decides what is missing for each arch, with the profiles of
    kbo's cross builds; apt-get build-dep -a ARCH installs it, and nothing is asked for
    an arch whose Build-Depends are met."""
    (tmp_path / "debian").mkdir()
    (tmp_path / "debian/control").write_text(
        "Source: x\nBuild-Depends-Arch: dpkg, kbo-absent [alpha], kbo-tools <!pkg.linux.notools>\n"
        "\nPackage: x\nArchitecture: any\n"
    )
    result = subprocess.run(
        [str(DEPLOY / "install-build-depends"), str(tmp_path), "alpha", "mips"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DRY_RUN": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "install-build-depends: alpha: kbo-absent\n"
    (command,) = result.stdout.splitlines()
    assert command.endswith(
        "build-dep -y -qq --no-install-recommends --arch-only -a alpha"
        f" -P cross,nodoc,pkg.linux.nokerneldbg,pkg.linux.notools {tmp_path}"
    )
    usage = subprocess.run(
        [str(DEPLOY / "install-build-depends"), str(tmp_path / "nowhere"), "alpha"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert usage.returncode == 2 and usage.stderr.startswith("usage: ")
