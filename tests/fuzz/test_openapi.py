"""schemathesis against the OpenAPI spec of each HTTP app (collection edge, admin API), served on real ports
over the real PostgreSQL and broker: no 5xx, and every answer matches the documented status codes, content
types and response schemas.

Sized for CI (four generated cases per operation plus the schema's examples, deterministic generation: a
few minutes). A longer run with random cases reproducible by seed, the coverage phase (boundary values of
every parameter, ~70 cases per operation) and the stateful phase (following links between operations):

    FUNNELSTREAM_FUZZ_EXAMPLES=200 FUNNELSTREAM_FUZZ_SEED=1234 \
    FUNNELSTREAM_FUZZ_PHASES=examples,coverage,fuzzing,stateful .venv/bin/pytest tests/fuzz --timeout 0
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from funnelstream.apps import create_app
from funnelstream.runtime import make_server, start_server
from shared.kafka import ensure_topics
from shared.settings import AdminSettings, IngestSettings, NurtureSettings

EXAMPLES = int(os.environ.get("FUNNELSTREAM_FUZZ_EXAMPLES", "4"))
PHASES = os.environ.get("FUNNELSTREAM_FUZZ_PHASES", "examples,fuzzing")
SEED = os.environ.get("FUNNELSTREAM_FUZZ_SEED")  # unset: deterministic generation, the same cases every run
GENERATION = ["--seed", SEED, "--generation-database", "none"] if SEED else ["--generation-deterministic"]
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
ST = Path(sys.executable).with_name("st")
TIMEOUT = 900 if SEED is None else 0  # a long run is bounded by its sizes


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    server = make_server(app, "127.0.0.1", 0)
    task = await start_server(server)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.should_exit = True
        await task


async def schemathesis(base: str, *auth: str, report: Path) -> tuple[int, str]:
    """Run the schemathesis CLI against `base` (in its own process: the apps keep serving on this loop)."""
    process = await asyncio.create_subprocess_exec(
        str(ST), "run", f"{base}/openapi.json", "--checks", CHECKS, "--max-examples", str(EXAMPLES),
        *GENERATION, "--phases", PHASES, "--workers", "1",
        "--request-timeout", "30", "--no-color", "--report", "junit", "--report-dir", str(report),
        "--suppress-health-check", "all", *auth,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


@pytest.fixture
async def apps(settings_kwargs: dict[str, Any]) -> AsyncIterator[tuple[str, str, str, str]]:
    """(edge URL, admin URL, write key, admin token): the two apps as deployed, sharing database and broker."""
    token = secrets.token_urlsafe(16)
    ingest = IngestSettings(**settings_kwargs, secret_key="fuzz-secret")
    admin = AdminSettings(**settings_kwargs, secret_key="fuzz-secret", admin_token=token)
    nurture = NurtureSettings(**settings_kwargs, secret_key="fuzz-secret")  # delivery routes: the dev mailbox
    await ensure_topics(ingest)
    async with serving(create_app(ingest=ingest)) as edge, serving(create_app(admin=admin, nurture=nurture)) as api:
        async with httpx.AsyncClient() as client:
            created = await client.post(
                f"{api}/api/sources", json={"name": "fuzz"}, headers={"Authorization": f"Bearer {token}"}
            )
            created.raise_for_status()
        yield edge, api, created.json()["write_key"], token


@pytest.mark.timeout(TIMEOUT)
async def test_collection_edge_conforms_to_its_openapi(apps: tuple[str, str, str, str], tmp_path: Path) -> None:
    edge, _, write_key, _ = apps
    code, out = await schemathesis(edge, "--auth", f"{write_key}:", report=tmp_path)
    assert code == 0, out


@pytest.mark.timeout(TIMEOUT)
async def test_admin_api_conforms_to_its_openapi(apps: tuple[str, str, str, str], tmp_path: Path) -> None:
    _, api, _, token = apps
    code, out = await schemathesis(api, "--header", f"Authorization: Bearer {token}", report=tmp_path)
    assert code == 0, out
