"""Reader for the INI ``debian/config/defines`` layout (linux-2.6 up to 6.6).

The rules follow Debian's ``debian_linux`` package of that era:

- ``defines`` ``[base] arches`` lists the arches and ``featuresets`` the featuresets;
  ``[featureset-<fs>_base]`` there, and ``featureset-<fs>/defines``, hold settings of
  a featureset everywhere.
- ``<arch>/defines`` ``[base]`` lists the arch's ``featuresets``; ``flavours`` there
  make an implicit ``none`` featureset, put first. ``[<fs>_base]`` in that file, and
  ``<arch>/<fs>/defines`` ``[base]``, hold the settings of that featureset on that arch,
  including its ``flavours``.
- A featureset is built on an arch unless ``enabled`` is false in the merge of the
  ``base`` sections, shallowest first: top level, featureset, arch, arch-featureset.
"""

from __future__ import annotations

import ast
import configparser
import re

from kbo.errors import UserError
from kbo.packaging.debian_config.tree import DebianTree
from kbo.packaging.matrix import BuildJob, Matrix, check_name

Sections = dict[tuple[str, ...], dict[str, str]]


def read_ini_matrix(tree: DebianTree) -> Matrix:
    top_path = "config/defines"
    top = _parse(tree, top_path, required=True)
    top_where = tree.where(top_path)
    top_base = top.get(("base",), {})
    if "arches" not in top_base:
        raise UserError("[base] has no 'arches'", top_where)
    arches = [check_name("arch", a, top_where) for a in _list(top_base["arches"])]

    featureset_base: dict[str, dict[str, str]] = {}
    for section, values in top.items():
        if section[0].startswith("featureset-") and section[-1] == "base":
            featureset_base.setdefault(section[0].removeprefix("featureset-"), {}).update(values)
    for fs in _list(top_base.get("featuresets", "")):
        check_name("featureset", fs, top_where)
        fs_file = _parse(tree, f"config/featureset-{fs}/defines", required=False)
        featureset_base.setdefault(fs, {}).update(fs_file.get(("base",), {}))

    matrix = Matrix()
    for arch in arches:
        matrix.declared_arches[arch] = top_where
        matrix.jobs += _arch_jobs(tree, arch, top_base, featureset_base)
    return matrix


def _arch_jobs(
    tree: DebianTree,
    arch: str,
    top_base: dict[str, str],
    featureset_base: dict[str, dict[str, str]],
) -> list[BuildJob]:
    path = f"config/{arch}/defines"
    where = tree.where(path)
    arch_file = _parse(tree, path, required=True, missing=f"arch {arch!r} has no defines file")
    if ("base",) not in arch_file:
        raise UserError("no [base] section", where)
    arch_base = arch_file[("base",)]
    listed = [check_name("featureset", fs, where) for fs in _list(arch_base.get("featuresets", ""))]

    arch_featureset_base: dict[str, dict[str, str]] = {}
    arch_featureset_where: dict[str, str] = {}
    for section, values in arch_file.items():
        if len(section) == 2 and section[0] in listed and section[1] == "base":
            arch_featureset_base.setdefault(section[0], {}).update(values)
    for fs in listed:
        fs_path = f"config/{arch}/{fs}/defines"
        fs_file = _parse(tree, fs_path, required=False)
        arch_featureset_base.setdefault(fs, {}).update(fs_file.get(("base",), {}))
        arch_featureset_where[fs] = tree.where(fs_path)

    featuresets = list(listed)
    if flavours := _list(arch_base.get("flavours", "")):
        featuresets.insert(0, "none")
        arch_featureset_base["none"] = {"flavours": " ".join(flavours)}
        arch_featureset_where["none"] = where

    jobs = []
    for fs in dict.fromkeys(featuresets):
        merged = top_base | featureset_base.get(fs, {}) | arch_base | arch_featureset_base[fs]
        if not _boolean(merged.get("enabled", "true"), arch_featureset_where[fs]):
            continue
        fs_where = arch_featureset_where[fs]
        if "flavours" not in arch_featureset_base[fs]:
            raise UserError(f"featureset {fs!r} of arch {arch!r} lists no flavours", fs_where)
        kernel_arch = merged.get("kernel-arch")
        default = merged.get("default-flavour") if fs == "none" else None
        for flavour in _list(arch_featureset_base[fs]["flavours"]):
            check_name("flavour", flavour, fs_where)
            jobs.append(BuildJob(arch, fs, flavour, kernel_arch, flavour == default))
    return jobs


def _parse(tree: DebianTree, path: str, *, required: bool, missing: str = "missing") -> Sections:
    """Parse one defines file into ``{('featureset-rt', 'base'): {...}}`` style sections."""
    where = tree.where(path)
    data = tree.read(path)
    if data is None:
        if required:
            raise UserError(missing, where)
        return {}
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read_string(data.decode("utf-8"), source=where)
    except UnicodeDecodeError as e:
        raise UserError(f"not UTF-8 (byte {e.start})", where) from None
    except configparser.MissingSectionHeaderError as e:
        raise UserError(
            f"no [section] header before {e.line.strip()!r}", f"{where}:{e.lineno}"
        ) from None
    except configparser.ParsingError as e:
        lineno, line = e.errors[0]  # configparser keeps the line as its repr()
        text = ast.literal_eval(line).strip()
        raise UserError(f"cannot parse {text!r}", f"{where}:{lineno}") from None
    except configparser.Error as e:
        raise UserError(str(e).splitlines()[0], where) from None
    return {tuple(name.split("_")): dict(parser.items(name)) for name in parser.sections()}


def _list(value: str) -> list[str]:
    return [item for item in re.split(r"\s+", value.strip()) if item]


def _boolean(value: str, where: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise UserError(f"'enabled' must be true or false, not {value!r}", where)
