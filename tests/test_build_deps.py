"""Build-Depends checked by dpkg-checkbuilddeps, for the job's arch and profiles, against
this host's real dpkg database, with the real linux 6.1.176-1 control file beside small
ones whose every relation has a known answer here."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbo.errors import InfraError, UserError
from kbo.workers.build_deps import check, installed_names, rules_env
from tests.conftest import LINUX_61

LINUX = (LINUX_61 / "debian" / "control").read_text()
CROSS = ("cross", "nodoc")


def control(build_depends: str, conflicts: str = "") -> str:
    extra = f"Build-Conflicts: {conflicts}\n" if conflicts else ""
    return f"Source: x\nBuild-Depends: {build_depends}\n{extra}\nPackage: x\nArchitecture: any\n"


def test_versions_arch_lists_profiles_and_alternatives_are_dpkgs_to_judge() -> None:
    found = check(
        control(
            "dpkg, dpkg (>= 999), kbo-absent-a [alpha] | kbo-absent-b, kbo-absent-c [hppa],"
            " kbo-absent-d <!nodoc>, kbo-absent-e <cross>"
        ),
        "alpha",
        CROSS,
        root=None,
        cross=False,
    )
    assert found.missing == ["dpkg (>= 999)", "kbo-absent-a | kbo-absent-b", "kbo-absent-e"]


def test_a_conflict_installed_here_is_named() -> None:
    found = check(control("dpkg", conflicts="bash"), "alpha", CROSS, root=None, cross=False)
    assert found.missing == ["conflicts: bash"]


def test_a_cross_build_accepts_a_build_machine_tool_the_packaging_forgot_to_mark_native() -> None:
    """gcc is Multi-Arch: no, so dpkg wants gcc:alpha for an alpha build; the amd64 one
    installed here is what a cross build runs."""
    assert "gcc" in installed_names()
    strict = check(control("gcc"), "alpha", CROSS, root=None, cross=False)
    assert strict.missing == ["gcc"]
    lenient = check(control("gcc, kbo-absent"), "alpha", CROSS, root=None, cross=True)
    assert (lenient.missing, lenient.met_natively) == (["kbo-absent"], ["gcc"])


def test_linux_6_1_tools_need_host_libraries_that_pkg_linux_notools_leaves_out() -> None:
    full = check(LINUX, "alpha", CROSS, root=None, cross=True)
    assert "libaudit-dev" in full.missing  # the tools' Build-Depends-Arch, for alpha
    kernel_only = check(
        LINUX, "alpha", (*CROSS, "pkg.linux.notools", "pkg.linux.nokerneldbg"),
        root=None, cross=True,
    )  # fmt: skip
    assert "libaudit-dev" not in kernel_only.missing
    assert all("gcc-12-hppa" not in relation for relation in kernel_only.missing)


def test_a_missing_chroot_database_is_the_hosts_fault(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="dpkg-checkbuilddeps"):
        check(control("dpkg"), "alpha", CROSS, root=tmp_path, cross=False)


def test_rules_are_told_what_the_source_says_of_root() -> None:
    assert rules_env(LINUX) == {"DEB_RULES_REQUIRES_ROOT": "no"}
    assert rules_env("Source: x\n") == {"DEB_RULES_REQUIRES_ROOT": "binary-targets"}
    keywords = "Source: x\nRules-Requires-Root: dpkg/target-subcommand\n"
    assert rules_env(keywords) == {"DEB_RULES_REQUIRES_ROOT": "dpkg/target-subcommand"}
    with pytest.raises(UserError, match="Rules-Requires-Root"):
        rules_env("Source: x\nRules-Requires-Root: no; rm -rf /\n")
