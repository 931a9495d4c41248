"""A local, real HTTP server standing in for the Meta Marketing API, the Google Ads API and a webhook
receiver. Every request is checked against the documented format (hashing, schema fields, batch size,
headers); a request that breaks it is recorded in `violations` and answered 400. What passes changes the
server's idea of each audience's members, so tests assert what the platform would hold."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared import signing

HEX64 = re.compile(r"^[0-9a-f]{64}$")
EMAIL_LIKE = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+")
MAX_META_ROWS = 10_000
MAX_GOOGLE_OPERATIONS = 100_000
META_TOKEN = "meta-token-secret-1234"
GOOGLE_TOKEN = "google-oauth-token-5678"
DEVELOPER_TOKEN = "dev-token-abcd"


@dataclass
class Job:
    user_list: str
    operations: list[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=list)
    ran: bool = False


@dataclass
class FakePlatforms:
    url: str = ""
    forbidden: set[str] = field(default_factory=set)  # raw emails and phones that must never arrive
    violations: list[str] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, records
    meta: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # audience id -> (email, phone) rows
    google: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # user list -> identifiers
    jobs: dict[str, Job] = field(default_factory=dict)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    webhook_secret: str = ""
    consents: list[dict[str, str]] = field(default_factory=list)
    fail_next: int = 0

    def _bad(self, why: str) -> Response:
        self.violations.append(why)
        return JSONResponse({"error": why}, status_code=400)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        for raw in self.forbidden:
            if raw.encode() in body or raw.lower().encode() in body:
                return self._bad(f"raw identifier {raw!r} in {path}")
        if EMAIL_LIKE.search(body):
            return self._bad(f"something like an email address in {path}")
        if self.fail_next > 0:
            self.fail_next -= 1
            self.requests.append((request.method, path, -500))
            return JSONResponse({"error": {"message": "temporarily unavailable"}}, status_code=500)
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            return self._bad(f"not JSON: {path}")
        if path.startswith("/hook"):
            return self._webhook(request, body, data)
        if path.endswith("/users"):
            return self._meta(request, path, data)
        if "/offlineUserDataJobs" in path:
            return self._google(request, path, data)
        return self._bad(f"unknown path {path}")

    def _webhook(self, request: Request, body: bytes, data: dict[str, Any]) -> Response:
        header = request.headers.get(signing.SIGNATURE_HEADER, "")
        if not signing.verify(header, body, [self.webhook_secret], now=time.time()):
            return self._bad("webhook signature does not verify")
        self.webhooks.append(data)
        return JSONResponse({"ok": True})

    def _meta(self, request: Request, path: str, data: dict[str, Any]) -> Response:
        # /{version}/{audience_id}/users, POST adds and DELETE removes
        parts = path.strip("/").split("/")
        if len(parts) != 3 or not re.fullmatch(r"v\d+\.\d+", parts[0]):
            return self._bad(f"meta path {path}")
        if request.headers.get("authorization") != f"Bearer {META_TOKEN}":
            return self._bad("meta: wrong or missing access token")
        if request.method not in ("POST", "DELETE"):
            return self._bad(f"meta: method {request.method}")
        if set(data) != {"payload"} or set(data["payload"]) != {"schema", "data"}:
            return self._bad(f"meta: body keys {sorted(data)}")
        schema, rows = data["payload"]["schema"], data["payload"]["data"]
        if schema != ["EMAIL", "PHONE"]:
            return self._bad(f"meta: schema {schema}")
        if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_META_ROWS:
            return self._bad(f"meta: {len(rows)} rows in one request")
        for row in rows:
            if not isinstance(row, list) or len(row) != 2 or not any(row):
                return self._bad(f"meta: row {row}")
            if any(v and not HEX64.match(v) for v in row):
                return self._bad(f"meta: not SHA-256 hex: {row}")
        members = self.meta.setdefault(parts[1], set())
        for row in rows:
            if request.method == "POST":
                members.add((row[0], row[1]))
            else:
                members.discard((row[0], row[1]))
        self.requests.append((request.method, path, len(rows)))
        return JSONResponse({"audience_id": parts[1], "num_received": len(rows), "num_invalid_entries": 0})

    def _google(self, request: Request, path: str, data: dict[str, Any]) -> Response:
        if request.headers.get("authorization") != f"Bearer {GOOGLE_TOKEN}":
            return self._bad("google: wrong or missing OAuth token")
        if request.headers.get("developer-token") != DEVELOPER_TOKEN:
            return self._bad("google: wrong or missing developer-token")
        create = re.fullmatch(r"/(v\d+)/customers/(\d+)/offlineUserDataJobs:create", path)
        if create:
            job = data.get("job", {})
            user_list = job.get("customerMatchUserListMetadata", {}).get("userList", "")
            consent = job.get("customerMatchUserListMetadata", {}).get("consent", {})
            if set(consent) - {"adUserData", "adPersonalization"} or set(consent.values()) - {"GRANTED", "DENIED"}:
                return self._bad(f"google: consent {consent}")
            if set(job.get("customerMatchUserListMetadata", {})) - {"userList", "consent"}:
                return self._bad("google: unknown user list metadata")
            self.consents.append(consent)
            if job.get("type") != "CUSTOMER_MATCH_USER_LIST":
                return self._bad(f"google: job type {job.get('type')}")
            if not re.fullmatch(rf"customers/{create.group(2)}/userLists/\d+", user_list):
                return self._bad(f"google: user list {user_list!r}")
            name = f"customers/{create.group(2)}/offlineUserDataJobs/{len(self.jobs) + 1}"
            self.jobs[name] = Job(user_list)
            self.requests.append(("POST", path, 0))
            return JSONResponse({"resourceName": name})
        action = re.fullmatch(r"/v\d+/(customers/\d+/offlineUserDataJobs/\d+):(addOperations|run)", path)
        if action is None or action.group(1) not in self.jobs:
            return self._bad(f"google: unknown path or job {path}")
        job = self.jobs[action.group(1)]
        if job.ran:
            return self._bad("google: job already run")
        if action.group(2) == "run":
            job.ran = True
            members = self.google.setdefault(job.user_list, set())
            for kind, identifiers in job.operations:
                for identifier in identifiers:
                    (members.add if kind == "create" else members.discard)(identifier)
            self.requests.append(("POST", path, len(job.operations)))
            return JSONResponse({"name": f"operations/{action.group(1)}"})
        operations = data.get("operations")
        if not isinstance(operations, list) or not 1 <= len(operations) <= MAX_GOOGLE_OPERATIONS:
            return self._bad("google: operations missing or too many")
        for operation in operations:
            if len(operation) != 1 or next(iter(operation)) not in ("create", "remove"):
                return self._bad(f"google: operation {operation}")
            kind, user_data = next(iter(operation.items()))
            identifiers = user_data.get("userIdentifiers")
            if not identifiers or set(user_data) != {"userIdentifiers"}:
                return self._bad(f"google: user data {user_data}")
            found = []
            for identifier in identifiers:
                if len(identifier) != 1 or next(iter(identifier)) not in ("hashedEmail", "hashedPhoneNumber"):
                    return self._bad(f"google: identifier {identifier}")
                key, value = next(iter(identifier.items()))
                if not HEX64.match(value):
                    return self._bad(f"google: not SHA-256 hex: {value}")
                found.append((key, value))
            job.operations.append((kind, tuple(found)))
        self.requests.append(("POST", path, len(operations)))
        return JSONResponse({})


@contextlib.asynccontextmanager
async def fake_platforms() -> AsyncIterator[FakePlatforms]:
    fake = FakePlatforms()
    methods = ["GET", "POST", "DELETE", "PUT"]
    app = Starlette(routes=[Route("/{path:path}", fake.handle, methods=methods)])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        await task
