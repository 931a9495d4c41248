"""The `funnelstream` command: help on every command, clear setting errors, consumer processes."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
import typer.main

from funnelstream.cli import app
from funnelstream.embedded import free_port
from tests.funnelstream.test_dev import EXE, clean_env


def all_commands() -> list[list[str]]:
    root = typer.main.get_command(app)
    found: list[list[str]] = []

    def walk(cmd: object, path: list[str]) -> None:
        found.append(path)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(root, [])
    return found


@pytest.mark.parametrize("path", all_commands(), ids=lambda p: " ".join(p) or "funnelstream")
def test_every_command_has_help(path: list[str]) -> None:
    result = subprocess.run([EXE, *path, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_contract_commands_exist() -> None:
    names = {" ".join(p) for p in all_commands()}
    assert {"dev", "ingest", "api", "scoring", "nurture", "migrate", "topics", "dlq", "dlq list", "dlq replay"} <= names


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"FUNNELSTREAM_PARTITIONS": "many"}, "FUNNELSTREAM_PARTITIONS"),
        ({"FUNNELSTREAM_DATABASE_URL": ""}, "FUNNELSTREAM_DATABASE_URL"),
        ({"FUNNELSTREAM_HEALTH_PORT": "70000"}, "FUNNELSTREAM_HEALTH_PORT"),
    ],
)
def test_bad_setting_stops_start_up_with_one_line_naming_it(env: dict[str, str], named: str) -> None:
    base = {"FUNNELSTREAM_DATABASE_URL": "postgresql://x@127.0.0.1:1/x", "FUNNELSTREAM_KAFKA_BOOTSTRAP_SERVERS": "x:1"}
    merged = {k: v for k, v in {**base, **env}.items() if v}
    result = subprocess.run([EXE, "scoring"], capture_output=True, text=True, env=clean_env(**merged), timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr


def test_missing_secret_is_named(tmp_path: Path) -> None:
    env = clean_env(FUNNELSTREAM_DATABASE_URL="postgresql://x@h/db", FUNNELSTREAM_KAFKA_BOOTSTRAP_SERVERS="h:1")
    result = subprocess.run([EXE, "api"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert "FUNNELSTREAM_ADMIN_TOKEN: is not set" in result.stderr


def test_consumer_process_serves_health_and_stops_on_sigterm(database_url: str, broker: tuple[str, bool]) -> None:
    bootstrap, idempotence = broker
    port = free_port()
    env = clean_env(
        FUNNELSTREAM_DATABASE_URL=database_url,
        FUNNELSTREAM_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        FUNNELSTREAM_KAFKA_IDEMPOTENCE=str(idempotence).lower(),
        FUNNELSTREAM_TOPIC_PREFIX=f"cli{uuid.uuid4().hex[:8]}.",
        FUNNELSTREAM_HEALTH_PORT=str(port),
    )
    proc = subprocess.Popen([EXE, "scoring"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        assert "funnelstream_batch_size" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0]
    assert "scoring stopped" in output


def test_topics_creates_and_checks_partitions(broker: tuple[str, bool]) -> None:
    bootstrap, _ = broker
    prefix = f"top{uuid.uuid4().hex[:8]}."
    env = clean_env(
        FUNNELSTREAM_KAFKA_BOOTSTRAP_SERVERS=bootstrap, FUNNELSTREAM_TOPIC_PREFIX=prefix, FUNNELSTREAM_PARTITIONS="4"
    )
    check = subprocess.run([EXE, "topics", "--check"], capture_output=True, text=True, env=env, timeout=60)
    assert check.returncode == 1 and f"{prefix}events\tmissing" in check.stdout
    create = subprocess.run([EXE, "topics"], capture_output=True, text=True, env=env, timeout=60)
    assert create.returncode == 0, create.stderr
    assert f"{prefix}events\t4" in create.stdout
    again = subprocess.run([EXE, "topics", "--check"], capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 0 and f"{prefix}dead-letter\t4" in again.stdout
