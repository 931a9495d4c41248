"""`funnelstream train`: progress on stderr, the stored run as JSON, a clear error for a wrong stage."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

FUNNELSTREAM = str(Path(sys.executable).with_name("funnelstream"))


async def train(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELSTREAM_")}
    process = await asyncio.create_subprocess_exec(
        FUNNELSTREAM, "train", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**env, "FUNNELSTREAM_DATABASE_URL": database_url},
    )  # fmt: skip
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_train_command_stores_a_run_and_names_a_wrong_stage(settings_kwargs: dict[str, Any]) -> None:
    url = settings_kwargs["database_url"]
    code, out, err = await train(url, "--target-stage", "lead", "--horizon-days", "14")
    assert code == 0, err
    run = json.loads(out)
    assert run["version"] == 1 and run["status"] == "rejected" and run["decision"] == "reject"
    assert run["reason"].startswith("not enough history") and run["horizon_days"] == 14
    assert "train: loading leads" in err and "model version 1: not activated" in err
    code, out, err = await train(url, "--target-stage", "customer")
    assert code == 2 and out == ""
    assert "target_stage" in err and "'customer'" in err


async def test_train_help_names_every_option() -> None:
    process = await asyncio.create_subprocess_exec(FUNNELSTREAM, "train", "--help", stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    for option in ("--funnel-model", "--target-stage", "--horizon-days", "--min-positives", "--confidence"):
        assert option in out.decode()
