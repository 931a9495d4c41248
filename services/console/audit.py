"""The audit log, recorded centrally: every admin API request that changes something, by whom.

An ASGI middleware around the admin API. For each state-changing request it reads the resource as it
was before (a GET of the same path, or of the resource an action is posted to, where the API has one),
lets the route run, and writes one audit row — actor, method, path, status, request body, the before and
the answer (the resource after, or the error), secrets redacted — before the answer leaves, so a client
that got its answer finds the entry. Requests refused before anyone was identified (401) are not recorded;
an erasure is recorded without the person's identity or data, and the entries before it that name the
person (in the path or a body) lose their bodies.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.console import repository
from services.console.auth import ACTOR_KEY
from services.console.service import SALES_DECISION, Actor, is_change, redact

log = logging.getLogger(__name__)
MAX_STORED = 64 * 1024
ERASURE = re.compile(r"^/api/leads/[^/]+$")


def body_value(raw: bytes, content_type: str) -> Any:
    """What the audit log keeps of a body: JSON or form fields (secrets redacted), else its size."""
    if not raw:
        return None
    if len(raw) <= MAX_STORED:
        try:
            if "application/x-www-form-urlencoded" in content_type:
                return redact(dict(parse_qsl(raw.decode(), keep_blank_values=True)))
            if "json" in content_type or not content_type:
                return redact(json.loads(raw))
        except (ValueError, UnicodeDecodeError):
            pass
    return {"content_type": content_type or None, "bytes": len(raw)}


def erasure(method: str, path: str) -> bool:
    """DELETE /api/leads/{identity} erases a person: the audit log keeps that it happened, not who."""
    return method == "DELETE" and bool(ERASURE.match(path))


def resource_path(method: str, path: str, content_type: str) -> str | None:
    """Where the API shows the resource a change applies to: the path itself, or the one an action is
    posted to (POST /api/sequences/{id}/activate → /api/sequences/{id}); None for a creation, an erasure
    and uploads (CSV imports, files), whose GET may be a download rather than a JSON resource."""
    if erasure(method, path) or (content_type and "json" not in content_type):
        return None
    if method in ("PUT", "PATCH", "DELETE"):
        return path
    parts = path.rstrip("/").split("/")
    return "/".join(parts[:-1]) if len(parts) >= 5 else None


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not scope["path"].startswith("/api/")
            or not is_change(scope["method"], scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        content_type = _header(scope, b"content-type")
        before = await self._read(scope, resource_path(scope["method"], scope["path"], content_type))

        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        held: list[Message] = []
        await self.app(scope, replay, _collect(held))
        actor = scope.get(ACTOR_KEY)
        if isinstance(actor, Actor):
            await self._record(scope, actor, raw, before, held)
        for message in held:
            await send(message)

    async def _read(self, scope: Scope, path: str | None) -> Any:
        if path is None:
            return None
        skip = (b"content-type", b"content-length")
        headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() not in skip]
        sub = {**scope, "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b""}
        sub["headers"] = headers
        sub.pop(ACTOR_KEY, None)
        held: list[Message] = []

        async def nothing() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        try:
            await self.app(sub, nothing, _collect(held))
        except Exception:  # a failed read only loses the "before" of the entry
            log.exception("audit: reading %s before a change failed", path)
            return None
        status, body, _ = _parts(held)
        return body_value(body, "application/json") if status == 200 else None

    async def _record(self, scope: Scope, actor: Actor, raw: bytes, before: Any, held: list[Message]) -> None:
        status, body, content_type = _parts(held)
        path = scope["path"]
        erased = erasure(scope["method"], path)
        if erased:
            path, raw, body = "/api/leads/[erased]", b"", b""
        maker: async_sessionmaker[AsyncSession] = scope["app"].state.sessionmaker
        try:
            async with maker() as session, session.begin():
                await repository.add_audit(
                    session,
                    actor=actor.label,
                    user_id=actor.user_id,
                    role=actor.role,
                    via=actor.via,
                    kind="sales_decision" if SALES_DECISION.match(path) else "change",
                    method=scope["method"],
                    path=path
                    + (f"?{scope['query_string'].decode()}" if scope.get("query_string") and not erased else ""),
                    status=status,
                    request=body_value(raw, _header(scope, b"content-type")),
                    before=before,
                    after=body_value(body, content_type),
                )
                if erased and status == 200:
                    await repository.scrub_audit(session, scope["path"].rsplit("/", 1)[1])
        except Exception:
            log.exception("audit: recording %s %s by %s failed", scope["method"], path, actor.label)


def _collect(held: list[Message]) -> Send:
    async def send(message: Message) -> None:
        held.append(message)

    return send


def _parts(held: list[Message]) -> tuple[int, bytes, str]:
    status, content_type, body = 500, "", b""
    for message in held:
        if message["type"] == "http.response.start":
            status = message["status"]
            for key, value in message.get("headers", ()):
                if key.lower() == b"content-type":
                    content_type = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")
    return status, body, content_type
