"""Reader for the TOML ``debian/config/defines.toml`` layout (linux 6.7 and later).

The rules follow Debian's ``debian_linux.config_v2``:

- ``defines.toml`` lists ``[[kernelarch]]`` entries, each with ``[[kernelarch.debianarch]]``,
  and the ``[[featureset]]`` entries. ``kernelarch-<name>/``, ``featureset-<name>/`` and
  ``<debianarch>/`` may each hold a ``defines.toml`` that is merged into the entry:
  tables merge, lists of named tables merge by ``name``, other values are replaced.
- A debianarch lists its ``[[flavour]]`` and ``[[featureset]]``. A featureset that lists
  no flavours of its own builds every flavour of the arch.
- ``enable = false`` on any level above a job (kernelarch, debianarch, the featureset at
  the root or on the arch, the arch's flavour or the featureset's flavour) removes it.
  A debianarch without a ``defines.toml`` simply has no jobs.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from kbo.errors import UserError
from kbo.packaging.debian_config.tree import DebianTree
from kbo.packaging.matrix import BuildJob, Matrix, check_name

Table = dict[str, Any]
_NAMED_LISTS = ("kernelarch", "debianarch", "featureset", "flavour")


def read_toml_matrix(tree: DebianTree) -> Matrix:
    root_path = "config/defines.toml"
    root_where = tree.where(root_path)
    root = _load(tree, root_path)
    if root is None:
        raise UserError("missing", root_where)

    root_featuresets: dict[str, Table] = {}
    for entry in _named(root, "featureset", root_where):
        name = check_name("featureset", entry["name"], root_where)
        root_featuresets[name] = _with_file(tree, entry, f"config/featureset-{name}/defines.toml")

    matrix = Matrix()
    for kernelarch in _named(root, "kernelarch", root_where):
        ka_name = check_name("kernel arch", kernelarch["name"], root_where)
        ka_path = f"config/kernelarch-{ka_name}/defines.toml"
        kernelarch = _with_file(tree, kernelarch, ka_path)
        for debianarch in _named(kernelarch, "debianarch", root_where):
            arch = check_name("arch", debianarch["name"], root_where)
            matrix.declared_arches[arch] = root_where
            arch_path = f"config/{arch}/defines.toml"
            debianarch = _with_file(tree, debianarch, arch_path)
            enabled = _enable(kernelarch, root_where) and _enable(debianarch, root_where)
            matrix.jobs += _arch_jobs(
                arch, ka_name, debianarch, root_featuresets, enabled, tree.where(arch_path)
            )
    matrix.jobs.sort(key=lambda job: job.arch)
    return matrix


def _arch_jobs(
    arch: str,
    kernel_arch: str,
    debianarch: Table,
    root_featuresets: dict[str, Table],
    arch_enabled: bool,
    where: str,
) -> list[BuildJob]:
    arch_flavours = {
        check_name("flavour", f["name"], where): f for f in _named(debianarch, "flavour", where)
    }
    jobs = []
    for featureset in _named(debianarch, "featureset", where):
        fs = check_name("featureset", featureset["name"], where)
        if fs not in root_featuresets:
            raise UserError(f"featureset {fs!r} is not declared in config/defines.toml", where)
        fs_enabled = (
            arch_enabled and _enable(root_featuresets[fs], where) and _enable(featureset, where)
        )
        flavours = _named(featureset, "flavour", where) or list(arch_flavours.values())
        for flavour in flavours:
            name = check_name("flavour", flavour["name"], where)
            if name not in arch_flavours:
                raise UserError(f"featureset {fs!r} names flavour {name!r} the arch lacks", where)
            arch_flavour = arch_flavours[name]
            if fs_enabled and _enable(arch_flavour, where) and _enable(flavour, where):
                is_default = fs == "none" and arch_flavour.get("defs", {}).get("is_default") is True
                jobs.append(BuildJob(arch, fs, name, kernel_arch, is_default))
    return jobs


def _load(tree: DebianTree, path: str) -> Table | None:
    data = tree.read(path)
    if data is None:
        return None
    where = tree.where(path)
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UserError(f"not UTF-8 (byte {e.start})", where) from None
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        if m := re.search(r"\s*\(at line (\d+), column (\d+)\)$", message):
            where = f"{where}:{m[1]}:{m[2]}"
            message = message[: m.start()]
        raise UserError(message, where) from None


def _with_file(tree: DebianTree, entry: Table, path: str) -> Table:
    """The entry merged with the ``defines.toml`` at ``path``, if there is one."""
    extra = _load(tree, path)
    if extra is None:
        return entry
    return _merge(entry, extra)


def _merge(base: Table, extra: Table) -> Table:
    merged = dict(base)
    for key, value in extra.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            merged[key] = _merge(old, value)
        elif key in _NAMED_LISTS and isinstance(old, list) and isinstance(value, list):
            by_name = {item.get("name"): item for item in old if isinstance(item, dict)}
            for item in value:
                name = item.get("name") if isinstance(item, dict) else None
                by_name[name] = _merge(by_name[name], item) if name in by_name else item
            merged[key] = list(by_name.values())
        else:
            merged[key] = value
    return merged


def _named(table: Table, key: str, where: str) -> list[Table]:
    """The list of tables under ``key``, each with a ``name``."""
    entries = table.get(key, [])
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and "name" in e for e in entries
    ):
        raise UserError(f"'{key}' must be a list of tables, each with a name", where)
    return entries


def _enable(entry: Table, where: str) -> bool:
    value = entry.get("enable", True)
    if not isinstance(value, bool):
        raise UserError(f"'enable' of {entry.get('name')!r} must be true or false", where)
    return value
