"""The shape of the code: which way the imports point, where SQL lives, one job-key
formatter, and a wheel that installs nothing but ``kbo``."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LINUX_61, ROOT, copy_debian, git

# The import package's folders in the tree (kbo/ links to the four top-level ones).
PACKAGE_DIRS = {
    "kbo": ROOT / "kbo",
    "kbo.orchestrator": ROOT / "orchestrator",
    "kbo.workers": ROOT / "workers",
    "kbo.arches": ROOT / "arches",
    "kbo.recipes": ROOT / "recipes",
}
LINKED = {path.resolve() for path in list(PACKAGE_DIRS.values())[1:]}

# What each part may not import. Below the CLI nothing imports it; neither side imports
# the other; the shared layers import neither side.
FORBIDDEN = {
    "kbo.cli": (),
    "kbo.web": ("kbo.workers", "kbo.cli"),
    "kbo.orchestrator": ("kbo.workers", "kbo.cli"),
    "kbo.workers": ("kbo.orchestrator", "kbo.cli"),
    "kbo.messaging": ("kbo.orchestrator", "kbo.workers", "kbo.cli"),
    "kbo.packaging": ("kbo.orchestrator", "kbo.workers", "kbo.cli", "kbo.messaging"),
    "kbo.arches": ("kbo.orchestrator", "kbo.workers", "kbo.cli", "kbo.messaging"),
    "kbo.recipes": ("kbo.orchestrator", "kbo.workers", "kbo.cli", "kbo.messaging"),
    "kbo.config": ("kbo.orchestrator", "kbo.workers", "kbo.cli", "kbo.messaging", "kbo.packaging"),
    "kbo.datafile": (
        "kbo.orchestrator",
        "kbo.workers",
        "kbo.cli",
        "kbo.messaging",
        "kbo.packaging",
        "kbo.arches",
        "kbo.recipes",
    ),
    "kbo.errors": ("kbo.",),
    "kbo": ("kbo.",),  # kbo/__init__.py: the version, nothing else
}
GENERIC = ("orchestrator", "workers", "arches", "recipes", "tests", "benchmarks")


def modules() -> Iterator[tuple[str, Path]]:
    """Every module of the kbo import package, by dotted name, each once."""
    for package, directory in PACKAGE_DIRS.items():
        for path in sorted(directory.rglob("*.py")):
            if package == "kbo" and any(p.resolve() in LINKED for p in path.parents):
                continue  # reached through a link: counted under its own package
            parts = path.relative_to(directory).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((package, *parts)), path


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            base = node.module or ""
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def part_of(module: str) -> str:
    return max((p for p in FORBIDDEN if module == p or module.startswith(p + ".")), key=len)


def test_imports_point_one_way() -> None:
    checked = 0
    for module, path in modules():
        rules = FORBIDDEN[part_of(module)]
        for name in imports(path):
            assert name.split(".")[0] not in GENERIC, f"{module} imports {name}: use kbo.*"
            assert not any(name == r.rstrip(".") or name.startswith(r) for r in rules), (
                f"{module} ({path.relative_to(ROOT)}) imports {name}"
            )
        checked += 1
    assert checked > 60  # the walk found the whole package


SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|BEGIN|COMMIT)\b")


def test_sql_only_in_the_state_package() -> None:
    offenders = []
    for module, path in modules():
        if module.startswith("kbo.orchestrator.state"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and SQL.match(node.value)
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        if "sqlite3" in imports(path):
            offenders.append(f"{path.relative_to(ROOT)}: imports sqlite3")
    assert offenders == []


def test_one_job_key_formatter() -> None:
    """``<arch>_<featureset>_<flavour>`` is spelt out once, in ``job_key``."""
    pattern = re.compile(r"_\{[^{}]*featureset[^{}]*\}_|\"_\"\.join")
    found = [
        (str(path.relative_to(ROOT)), line.strip())
        for _, path in modules()
        for line in path.read_text().splitlines()
        if pattern.search(line)
    ]
    assert found == [("kbo/packaging/matrix.py", 'return f"{arch}_{featureset}_{flavour}"')]


@pytest.mark.slow
def test_wheel_installs_only_kbo_and_works(tmp_path: Path) -> None:
    """A plain (not editable) install from a wheel, as deploy/ and users install it."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
         "-w", str(wheels), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = wheels.glob("kbo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.startswith("kbo-")}
    assert tops == {"kbo"}
    assert "kbo/recipes/noop.toml" in names and "kbo/arches/alpha.toml" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [venv / "bin/pip", "install", "-q", "--disable-pip-version-check",
         "-c", str(ROOT / "constraints.txt"), str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    site = subprocess.run(
        [venv / "bin/python", "-c", "import kbo, sys; print(kbo.__file__)"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout  # fmt: skip
    assert "/site-packages/kbo/" in site  # not this checkout
    redis_mode = subprocess.run(
        [venv / "bin/python", "-c", "import kombu.transport.redis"], capture_output=True, text=True
    )
    assert redis_mode.returncode == 0, redis_mode.stderr  # kombu[redis] is declared
    kbo = venv / "bin/kbo"

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(kbo), *map(str, args)], capture_output=True, text=True, cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KBO_CONFIG": str(config)},
            timeout=300, check=False,
        )  # fmt: skip

    repo = copy_debian(LINUX_61, tmp_path / "repo")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "import")
    config = tmp_path / "kbo.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\nrepository = "{repo}"\nbranch = "main"\n'
    )
    assert run("--help").returncode == 0
    matrix = run("matrix", LINUX_61, "--json")
    assert matrix.returncode == 0, matrix.stderr
    assert len(json.loads(matrix.stdout)) == 50
    arches = run("arches", "--json")  # arches/*.toml, read from the installed package
    assert arches.returncode == 0, arches.stderr
    assert "alpha" in {a["arch"] for a in json.loads(arches.stdout)}
    submitted = run("submit", "--recipe", "noop", "--arch", "alpha", "--wait", "--json")
    assert submitted.returncode == 0, submitted.stderr
    run_record = json.loads(submitted.stdout)
    assert run_record["succeeded"] is True
    assert {j["arch"] for j in run_record["jobs"]} == {"alpha"}


def test_every_module_is_named_in_the_readme_layout() -> None:
    """Each module below the CLI (whose verbs are named by `kbo <verb>`) has its file
    named in the README's layout table, so a new one is placed and explained there."""
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    missing = [
        str(path.relative_to(ROOT))
        for module, path in modules()
        if not module.startswith("kbo.cli")
        and path.name != "__init__.py"
        and path.name not in layout
    ]
    assert missing == []
