"""Recipes: one TOML file per way of building a job, in this package or in ``recipe_dirs``.

A recipe lists its steps as argv lists, never shell strings. Placeholders such as
``{arch}`` or ``{commit}`` are filled from the job, whose fields were validated when
the matrix was read. A worker runs only recipes installed on its own host.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from kbo.errors import UserError

# "none" runs on the host with no toolchain for the arch: for recipes that build nothing.
EXECUTORS = ("native", "cross", "qemu", "none")
PLACEHOLDERS = (
    "arch",
    "featureset",
    "flavour",
    "kernel_arch",
    "commit",
    "cross_prefix",
    "key",
    "jobs",
    "cc",
)


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    executors: tuple[str, ...]
    steps: tuple[Step, ...]
    timeout: int
    no_output_timeout: int
    network: bool = False
    # Build in the prepared Debian source tree of the job's commit (mounted at /build/src).
    needs_source: bool = False
    # Emulated builds get their limits multiplied by this.
    emulation_factor: int = 12
    # Packages (globs, with placeholders) and files below /build that a success must have.
    expect_packages: tuple[str, ...] = ()
    expect_files: tuple[str, ...] = ()
    # Host paths the steps may read (tests' stand-in scripts); everything else is hidden.
    host_paths: tuple[str, ...] = ()
    # "flavour": a job per flavour; "arch": one per arch (its default flavour), for
    # builds that do not depend on the flavour, such as a tinyconfig kernel.
    scope: str = "flavour"
    # Build profiles added to the executor's own (cross builds use "cross nodoc").
    profiles: tuple[str, ...] = ()
    # Compile through ccache (a cache shared by the host's jobs) where the host has it;
    # {cc} is then "ccache <cross_prefix>gcc".
    ccache: bool = False
    # Fail when the package's Build-Depends are not all installed (a full package build);
    # otherwise what is missing is only written to the log.
    require_build_depends: bool = False

    def limits(self, executor: str) -> tuple[int, int]:
        """(total, no-output) timeouts in seconds; longer under emulation."""
        factor = self.emulation_factor if executor == "qemu" else 1
        return self.timeout * factor, self.no_output_timeout * factor

    def argv(self, step: Step, values: dict[str, str]) -> list[str]:
        return [part.format_map(values) for part in step.argv]


def _files(extra_dirs: Iterable[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for entry in resources.files(__name__).iterdir():
        if entry.name.endswith(".toml"):
            found[entry.name.removesuffix(".toml")] = Path(str(entry))
    for directory in extra_dirs:
        for path in sorted(Path(directory).expanduser().glob("*.toml")):
            found[path.stem] = path
    return found


def supported(extra_dirs: Iterable[str] = ()) -> list[str]:
    return sorted(_files(extra_dirs))


def load(name: str, extra_dirs: Iterable[str] = ()) -> Recipe:
    files = _files(extra_dirs)
    if name not in files:
        raise UserError(f"unknown recipe {name!r} (known: {', '.join(sorted(files))})")
    path = files[name]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(str(e), str(path)) from None
    return _parse(name, data, str(path))


def _parse(name: str, data: dict[str, Any], where: str) -> Recipe:
    executors = tuple(data.get("executors", EXECUTORS))
    for executor in executors:
        if executor not in EXECUTORS:
            raise UserError(f"unknown executor {executor!r} (known: {', '.join(EXECUTORS)})", where)
    steps = []
    for step in data.get("step", []):
        argv = step.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise UserError(f"step {step.get('name')!r}: argv must be a list of strings", where)
        for part in argv:
            _check_placeholders(part, where)
        steps.append(Step(str(step.get("name", "run")), tuple(argv)))
    if not steps:
        raise UserError("a recipe needs at least one [[step]]", where)
    try:
        return Recipe(
            name=name,
            description=str(data.get("description", "")),
            executors=executors,
            steps=tuple(steps),
            timeout=int(data.get("timeout", 3600)),
            no_output_timeout=int(data.get("no_output_timeout", 1200)),
            network=bool(data.get("network", False)),
            needs_source=bool(data.get("needs_source", False)),
            emulation_factor=int(data.get("emulation_factor", 12)),
            expect_packages=tuple(map(str, data.get("expect_packages", ()))),
            expect_files=tuple(map(str, data.get("expect_files", ()))),
            host_paths=tuple(map(str, data.get("host_paths", ()))),
            scope=_scope(data.get("scope", "flavour"), where),
            profiles=tuple(map(str, data.get("profiles", ()))),
            ccache=bool(data.get("ccache", False)),
            require_build_depends=bool(data.get("require_build_depends", False)),
        )
    except (TypeError, ValueError) as e:
        raise UserError(f"bad recipe: {e}", where) from None


def _scope(value: object, where: str) -> str:
    if value not in ("flavour", "arch"):
        raise UserError(f"scope must be 'flavour' or 'arch', not {value!r}", where)
    return str(value)


def scope_of(name: str, extra_dirs: Iterable[str] = ()) -> str:
    """The recipe's scope; a recipe that does not parse plans per flavour (the worker that
    runs it records the parse error on the job)."""
    if name not in supported(extra_dirs):
        raise UserError(f"unknown recipe {name!r} (known: {', '.join(supported(extra_dirs))})")
    try:
        return load(name, extra_dirs).scope
    except UserError:
        return "flavour"


def _check_placeholders(text: str, where: str) -> None:
    import string

    for _literal, field, _spec, _conv in string.Formatter().parse(text):
        if field is not None and field not in PLACEHOLDERS:
            raise UserError(f"unknown placeholder {{{field}}} in {text!r}", where)
