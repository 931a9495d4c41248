"""`funnelstream dev` as a user runs it: a real process, real signals, real children."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psutil

from funnelstream.embedded import free_port
from tests.helpers import basic

EXE = str(Path(sys.executable).parent / "funnelstream")
READY = "Press Ctrl-C to stop."


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELSTREAM_")}
    env.update(extra)
    return env


class DevProcess:
    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log = data_dir.parent / f"dev-{uuid.uuid4().hex[:6]}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [EXE, "dev", "--port", str(self.port), "--data-dir", str(data_dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.base = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY in self.output():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"dev exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.1)
        raise AssertionError(f"dev not ready after {timeout}s:\n{self.output()}")

    def secrets(self) -> dict[str, str]:
        data: dict[str, str] = json.loads((self.data_dir / "secrets.json").read_text())
        return data

    def pid_of(self, name: str) -> int:
        return int((self.data_dir / "run" / f"{name}.pid").read_text())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def dev_process(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[DevProcess]:
    dev = DevProcess(data_dir, env or clean_env())
    try:
        dev.wait_ready()
        yield dev
    finally:
        dev.stop()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pids: list[int], timeout: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(gone(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if not gone(p)]


def lead_after_track(dev: DevProcess, user_id: str) -> dict[str, Any]:
    keys = dev.secrets()
    admin = {"Authorization": f"Bearer {keys['admin_token']}"}
    r = httpx.post(
        f"{dev.base}/v1/track", json={"userId": user_id, "event": "Demo Requested"}, headers=basic(keys["write_key"])
    )
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = httpx.get(f"{dev.base}/api/leads/{user_id}", headers=admin)
        if r.status_code == 200:
            lead: dict[str, Any] = r.json()
            return lead
        time.sleep(0.1)
    raise AssertionError(f"lead {user_id} never appeared:\n{dev.output()}")


def test_dev_serves_everything_on_one_port_and_ctrl_c_stops_in_order(tmp_path: Path) -> None:
    with dev_process(tmp_path / "data") as dev:
        text = dev.output()
        keys = dev.secrets()
        assert keys["admin_token"] in text and keys["write_key"] in text
        assert f"{dev.base}/docs" in text
        assert httpx.get(f"{dev.base}/readyz").json()["checks"] == {"database": "ok", "broker": "ok"}
        assert "/v1/track" in httpx.get(f"{dev.base}/openapi.json").json()["paths"]
        lead = lead_after_track(dev, "dev-user")
        # The shipped rules: a demo request is worth 30 points, decaying with a 30-day half-life.
        assert Decimal("29.99") < Decimal(lead["score"]) <= 30 and lead["stage"] == "lead", lead
        children = [dev.pid_of("tansu"), dev.pid_of("postgres")]
        dev.proc.send_signal(signal.SIGINT)
        assert dev.proc.wait(60) == 0
        out = dev.output()
        order = ["ingest stops accepting", "scoring drains", "nurture drains", "broker and database", "stopped."]
        positions = [out.index(step) for step in order]
        assert positions == sorted(positions), out
        assert wait_gone(children) == []
        assert not (tmp_path / "data" / "run" / "dev.pid").exists()


def test_sigkill_of_dev_leaves_no_process_and_the_next_start_recovers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    dev = DevProcess(data, clean_env())
    try:
        dev.wait_ready()
        first_token = dev.secrets()["admin_token"]
        lead = lead_after_track(dev, "survivor")
        postmaster = psutil.Process(dev.pid_of("postgres"))
        pids = [dev.pid_of("tansu"), postmaster.pid, *(c.pid for c in postmaster.children(recursive=True))]
        dev.proc.kill()
        dev.proc.wait()
        assert wait_gone(pids) == [], "children outlived a SIGKILLed dev"
        assert (data / "run" / "dev.pid").exists()  # the stale pidfile the next start must clean
    finally:
        dev.stop()
    with dev_process(data) as again:
        assert "stale pidfile" in again.output() or "leftover" in again.output()
        assert again.secrets()["admin_token"] == first_token
        keys = again.secrets()
        r = httpx.get(f"{again.base}/api/leads/survivor", headers={"Authorization": f"Bearer {keys['admin_token']}"})
        assert r.status_code == 200 and r.json()["lead_id"] == lead["lead_id"]  # PostgreSQL data persisted


def test_dev_uses_given_database_and_broker_without_embedding(
    tmp_path: Path, database_url: str, broker: tuple[str, bool]
) -> None:
    bootstrap, idempotence = broker
    env = clean_env(
        FUNNELSTREAM_DATABASE_URL=database_url,
        FUNNELSTREAM_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        FUNNELSTREAM_KAFKA_IDEMPOTENCE=str(idempotence).lower(),
        FUNNELSTREAM_TOPIC_PREFIX=f"ext{uuid.uuid4().hex[:8]}.",
        FUNNELSTREAM_KAFKA_SESSION_TIMEOUT_MS="2000" if not idempotence else "6000",
    )
    data = tmp_path / "data"
    with dev_process(data, env) as dev:
        assert "embedded" not in dev.output().split("FunnelStream is running")[0]
        assert not (data / "postgres").exists()
        assert not (data / "run" / "tansu.pid").exists()
        assert bootstrap in dev.output()
        lead_after_track(dev, "external-user")


def test_a_second_dev_on_the_same_data_folder_is_refused(tmp_path: Path) -> None:
    with dev_process(tmp_path / "data") as dev:
        second = subprocess.run(
            [EXE, "dev", "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=60,
        )
        assert second.returncode != 0
        assert f"already runs on {dev.data_dir.resolve()}" in second.stderr + second.stdout
