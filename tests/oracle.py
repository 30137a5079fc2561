"""The independent oracle: the jobs Debian's gencontrol.py wrote into ``debian/rules.gen``.

Run it on any real tree or .dsc to check kbo against Debian's own output:

    .venv/bin/python -m tests.oracle linux_6.12.8-1.dsc ../shared/fixtures/linux-6.1.176-1
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from tests.conftest import KBO

TARGET = re.compile(r"^binary-arch_([^_:]+)_([^_:]+)_([^_:]+):", re.MULTILINE)
Job = tuple[str, str, str]


def gencontrol_jobs(rules_gen: str) -> set[Job]:
    """(arch, featureset, flavour) of every ``binary-arch_<a>_<fs>_<fl>`` target.

    ``real`` marks gencontrol's helper targets, in the featureset slot (6.x:
    ``binary-arch_alpha_real_perf``) or the flavour slot (5.10: ``binary-arch_alpha_none_real``).
    """
    return {(m[1], m[2], m[3]) for m in TARGET.finditer(rules_gen) if "real" not in (m[2], m[3])}


def kbo_jobs(source: Path) -> set[Job]:
    result = subprocess.run(
        [str(KBO), "matrix", str(source), "--json"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr.strip())
    return {(j["arch"], j["featureset"], j["flavour"]) for j in json.loads(result.stdout)}


def rules_gen_of(source: Path) -> str:
    if source.suffix != ".dsc":
        return (source / "debian" / "rules.gen").read_text()
    tarball = next(source.parent.glob(source.name.removesuffix(".dsc") + ".debian.tar.*"))
    with tarfile.open(tarball) as tar:
        member = tar.extractfile("debian/rules.gen")
        assert member is not None
        return member.read().decode()


def main(sources: list[str]) -> int:
    failed = 0
    for name in sources:
        source = Path(name)
        want, got = gencontrol_jobs(rules_gen_of(source)), kbo_jobs(source)
        verdict = "OK" if want == got else "DIFFERS"
        failed += want != got
        print(f"{verdict:8} {source.name}: kbo {len(got)} jobs, rules.gen {len(want)}")
        for job in sorted(want - got):
            print(f"         missing {'_'.join(job)}")
        for job in sorted(got - want):
            print(f"         extra   {'_'.join(job)}")
    return 1 if failed else 0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        sys.exit(main(sys.argv[1:]))
