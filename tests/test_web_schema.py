"""`kbo web` against its own OpenAPI description: schemathesis generates requests for
every operation (valid ones and broken ones) against a live service with a coordinator
behind it, and every answer must be documented, conform to its schema and never be 5xx."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import RedisServer

pytest.importorskip("schemathesis")

ST = Path(sys.executable).parent / "st"
# Starlette answers a method a path lacks with the Allow of the first route of that path
# (GET /api/runs, POST /api/runs): a limit of the router, not of kbo's API.
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "ignored_auth",
]


def test_every_answer_conforms_to_the_openapi_description(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    from tests.test_web import Web, web_cluster

    cluster, port = web_cluster(tmp_path, redis_server)
    web = Web(cluster, port)
    try:
        web.start()
        cluster.start_coordinator()
        run = web.submit(arches=["alpha"], flavours=["alpha-smp"])
        assert run.status_code == 201, run.text
        result = subprocess.run(
            [str(ST if ST.exists() else shutil.which("st")), "run", f"{web.url}/openapi.json",
             "--checks", ",".join(CHECKS), "--max-examples", "15", "--workers", "1",
             "--phases", "examples,coverage,fuzzing", "--seed", "14",
             "--header", f"Authorization: Bearer {web.token}",
             "--request-timeout", "60", "--no-color"],
            capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
        )  # fmt: skip
        output = result.stdout + result.stderr
        generated = re.search(r"(\d+) generated", output)
        print(f"schemathesis: {generated[1] if generated else '?'} cases")
        assert result.returncode == 0, output[-6000:]
        assert generated is not None and int(generated[1]) > 100
        assert "Traceback" not in cluster.log("web")
    finally:
        cluster.stop_all()
