"""Recipes: one TOML file per way of building a job, in this package or in ``recipe_dirs``.

A recipe lists its steps as argv lists, never shell strings. Placeholders such as
``{arch}`` or ``{commit}`` are filled from the job, whose fields were validated when
the matrix was read. A worker runs only recipes installed on its own host.

The schema below is the one declaration of a recipe file: every key, its type and
what it is for. Each load checks a file against it (msgspec, ``strict``: a string is
never taken for a list), then checks what a type cannot say: at least one step, known
executors, and only placeholders the worker fills (``Values``). The coordinator loads
the recipe before it records a run, so a bad recipe is refused at ``submit`` and
``snapshot``, and ``kbo recipes --check`` checks every file on the recipe path.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

import msgspec

from kbo import datafile
from kbo.errors import UserError

# "none" runs on the host with no toolchain for the arch: for recipes that build nothing.
EXECUTORS = ("native", "cross", "qemu", "none")


class Values(TypedDict):
    """What a worker fills a recipe's placeholders with (``{arch}``, ``{key}``...)."""

    arch: str
    featureset: str
    flavour: str
    kernel_arch: str
    commit: str
    cross_prefix: str
    key: str  # the job key: <arch>_<featureset>_<flavour>
    jobs: str  # the host's CPU count
    cc: str  # "<cross_prefix>gcc", or "ccache <cross_prefix>gcc" for a ccache recipe


PLACEHOLDERS = tuple(Values.__annotations__)


def _s(description: str, **constraints: Any) -> msgspec.Meta:
    return msgspec.Meta(description=description, **constraints)


class Step(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, _s("what the log calls the step", min_length=1)] = "run"
    argv: Annotated[
        tuple[str, ...], _s("the command, with placeholders; never a shell string", min_length=1)
    ]


class Recipe(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str  # not a key: the file's name
    description: Annotated[str, _s("one line: what the recipe builds")] = ""
    executors: Annotated[
        tuple[str, ...], _s("how a host may build it: " + ", ".join(EXECUTORS), min_length=1)
    ] = EXECUTORS
    steps: Annotated[tuple[Step, ...], _s("the commands, in order ([[step]])")] = msgspec.field(
        default=(), name="step"
    )
    timeout: Annotated[int, _s("seconds a step may run", ge=1)] = 3600
    no_output_timeout: Annotated[int, _s("seconds a step may print nothing", ge=1)] = 1200
    network: Annotated[bool, _s("the steps may reach the network")] = False
    needs_source: Annotated[
        bool, _s("build in the commit's prepared Debian tree (mounted at /build/src)")
    ] = False
    emulation_factor: Annotated[int, _s("emulated builds' limits are multiplied by this", ge=1)] = (
        12
    )
    expect_packages: Annotated[
        tuple[str, ...], _s("packages (globs, with placeholders) a success must have built")
    ] = ()
    expect_files: Annotated[
        tuple[str, ...], _s("files below /build (with placeholders) a success must have made")
    ] = ()
    host_paths: Annotated[
        tuple[str, ...], _s("host paths the steps may read; everything else is hidden")
    ] = ()
    scope: Annotated[
        Literal["flavour", "arch"],
        _s('"flavour": a job per flavour; "arch": one per arch (its default flavour)'),
    ] = "flavour"
    profiles: Annotated[
        tuple[str, ...], _s('build profiles added to the executor\'s own (cross: "cross nodoc")')
    ] = ()
    ccache: Annotated[
        bool, _s('compile through ccache where the host has it ({cc} is "ccache ...gcc")')
    ] = False
    require_build_depends: Annotated[
        bool,
        _s("wait for a host with every Build-Depends installed (dep-wait); else only logged"),
    ] = False

    def limits(self, executor: str) -> tuple[int, int]:
        """(total, no-output) timeouts in seconds; longer under emulation."""
        factor = self.emulation_factor if executor == "qemu" else 1
        return self.timeout * factor, self.no_output_timeout * factor

    def argv(self, step: Step, values: Values) -> list[str]:
        return [part.format_map(values) for part in step.argv]


def _files(extra_dirs: Iterable[str]) -> dict[str, Path]:
    """Each recipe's file by name; a folder of ``recipe_dirs`` overrides kbo's own."""
    return {path.stem: path for path in paths(extra_dirs)}


def paths(extra_dirs: Iterable[str] = ()) -> list[Path]:
    """Every file on the recipe path, kbo's own first, overridden ones included."""
    found = sorted(
        Path(str(entry))
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(".toml")
    )
    for directory in extra_dirs:
        found += sorted(Path(directory).expanduser().glob("*.toml"))
    return found


def supported(extra_dirs: Iterable[str] = ()) -> list[str]:
    return sorted(_files(extra_dirs))


def load(name: str, extra_dirs: Iterable[str] = ()) -> Recipe:
    """The recipe ``name``, checked; an unknown or bad one is a user error naming its file."""
    files = _files(extra_dirs)
    if name not in files:
        raise UserError(f"unknown recipe {name!r} (known: {', '.join(sorted(files))})")
    return load_file(files[name])


def load_file(path: Path) -> Recipe:
    """Read and check one recipe file."""
    where = str(path)
    recipe = datafile.convert(datafile.read(path, where), Recipe, where, name=path.stem)
    check(recipe, where)
    return recipe


def scope_of(name: str, extra_dirs: Iterable[str] = ()) -> str:
    """The recipe's scope; a bad recipe is refused, not guessed at."""
    return load(name, extra_dirs).scope


def check(recipe: Recipe, where: str) -> None:
    """What the schema cannot say: at least one step, known executors, known placeholders."""
    if not recipe.steps:
        raise UserError("no [[step]]: a recipe needs at least one", where)
    for executor in recipe.executors:
        if executor not in EXECUTORS:
            raise UserError(
                f"executors: unknown executor {executor!r} (known: {', '.join(EXECUTORS)})", where
            )
    texts = [(f"step {n} argv", part) for n, s in enumerate(recipe.steps, 1) for part in s.argv]
    texts += [("expect_packages", text) for text in recipe.expect_packages]
    texts += [("expect_files", text) for text in recipe.expect_files]
    for key, text in texts:
        if problem := _placeholder_problem(text):
            raise UserError(f"{key}: {problem}", where)


def _placeholder_problem(text: str) -> str | None:
    """Why ``text`` cannot be filled from a job's ``Values``, or None."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]
    except ValueError as e:  # a lone "{" or "}"
        return f"{e} in {text!r} (write {{{{ or }}}} for a brace)"
    for field in fields:
        if field not in PLACEHOLDERS:
            return f"unknown placeholder {{{field}}} (known: {', '.join(PLACEHOLDERS)})"
    try:
        text.format_map(dict.fromkeys(PLACEHOLDERS, "x"))
    except (ValueError, KeyError, IndexError, AttributeError) as e:
        return f"cannot fill {text!r}: {e}"
    return None
