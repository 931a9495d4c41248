"""`funnelstream users create`: the first admin from the command line, then signing in with it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.services.console.stack import console_stack

FUNNELSTREAM = str(Path(sys.executable).with_name("funnelstream"))


async def cli(database_url: str, *args: str, stdin: str = "") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        FUNNELSTREAM, "users", "create", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "FUNNELSTREAM_DATABASE_URL": database_url},
    )  # fmt: skip
    out, err = await process.communicate(stdin.encode())
    return process.returncode or 0, out.decode(), err.decode()


async def test_first_admin_from_the_cli_can_use_the_api(settings_kwargs: dict[str, Any], tmp_path: Path) -> None:
    url = settings_kwargs["database_url"]
    code, out, err = await cli(url, "--email", "Boss@Example.com", "--password-stdin", stdin="a strong passphrase\n")
    assert code == 0, err
    assert out.startswith("created admin boss@example.com")
    code, _, err = await cli(url, "--email", "boss@example.com", "--password-stdin", stdin="a strong passphrase\n")
    assert code == 1 and "exists" in err
    code, _, err = await cli(url, "--email", "x@example.com", "--role", "owner", "--password-stdin", stdin="x" * 12)
    assert code == 2 and "--role" in err
    code, _, err = await cli(url, "--email", "x@example.com", "--password-stdin", stdin="short\n")
    assert code == 2 and "at least 10" in err
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient() as client:
        form = await client.get(f"{stack.base_url}/console/login")
        csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        fields = {"csrf": csrf, "email": "boss@example.com", "password": "a strong passphrase"}
        r = await client.post(f"{stack.base_url}/console/login", data=fields)
        assert r.status_code == 303
        me = (await client.get(f"{stack.base_url}/api/me")).json()
        assert me["actor"] == "boss@example.com" and me["role"] == "admin"
