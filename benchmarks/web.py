"""Load on `kbo web`: ``GET /api/status`` and the dashboard's grid with 100,000 recorded jobs.

A repository of 2,000 commits and a state database of 50 jobs per commit (the whole 6.1
matrix, recipe ``linux``, as ``benchmarks/status.py`` fills it: alpha failing at the
newest 100 commits), served by a real ``kbo web`` (uvicorn, one process). CLIENTS
concurrent clients (an asyncio script with httpx's async client, one connection each)
ask for one URL for SECONDS, first flat out (each asks again as soon as it is answered),
then paced (each asks once a second, as a person's open dashboard does every 3 s, and
faster). Figures: requests answered, per second, p50, p99 and max latency, errors (a
status other than 200, or no answer). Baselines in the same run, against the same
server: a static file (``/static/dashboard.css``, Starlette's StaticFiles) and
``/openapi.json`` (a cached document through FastAPI); beside them, ``kbo status --json``
as a separate process and one computation of the standings in process (what
``/api/status`` cost on every request before ``kbo/web/board.py`` kept it).

    .venv/bin/python benchmarks/web.py [--seconds 30] [--clients 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import history  # noqa: E402
from benchmarks.status import outcome  # noqa: E402
from kbo.config import Config  # noqa: E402
from kbo.orchestrator.state import State, StateReader  # noqa: E402
from kbo.packaging.package import read_package  # noqa: E402
from kbo.web import board  # noqa: E402
from tests.services import free_port, wait_for  # noqa: E402

KBO = Path(sys.executable).parent / "kbo"
COMMITS = 2000  # x 50 jobs = 100,000 jobs
URLS = {
    "static file (baseline)": "/static/dashboard.css",
    "/openapi.json (baseline)": "/openapi.json",
    "GET /api/status": "/api/status",
    "dashboard /": "/",
}


async def client(
    http: httpx.AsyncClient,
    url: str,
    until: float,
    pace: float,
    found: list[float],
    errors: list[str],
) -> None:
    if pace:  # spread out, as people's dashboards are
        await asyncio.sleep(random.uniform(0, pace))  # noqa: S311
    while (start := time.perf_counter()) < until:
        try:
            answer = await http.get(url)
            await answer.aread()
            if answer.status_code != 200:
                errors.append(f"HTTP {answer.status_code}")
        except httpx.HTTPError as e:
            errors.append(type(e).__name__)
        found.append(time.perf_counter() - start)
        if pace:
            await asyncio.sleep(max(0.0, pace - (time.perf_counter() - start)))


async def load(base: str, url: str, clients: int, seconds: float, pace: float) -> str:
    times: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
        await http.get(url)  # warm: the first request computes what is kept
        until = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(
            *(client(http, url, until, pace, times, errors) for _ in range(clients))
        )
        took = time.perf_counter() - started
    ms = sorted(t * 1000 for t in times)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    kinds = {e: errors.count(e) for e in set(errors)}
    return (
        f"{len(ms):7d} answered {len(ms) / took:7.1f}/s   p50 {statistics.median(ms):7.1f} ms"
        f"   p99 {p99:7.1f} ms   max {ms[-1]:7.1f} ms   errors {len(errors)}"
        + (f" {kinds}" if kinds else "")
    )


def wall(argv: list[str], env: dict[str, str], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        assert result.returncode in (0, 1), result.stderr
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--commits", type=int, default=COMMITS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        root = Path(tmp)
        repo, shas = history.repository(root, args.commits)
        jobs = read_package(str(repo), shas[0]).matrix.jobs
        port = free_port()
        settings = {
            "state_dir": str(root / "state"),
            "repository": str(repo),
            "branch": "main",
            "default_recipe": "linux",
            "web_port": port,
        }
        config = Config(**settings)  # type: ignore[arg-type]
        started = time.perf_counter()
        state = State(config.database)
        count = history.fill(state, str(repo), "linux", shas, jobs, jobs, outcome)
        state.close()
        print(
            f"{args.commits} commits, {count} jobs (filled in "
            f"{time.perf_counter() - started:.0f} s); {args.clients} clients, "
            f"{args.seconds:.0f} s per URL and mode"
        )
        toml = root / "kbo.toml"
        toml.write_text(
            "".join(
                f"{k} = {v}\n" if isinstance(v, int) else f'{k} = "{v}"\n'
                for k, v in settings.items()
            )
        )
        env = os.environ | {"KBO_CONFIG": str(toml)}
        cli = wall([str(KBO), "status", "--json"], env)
        print(f"  {'kbo status --json (a process)':34} median {cli:7.1f} ms")
        reader = StateReader.open(config.database)
        computed = []
        for _ in range(5):
            start = time.perf_counter()
            board.build(config, "linux", reader)
            computed.append(time.perf_counter() - start)
        reader.close()
        print(
            f"  {'standings computed (in process)':34} median "
            f"{statistics.median(computed) * 1000:7.1f} ms   (each /api/status before the cache)"
        )
        log = (root / "web.log").open("wb")
        server = subprocess.Popen(
            [str(KBO), "web"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _up(base), 30, "kbo web")
            for mode, pace in (("flat out", 0.0), ("paced, 1/s per client", 1.0)):
                print(f"\n{mode}:")
                for label, url in URLS.items():
                    figures = asyncio.run(load(base, url, args.clients, args.seconds, pace))
                    print(f"  {label:26} {figures}")
        finally:
            server.terminate()
            server.wait(20)
        problems = [
            line
            for line in (root / "web.log").read_text(errors="replace").splitlines()
            if " ERROR " in line or " WARNING " in line or "Traceback" in line
        ]
        print(
            f"\nkbo web logged {len(problems)} error line(s)"
            + "".join(f"\n  {p}" for p in problems[:5])
        )


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/openapi.json", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
