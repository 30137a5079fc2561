"""kbo's matrix must equal what Debian's own gencontrol.py wrote into rules.gen and control."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from debian.deb822 import Deb822

from tests.conftest import LINUX_61, LINUX_612, RunKbo
from tests.oracle import gencontrol_jobs, rules_gen_of


def image_architectures(tree: Path) -> dict[str, set[str]]:
    with (tree / "debian" / "control").open() as f:
        return {
            p["Package"]: set(p.get("Architecture", "").split())
            for p in Deb822.iter_paragraphs(f)
            if p.get("Package", "").startswith("linux-image-")
        }


@pytest.mark.parametrize(("tree", "count"), [(LINUX_61, 50), (LINUX_612, 46)])
def test_matrix_equals_gencontrol_targets(kbo: RunKbo, tree: Path, count: int) -> None:
    result = kbo("matrix", tree, "--json")
    assert result.returncode == 0, result.stderr
    jobs = json.loads(result.stdout)
    got = {(j["arch"], j["featureset"], j["flavour"]) for j in jobs}
    assert got == gencontrol_jobs(rules_gen_of(tree))
    assert len(jobs) == len(got) == count
    for job in jobs:
        assert job["target"] == f"binary-arch_{job['arch']}_{job['featureset']}_{job['flavour']}"
        assert job["kernel_arch"]


@pytest.mark.parametrize("tree", [LINUX_61, LINUX_612])
def test_every_job_has_an_image_package_for_its_arch(kbo: RunKbo, tree: Path) -> None:
    images = image_architectures(tree)
    jobs = json.loads(kbo("matrix", tree, "--json").stdout)
    for job in jobs:
        middle = "" if job["featureset"] == "none" else f"{job['featureset']}-"
        name = re.compile(
            rf"linux-image-[0-9][\w.+~]*(-[0-9]+)?-{middle}{re.escape(job['flavour'])}"
            r"(-unsigned)?"
        )
        matches = [pkg for pkg in images if name.fullmatch(pkg)]
        assert matches, f"no linux-image package for {job['target']}"
        assert all(job["arch"] in images[pkg] for pkg in matches), (job, matches)


def test_kernel_arch_and_default_flavour_come_from_config(kbo: RunKbo) -> None:
    old = {j["target"]: j for j in json.loads(kbo("matrix", LINUX_61, "--json").stdout)}
    new = {j["target"]: j for j in json.loads(kbo("matrix", LINUX_612, "--json").stdout)}
    for jobs in (old, new):
        assert jobs["binary-arch_hppa_none_parisc64"]["kernel_arch"] == "parisc"
        assert jobs["binary-arch_amd64_rt_amd64"]["kernel_arch"] == "x86"
        assert jobs["binary-arch_alpha_none_alpha-smp"]["default_flavour"] is True
        assert jobs["binary-arch_alpha_none_alpha-generic"]["default_flavour"] is False
        assert jobs["binary-arch_amd64_rt_amd64"]["default_flavour"] is False
        assert jobs["binary-arch_mips_none_4kc-malta"]["gnu_type"] == "mips-linux-gnu"
