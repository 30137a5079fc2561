"""The INI era's rules, on small trees in the shapes Debian used from lenny to 6.6."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import RunKbo, write_files
from tests.conftest import matrix_jobs as jobs

CHANGELOG = """\
linux-2.6 (2.6.26-13) stable; urgency=high

  * A lenny-era upload.

 -- Dann Frazier <dannf@debian.org>  Fri, 12 Dec 2008 12:00:00 -0700
"""


def lenny_tree(root: Path, xen_enabled: str = "true") -> Path:
    """The lenny shape: arch-level flavours make an implicit ``none``; xen lists its own."""
    return write_files(
        root,
        {
            "debian/changelog": CHANGELOG,
            "debian/config/defines": (
                "[base]\narches:\n i386\n amd64\n alpha\nfeaturesets:\n none\n xen\n openvz\n"
                f"\n[featureset-xen_base]\nenabled: {xen_enabled}\n"
            ),
            "debian/config/i386/defines": (
                "[base]\nfeaturesets:\n xen\n openvz\nflavours:\n 486\n 686\n"
                "kernel-arch: x86\n\n[686_description]\nhardware: modern PCs\n"
            ),
            "debian/config/i386/xen/defines": "[base]\nflavours:\n 686\n",
            "debian/config/i386/openvz/defines": "[base]\nflavours: 686\n",
            "debian/config/amd64/defines": "[base]\nfeaturesets: xen\nflavours: amd64\n",
            "debian/config/amd64/xen/defines": "[base]\nflavours: amd64\n",
            "debian/config/alpha/defines": "[base]\nflavours: alpha-generic\nkernel-arch: alpha\n",
            "debian/config/featureset-openvz/defines": "[base]\nenabled: false\n",
        },
    )


def test_lenny_xen_featureset_yields_i386_xen_686(kbo: RunKbo, tmp_path: Path) -> None:
    got = jobs(kbo, lenny_tree(tmp_path))
    assert ("i386", "xen", "686") in got
    assert got == {
        ("i386", "none", "486"),
        ("i386", "none", "686"),
        ("i386", "xen", "686"),
        ("amd64", "none", "amd64"),
        ("amd64", "xen", "amd64"),
        ("alpha", "none", "alpha-generic"),
    }


def test_featureset_switched_off_globally_yields_no_jobs(kbo: RunKbo, tmp_path: Path) -> None:
    got = jobs(kbo, lenny_tree(tmp_path, xen_enabled="false"))
    assert not {job for job in got if job[1] in ("xen", "openvz")}
    assert ("i386", "none", "686") in got


def test_featureset_switched_off_on_one_arch_only(kbo: RunKbo, tmp_path: Path) -> None:
    tree = lenny_tree(tmp_path)
    (tree / "debian/config/amd64/xen/defines").write_text("[base]\nflavours: amd64\nenabled: 0\n")
    got = jobs(kbo, tree)
    assert ("amd64", "xen", "amd64") not in got
    assert ("i386", "xen", "686") in got


def test_arch_with_no_featuresets_has_no_jobs(kbo: RunKbo, tmp_path: Path) -> None:
    tree = lenny_tree(tmp_path)
    (tree / "debian/config/defines").write_text("[base]\narches: alpha x32\nfeaturesets: none\n")
    write_files(tree, {"debian/config/x32/defines": "[base]\nfeaturesets:\n# empty\n"})
    assert jobs(kbo, tree) == {("alpha", "none", "alpha-generic")}


def test_kernel_arch_and_globs(kbo: RunKbo, tmp_path: Path) -> None:
    tree = lenny_tree(tmp_path)
    result = kbo("matrix", tree, "--json", "--arch", "i3*", "--featureset", "xen")
    assert [(j["kernel_arch"], j["target"]) for j in json.loads(result.stdout)] == [
        ("x86", "binary-arch_i386_xen_686")
    ]


def test_table_header_names_source_version_distribution_and_uploader(
    kbo: RunKbo, tmp_path: Path
) -> None:
    result = kbo("matrix", lenny_tree(tmp_path), "--flavour", "686")
    assert result.returncode == 0, result.stderr
    assert "linux-2.6 2.6.26-13 (stable)" in result.stdout
    assert "Dann Frazier <dannf@debian.org>" in result.stdout
    assert "binary-arch_i386_xen_686" in result.stdout
    assert "binary-arch_i386_none_486" not in result.stdout
