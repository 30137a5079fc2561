"""Bad input: exit status 2 and one line naming the file (and line), never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, LINUX_61, LINUX_612, RunKbo, copy_debian, git


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def tree61(tmp_path: Path) -> Path:
    return copy_debian(LINUX_61, tmp_path)


def test_defines_with_a_syntax_error_names_file_and_line(kbo: RunKbo, tree61: Path) -> None:
    defines = tree61 / "debian/config/alpha/defines"
    defines.write_text(defines.read_text().replace("[build]", "[build\n"))
    line = assert_one_line_error(kbo("matrix", tree61), f"{defines}:6:")
    assert line.endswith("cannot parse '[build'")


def test_defines_without_a_section_header_names_file_and_line(kbo: RunKbo, tree61: Path) -> None:
    defines = tree61 / "debian/config/hppa/defines"
    defines.write_text("flavours: parisc\n" + defines.read_text())
    assert_one_line_error(kbo("matrix", tree61), f"{defines}:1:", "no [section] header")


def test_defines_toml_with_a_syntax_error_names_file_line_and_column(
    kbo: RunKbo, tmp_path: Path
) -> None:
    tree = copy_debian(LINUX_612, tmp_path)
    defines = tree / "debian/config/hppa/defines.toml"
    defines.write_text(defines.read_text().replace("name = 'parisc64'", "name = parisc64"))
    assert_one_line_error(kbo("matrix", tree), f"{defines}:12:8:", "Invalid value")


def test_missing_arch_defines_names_the_file(kbo: RunKbo, tree61: Path) -> None:
    defines = tree61 / "debian/config/mipsel/defines"
    defines.unlink()
    assert_one_line_error(kbo("matrix", tree61), str(defines), "'mipsel' has no defines file")


def test_arch_unknown_to_dpkg_names_the_file(kbo: RunKbo, tree61: Path) -> None:
    defines = tree61 / "debian/config/defines"
    defines.write_text(defines.read_text().replace(" alpha\n", " alpha\n vax\n", 1))
    (tree61 / "debian/config/vax").mkdir()
    (tree61 / "debian/config/vax/defines").write_text("[base]\nflavours: vax780\n")
    assert_one_line_error(kbo("matrix", tree61), str(defines), "'vax' is unknown to dpkg")


def test_hostile_flavour_name_is_refused(kbo: RunKbo, tree61: Path) -> None:
    defines = tree61 / "debian/config/alpha/defines"
    defines.write_text(defines.read_text().replace("alpha-smp", "../../etc"))
    assert_one_line_error(kbo("matrix", tree61), str(defines), "invalid flavour name '../../etc'")


def test_truncated_dsc_names_the_file(kbo: RunKbo, tmp_path: Path) -> None:
    dsc = tmp_path / "linux_6.1.176-1.dsc"
    dsc.write_bytes((FIXTURES / "dsc/linux_6.1.176-1.dsc").read_bytes()[:4000])
    assert_one_line_error(kbo("matrix", dsc), str(dsc), "truncated")


def test_unsigned_dsc_cut_before_its_file_list_names_the_file(kbo: RunKbo, tmp_path: Path) -> None:
    dsc = tmp_path / "hello_2.10-3.dsc"
    text = (FIXTURES / "hello-2.10-3/hello_2.10-3.dsc").read_text()
    body = text.split("\n\n", 1)[1].split("Checksums-Sha1")[0]
    dsc.write_text(body)
    assert_one_line_error(kbo("matrix", dsc), str(dsc), "no Files field")


def test_revision_that_does_not_exist_names_it(kbo: RunKbo, tmp_path: Path) -> None:
    repo = copy_debian(LINUX_61, tmp_path)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "import")
    assert_one_line_error(
        kbo("matrix", repo, "--rev", "no-such-branch"), str(repo), "'no-such-branch' does not exist"
    )


def test_bare_repository_without_rev_asks_for_one(kbo: RunKbo, tmp_path: Path) -> None:
    bare = tmp_path / "linux.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    assert_one_line_error(kbo("matrix", bare), str(bare), "without a working tree: give --rev")


def test_rev_of_a_directory_outside_git(kbo: RunKbo, tree61: Path) -> None:
    assert_one_line_error(kbo("matrix", tree61, "--rev", "HEAD"), "not a git repository")


def test_missing_source_path(kbo: RunKbo, tmp_path: Path) -> None:
    assert_one_line_error(kbo("matrix", tmp_path / "nowhere"), "no such file or directory")


def test_tree_that_is_not_a_kernel_package(kbo: RunKbo, tmp_path: Path) -> None:
    (tmp_path / "debian").mkdir()
    changelog = (FIXTURES / "linux-6.1.176-1/debian/changelog").read_text()
    first_entry_end = changelog.index("\n", changelog.index("\n -- ") + 1)
    (tmp_path / "debian/changelog").write_text(changelog[: first_entry_end + 1])
    assert_one_line_error(kbo("matrix", tmp_path), "not a Debian kernel package")


def test_malformed_changelog_names_the_file(kbo: RunKbo, tree61: Path) -> None:
    changelog = tree61 / "debian/changelog"
    changelog.write_text("linux (6.1.176-1 bookworm; urgency=high\n\n  * oops\n")
    assert_one_line_error(kbo("matrix", tree61), str(changelog))


def test_glob_that_matches_no_arch(kbo: RunKbo) -> None:
    assert_one_line_error(
        kbo("matrix", LINUX_61, "--arch", "vax*"), "--arch 'vax*' matches no arch"
    )
