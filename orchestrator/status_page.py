"""A static status page: arch x flavour, one colour per state, readable without JavaScript.

A flavour its hosts failed (infra-error) or that waits for a host with its Build-Depends
(dep-wait) says so in its cell, with the error as the cell's title, under the admins'
eyes: it is never the commit's failure, so never red for it. So does a flavour whose job
at HEAD was cancelled, and an arch that no live worker serves says "no worker"."""

from __future__ import annotations

import html
import os
import stat
import tempfile
import time
from collections.abc import Set
from pathlib import Path

from kbo.config import Config
from kbo.errors import UserError
from kbo.orchestrator.staleness import Standing

COLOURS = {
    "OK": "#2e7d32",
    "FAILING": "#c62828",
    "BUILDING": "#1565c0",
    "STALE": "#ef6c00",
    "NEVER": "#616161",
}


def render(
    title: str,
    head: str,
    standings: list[Standing],
    now: float,
    unserved: Set[str] = frozenset(),
) -> str:
    width = max((len(s.flavours) for s in standings), default=0)
    rows = []
    for arch in standings:
        cells = [_cell(f.name.split("/", 1)[1], f) for f in arch.flavours]
        cells += ["<td></td>"] * (width - len(arch.flavours))
        state = _cell(arch.state, arch, no_worker=arch.name in unserved)
        rows.append(f"<tr><th>{html.escape(arch.name)}</th>{state}{''.join(cells)}</tr>")
    legend = " ".join(
        f'<span class="c" style="background:{c}">{s}</span>' for s, c in COLOURS.items()
    )
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
td.s {{ color: white; }}
.c {{ color: white; padding: 0.1em 0.4em; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>HEAD {html.escape(head[:12])}; generated {generated}. Each cell: state, and how many
commits HEAD is ahead of the last successful build; <b>infra-error</b> (a host or service
failed the build) or <b>dep-wait</b> (no host has its Build-Depends yet) when the hosts,
not the commit, kept it from building at HEAD; <b>cancelled</b> when a maintainer
cancelled its job at HEAD; <b>no worker</b> when no live worker serves the arch.</p>
<p>{legend}</p>
<table>
<tr><th>arch</th><th>state</th><th colspan="{width}">flavours</th></tr>
{chr(10).join(rows)}
</table>
</body></html>
"""


def _cell(label: str, standing: Standing, *, no_worker: bool = False) -> str:
    behind = "" if standing.commits_behind is None else f" ({standing.commits_behind} behind)"
    colour = COLOURS[standing.state]
    problem = standing.host_problem
    notes = [
        *([problem.state] if problem else []),
        *(["cancelled"] if standing.cancelled else []),
        *(["no worker"] if no_worker else []),
    ]
    text = (
        f"{label}: {standing.state}{behind}"
        if label != standing.state
        else f"{standing.state}{behind}"
    ) + "".join(f"; {note}" for note in notes)
    why = (problem.error or problem.state) if problem else standing.cancelled
    title = f' title="{html.escape(why)}"' if why else ""
    return f'<td class="s" style="background:{colour}"{title}>{html.escape(text)}</td>'


def write_page(
    path: Path,
    config: Config,
    recipe: str,
    head: str,
    standings: list[Standing],
    now: float,
    unserved: Set[str] = frozenset(),
) -> None:
    """The page for the tracked repository and branch, for `kbo status --html` and the
    coordinator's ``status_page``."""
    title = f"kbo: {config.repository} {config.branch}, recipe {recipe}"
    write(path, render(title, head, standings, now, unserved))


def check_target(path: Path) -> None:
    """Where a page may go: a new file, or a page already there, in a directory that
    exists or can be made. A directory, a device, a FIFO or a link is refused, never
    replaced or followed. ``kbo status --html`` asks before any work; ``write`` always."""
    where = str(path)
    if path.is_dir() and not path.is_symlink():
        raise UserError("is a directory: give the page's file name", where)
    if path.is_symlink() or (path.exists() and not stat.S_ISREG(path.lstat().st_mode)):
        raise UserError("not a regular file: refusing to replace it with the status page", where)
    existing = next(p for p in path.parents if p.exists())
    if not existing.is_dir():
        raise UserError(f"{existing} is not a directory", where)


def write(path: Path, page: str) -> None:
    """Replace the page whole: a new file, renamed over it (see ``check_target``)."""
    check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(page)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
