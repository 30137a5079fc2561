"""arches/: one data file per Debian arch, and the probe of what this host can build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbo import arches
from kbo.errors import UserError
from kbo.packaging import dpkg_arch
from kbo.workers.capabilities import binfmt_problem, probe_arch
from tests.conftest import LINUX_61, LINUX_612, RunKbo

BOOKWORM_RELEASE_ARCHES = [
    "amd64",
    "arm64",
    "armel",
    "armhf",
    "i386",
    "mips64el",
    "mipsel",
    "ppc64el",
    "s390x",
]


@pytest.mark.parametrize("tree", [LINUX_61, LINUX_612])
def test_every_arch_in_the_real_matrices_has_a_data_file(kbo: RunKbo, tree: Path) -> None:
    declared = {job["arch"] for job in json.loads(kbo("matrix", tree, "--json").stdout)}
    assert declared <= set(arches.supported())


def test_cross_prefix_is_dpkgs_gnu_type() -> None:
    gnu = dpkg_arch.gnu_types(arches.supported())
    for info in arches.load_all():
        assert info.cross_prefix == f"{gnu[info.name]}-", info.name


def test_release_arches_use_the_main_archive_and_ports_arches_debian_ports() -> None:
    for name in BOOKWORM_RELEASE_ARCHES:
        chroot = arches.load(name).chroot
        assert chroot is not None and chroot.suite == "bookworm", name
        assert chroot.mirror == "http://deb.debian.org/debian"
        assert chroot.keyring.endswith("debian-archive-keyring.gpg")
    for name in ("alpha", "hppa"):
        chroot = arches.load(name).chroot
        assert chroot is not None and chroot.mirror.endswith("/debian-ports"), name
        assert chroot.keyring.endswith("debian-ports-archive-keyring.gpg")


@pytest.mark.parametrize("name", arches.supported())
def test_every_shipped_arch_file_passes_the_schema(name: str) -> None:
    info = arches.load(name)
    assert info.name == name and info.cross_prefix.endswith("-")
    assert all(len(package) > 1 for package in info.cross_packages)


def arch_refusal(tmp_path: Path, text: str) -> str:
    path = tmp_path / "alpha.toml"
    path.write_text('cross_prefix = "alpha-linux-gnu-"\n' + text)
    with pytest.raises(UserError) as caught:
        arches.load_file(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    return message.removeprefix(f"{path}: ")


def test_a_string_where_a_list_belongs_is_refused_not_split_into_letters(tmp_path: Path) -> None:
    assert arch_refusal(tmp_path, 'cross_packages = "gcc-alpha"\n') == (
        "cross_packages must be a list of strings matching ^[a-z0-9][a-z0-9.+-]*$, not 'gcc-alpha'"
    )


def test_arch_files_refuse_unknown_keys_and_wrong_types(tmp_path: Path) -> None:
    assert arch_refusal(tmp_path, 'qemu_usr = "alpha"\n') == (
        "unknown key 'qemu_usr' (did you mean qemu_user?)"
    )
    assert arch_refusal(tmp_path, "qemu_user = 1\n").startswith("qemu_user must be a string")
    chroot = '[chroot]\nmirror = "deb.debian.org"\nsuite = "sid"\nkeyring = "k"\n'
    assert arch_refusal(tmp_path, chroot).startswith("chroot.mirror must be a string matching")
    assert arch_refusal(tmp_path, '[chroot]\nmirror = "http://m"\nsuite = "sid"\n') == (
        "chroot: keyring is missing: it must be a non-empty string"
    )


def test_unknown_arch_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown architecture 'vax'"):
        arches.load("vax")


def fake_binfmt(root: Path, *, status: str = "enabled", handler: str | None = None) -> Path:
    root.mkdir(exist_ok=True)
    (root / "status").write_text(f"{status}\n")
    if handler is not None:
        (root / "qemu-alpha").write_text(handler)
    return root


def test_binfmt_handler_must_be_mounted_registered_enabled_and_point_somewhere(
    tmp_path: Path,
) -> None:
    interpreter = tmp_path / "qemu-alpha-static"
    interpreter.touch()
    good = f"enabled\ninterpreter {interpreter}\nflags: F\noffset 0\n"
    assert "not mounted" in str(binfmt_problem(tmp_path / "absent", "alpha"))
    assert "disabled" in str(
        binfmt_problem(fake_binfmt(tmp_path / "a", status="disabled"), "alpha")
    )
    assert "no binfmt handler qemu-alpha" in str(
        binfmt_problem(fake_binfmt(tmp_path / "b"), "alpha")
    )
    disabled = fake_binfmt(tmp_path / "c", handler=good.replace("enabled", "disabled", 1))
    assert "qemu-alpha is disabled" in str(binfmt_problem(disabled, "alpha"))
    dangling = fake_binfmt(tmp_path / "d", handler=good.replace(str(interpreter), "/nowhere"))
    assert "points to missing /nowhere" in str(binfmt_problem(dangling, "alpha"))
    assert binfmt_problem(fake_binfmt(tmp_path / "e", handler=good), "alpha") is None


def test_probe_reports_executors_and_what_is_missing(tmp_path: Path) -> None:
    alpha = arches.load("alpha")
    nothing = probe_arch(
        alpha, "amd64", "alpha-linux-gnu", which=lambda _: None, binfmt_dir=tmp_path
    )
    assert nothing.executors == ()
    assert "cross: apt-get install gcc-alpha-linux-gnu libc6.1-dev-alpha-cross" in nothing.missing
    only_cross = probe_arch(
        alpha,
        "amd64",
        "alpha-linux-gnu",
        which=lambda n: "/usr/bin/x" if n.endswith("-gcc") else None,
        binfmt_dir=tmp_path,
    )
    assert only_cross.executors == ("cross",)
    native = probe_arch(
        arches.load("amd64"), "amd64", "x86_64-linux-gnu", which=lambda n: "/usr/bin/x"
    )
    assert native.executors[0] == "native"


def test_hints_are_true_for_arches_the_host_kernel_runs_itself(tmp_path: Path) -> None:
    """qemu-user-static registers no handler for i386 or x86_64 on amd64: advising it
    would send the admin after a package that is already installed."""
    (tmp_path / "status").write_text("enabled\n")  # binfmt_misc, with no handler for them
    tools = {"mmdebstrap", "qemu-i386-static", "qemu-x86_64-static"}

    def which(name: str) -> str | None:
        return f"/usr/bin/{name}" if name in tools else None

    i386 = probe_arch(
        arches.load("i386"), "amd64", "i686-linux-gnu", which=which, binfmt_dir=tmp_path
    )
    assert "qemu" in i386.executors
    assert not any("qemu-user-static" in m for m in i386.missing)
    x32 = probe_arch(
        arches.load("x32"), "amd64", "x86_64-linux-gnux32", which=which, binfmt_dir=tmp_path
    )
    assert x32.executors == ()
    assert not any("qemu-user-static" in m for m in x32.missing)
    assert any("runs on this host's kernel or not at all" in m for m in x32.missing)


def test_this_host_builds_alpha_hppa_and_mips_cross_and_mipsel_under_qemu(kbo: RunKbo) -> None:
    """./dev installs the cross compilers and qemu-user-static and registers binfmt handlers."""
    result = kbo("arches", "--json")
    assert result.returncode == 0, result.stderr
    executors = {entry["arch"]: entry["executors"] for entry in json.loads(result.stdout)}
    for arch in ("alpha", "hppa", "mips"):
        assert "cross" in executors[arch], arch
    assert "qemu" in executors["mipsel"]
    assert executors["amd64"][0] == "native"
