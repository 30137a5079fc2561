"""The TOML era's enable switches and merge rules, on small trees."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import RunKbo, write_files
from tests.conftest import matrix_jobs as jobs

CHANGELOG = """\
linux (6.12.1-1) unstable; urgency=medium

  * A TOML-era upload.

 -- Salvatore Bonaccorso <carnil@debian.org>  Mon, 02 Dec 2024 12:00:00 +0100
"""

ROOT = """\
[[kernelarch]]
name = 'alpha'
  [[kernelarch.debianarch]]
  name = 'alpha'

[[kernelarch]]
name = 'x86'
  [[kernelarch.debianarch]]
  name = 'amd64'
  [[kernelarch.debianarch]]
  name = 'i386'

[[featureset]]
name = 'none'

[[featureset]]
name = 'rt'
"""

AMD64 = """\
[[flavour]]
name = 'amd64'
[[flavour]]
name = 'cloud-amd64'

[[featureset]]
name = 'none'

[[featureset]]
name = 'rt'
[[featureset.flavour]]
name = 'amd64'
"""


def tree(root: Path, **files: str) -> Path:
    base = {
        "debian/changelog": CHANGELOG,
        "debian/config/defines.toml": ROOT,
        "debian/config/amd64/defines.toml": AMD64,
        "debian/config/alpha/defines.toml": (
            "[[flavour]]\nname = 'alpha-generic'\n[[flavour]]\nname = 'alpha-smp'\n"
            "[flavour.defs]\nis_default = true\n[[featureset]]\nname = 'none'\n"
        ),
    }
    return write_files(root, base | {f"debian/config/{k}": v for k, v in files.items()})


def test_featureset_flavours_default_to_the_arch_and_may_be_narrowed(
    kbo: RunKbo, tmp_path: Path
) -> None:
    assert jobs(kbo, tree(tmp_path)) == {
        ("alpha", "none", "alpha-generic"),
        ("alpha", "none", "alpha-smp"),
        ("amd64", "none", "amd64"),
        ("amd64", "none", "cloud-amd64"),
        ("amd64", "rt", "amd64"),
    }


def test_debianarch_without_defines_toml_has_no_jobs(kbo: RunKbo, tmp_path: Path) -> None:
    assert not {job for job in jobs(kbo, tree(tmp_path)) if job[0] == "i386"}


def test_featureset_disabled_at_the_root_removes_it_everywhere(kbo: RunKbo, tmp_path: Path) -> None:
    got = jobs(kbo, tree(tmp_path, **{"featureset-rt/defines.toml": "enable = false\n"}))
    assert ("amd64", "rt", "amd64") not in got
    assert ("amd64", "none", "amd64") in got


def test_flavour_disabled_on_the_arch_removes_it(kbo: RunKbo, tmp_path: Path) -> None:
    amd64 = AMD64.replace("name = 'cloud-amd64'", "name = 'cloud-amd64'\nenable = false")
    got = jobs(kbo, tree(tmp_path, **{"amd64/defines.toml": amd64}))
    assert ("amd64", "none", "cloud-amd64") not in got
    assert ("amd64", "none", "amd64") in got


def test_kernelarch_disabled_removes_its_debianarches(kbo: RunKbo, tmp_path: Path) -> None:
    got = jobs(kbo, tree(tmp_path, **{"kernelarch-x86/defines.toml": "enable = false\n"}))
    assert {job[0] for job in got} == {"alpha"}


def test_default_flavour_is_marked(kbo: RunKbo, tmp_path: Path) -> None:
    result = json.loads(kbo("matrix", tree(tmp_path), "--json", "--arch", "alpha").stdout)
    assert {j["flavour"]: j["default_flavour"] for j in result} == {
        "alpha-generic": False,
        "alpha-smp": True,
    }
    assert {j["kernel_arch"] for j in result} == {"alpha"}
