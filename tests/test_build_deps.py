"""Build-Depends of the real linux 6.1.176-1 control file, evaluated like dpkg would."""

from __future__ import annotations

from kbo.workers.build_deps import installed_names, unmet
from tests.conftest import LINUX_61

CONTROL = (LINUX_61 / "debian" / "control").read_text()
TOOLS = "libaudit-dev"  # Build-Depends-Arch <!nopython !pkg.linux.mintools !pkg.linux.notools>


def test_profiles_and_arch_lists_decide_what_is_needed() -> None:
    nothing: set[str] = set()
    cross = unmet(CONTROL, "alpha", {"cross", "nodoc"}, nothing)
    assert "gcc-12-alpha-linux-gnu" in cross  # <cross> and [alpha]
    assert "gcc-12" not in cross  # <!cross>
    assert "gcc-12-hppa-linux-gnu" not in cross  # [hppa]
    assert "python3-docutils" not in cross  # <!nodoc>
    native = unmet(CONTROL, "amd64", set(), nothing)
    assert "gcc-12" in native and "python3-docutils" in native
    assert TOOLS in native
    assert TOOLS not in unmet(CONTROL, "amd64", {"pkg.linux.notools"}, nothing)


def test_installed_packages_and_provides_satisfy_relations() -> None:
    installed = installed_names()
    assert "dpkg" in installed
    missing = unmet(CONTROL, "alpha", {"cross", "nodoc"}, installed)
    assert "debhelper-compat" not in missing  # provided by the installed debhelper
    assert "quilt" not in missing and "bison" not in missing
    everything = installed | {name.split(" | ")[0] for name in missing}
    assert unmet(CONTROL, "alpha", {"cross", "nodoc"}, everything) == []
