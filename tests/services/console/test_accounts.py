"""Accounts over real HTTP on the real database: roles, API tokens, sessions with CSRF, invites by email."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import httpx

from funnelstream.apps import create_app
from services.console import accounts, repository
from services.console.accounts import AccountError
from services.console.service import is_change
from shared.db import make_engine, make_sessionmaker
from shared.models import Lead, LeadIdentity
from shared.settings import AdminSettings
from tests.helpers import basic, eventually
from tests.services.console.stack import PASSWORD, SECRET, console_stack
from tests.smtp import SmtpSink

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ZERO = "00000000-0000-0000-0000-000000000001"


async def sign_in(client: httpx.AsyncClient, base: str, email: str, password: str = PASSWORD) -> httpx.Response:
    form = await client.get(f"{base}/console/login")
    token = CSRF.search(form.text)
    assert token, form.text
    return await client.post(
        f"{base}/console/login", data={"csrf": token.group(1), "email": email, "password": password, "next": "/console"}
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def state_changing_routes() -> list[tuple[str, str]]:
    app = create_app(
        admin=AdminSettings(
            database_url="postgresql://x@h/d", kafka_bootstrap_servers="h:1", admin_token="t", secret_key="s"
        )
    )
    routes = []
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            concrete = re.sub(r"\{[^}]+\}", ZERO, path)
            if path.startswith("/api/") and is_change(method.upper(), concrete):
                routes.append((method.upper(), concrete))
    return routes


async def test_a_viewer_cannot_change_anything_through_the_api(settings_kwargs: dict[str, Any], tmp_path: Path) -> None:
    routes = state_changing_routes()
    assert len(routes) >= 30  # sources, templates, sequences, consent, scoring, users ... all of them
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=30) as client:
        viewer = await stack.user(client, "viewer@example.com", "viewer")
        for method, path in routes:
            r = await client.request(method, stack.base_url + path, json={}, headers=bearer(viewer))
            assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert (await client.get(f"{stack.base_url}/api/sources", headers=bearer(viewer))).status_code == 200
        assert (await client.get(f"{stack.base_url}/api/audit", headers=bearer(viewer))).status_code == 200
        assert (await client.get(f"{stack.base_url}/api/users", headers=bearer(viewer))).status_code == 403
        listed = (await client.get(f"{stack.base_url}/api/sources", headers=stack.admin)).json()
        assert listed == []
        refused = (
            await client.get(f"{stack.base_url}/api/audit?actor=viewer@example.com&limit=500", headers=stack.admin)
        ).json()
        assert {e["status"] for e in refused["entries"]} == {403}


async def test_roles_sales_marketer_admin(settings_kwargs: dict[str, Any], tmp_path: Path) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=30) as client:
        sales = await stack.user(client, "sales@example.com", "sales")
        marketer = await stack.user(client, "marketer@example.com", "marketer")
        admin = await stack.user(client, "admin@example.com", "admin")
        base = stack.base_url
        # sales decides on leads (this one does not exist: past the role check, a 404) and changes nothing else
        r = await client.post(f"{base}/api/leads/nobody/stage", json={"decision": "accept"}, headers=bearer(sales))
        assert r.status_code == 404, r.text
        entries = (await client.get(f"{base}/api/audit?actor=sales@example.com", headers=stack.admin)).json()["entries"]
        assert [(e["kind"], e["status"]) for e in entries] == [("sales_decision", 404)]
        assert (await client.post(f"{base}/api/sources", json={"name": "s"}, headers=bearer(sales))).status_code == 403
        # marketer configures, but not people
        assert (
            await client.post(f"{base}/api/sources", json={"name": "m"}, headers=bearer(marketer))
        ).status_code == 201
        new = {"email": "x@example.com", "role": "viewer", "password": PASSWORD}
        assert (await client.post(f"{base}/api/users", json=new, headers=bearer(marketer))).status_code == 403
        assert (await client.post(f"{base}/api/users", json=new, headers=bearer(admin))).status_code == 201
        me = (await client.get(f"{base}/api/me", headers=bearer(marketer))).json()
        assert me["actor"] == "marketer@example.com" and me["role"] == "marketer" and me["via"] == "api_token"
        # a revoked token, and a demoted or disabled user's token, stop working at once
        mine = (await client.get(f"{base}/api/me/tokens", headers=bearer(marketer))).json()
        users = {u["email"]: u["id"] for u in (await client.get(f"{base}/api/users", headers=stack.admin)).json()}
        await client.patch(
            f"{base}/api/users/{users['marketer@example.com']}", json={"role": "viewer"}, headers=stack.admin
        )
        assert (
            await client.post(f"{base}/api/sources", json={"name": "m2"}, headers=bearer(marketer))
        ).status_code == 403
        await client.patch(
            f"{base}/api/users/{users['marketer@example.com']}", json={"disabled": True}, headers=stack.admin
        )
        assert (await client.get(f"{base}/api/sources", headers=bearer(marketer))).status_code == 401
        r = await client.post(f"{base}/api/me/tokens/{mine[0]['id']}/revoke", headers=bearer(sales))
        assert r.status_code == 404  # not sales' own token
        sales_tokens = (await client.get(f"{base}/api/me/tokens", headers=bearer(sales))).json()
        r = await client.post(f"{base}/api/me/tokens/{sales_tokens[0]['id']}/revoke", headers=bearer(sales))
        assert r.status_code == 200 and r.json()["revoked_at"]
        assert (await client.get(f"{base}/api/sources", headers=bearer(sales))).status_code == 401
        # the admin token keeps working, and is not a user
        assert (await client.get(f"{base}/api/me", headers=stack.admin)).json()["actor"] == "admin token"


async def test_session_cookie_needs_the_csrf_token_for_changes(settings_kwargs: dict[str, Any], tmp_path: Path) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=30) as client:
        await stack.user(client, "m@example.com", "marketer")
        base = stack.base_url
        bad = await sign_in(client, base, "m@example.com", "wrong password!")
        assert bad.status_code == 401 and "fs_session" not in client.cookies
        r = await sign_in(client, base, "m@example.com")
        assert r.status_code == 303 and r.headers["location"] == "/console"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=43200" in cookie
        assert (await client.get(f"{base}/api/me")).json()["via"] == "session"
        r = await client.post(f"{base}/api/sources", json={"name": "no csrf"})
        assert r.status_code == 403 and "CSRF" in r.json()["error"]
        page = await client.get(f"{base}/console/sources")
        csrf = CSRF.search(page.text)
        assert csrf
        r = await client.post(
            f"{base}/api/sources", json={"name": "with csrf"}, headers={"X-CSRF-Token": csrf.group(1)}
        )
        assert r.status_code == 201
        # the console's own forms: refused without the token, done with it
        r = await client.post(f"{base}/console/sources", data={"name": "form, no csrf"})
        assert r.status_code == 403
        r = await client.post(f"{base}/console/sources", data={"name": "form", "csrf": csrf.group(1)})
        assert r.status_code == 200 and "wk_" in r.text and "data-write-key" in r.text
        names = {s["name"] for s in (await client.get(f"{base}/api/sources", headers=stack.admin)).json()}
        assert names == {"with csrf", "form"}
        # the sign-in form itself is CSRF-protected (login CSRF)
        async with httpx.AsyncClient() as other:
            r = await other.post(f"{base}/console/login", data={"email": "m@example.com", "password": PASSWORD})
            assert r.status_code == 403
        # signing out ends the session on the server
        r = await client.post(f"{base}/console/logout", data={"csrf": csrf.group(1)})
        assert r.status_code == 303
        client.cookies.set("fs_session", cookie.split(";")[0].split("=", 1)[1])
        assert (await client.get(f"{base}/api/me")).status_code == 401


def mailbox_link(folder: Path, to: str) -> str:
    for eml in folder.glob("*.eml"):
        message = message_from_bytes(eml.read_bytes(), _class=EmailMessage, policy=default)
        if message["To"] == to:
            body = message.get_body(("plain",))
            assert body is not None
            found = re.search(r"https?://\S+/console/invite/\S+", body.get_content())
            assert found
            return found.group(0)
    return ""


async def test_invite_by_email_accept_once(settings_kwargs: dict[str, Any], tmp_path: Path) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=30) as client:
        base = stack.base_url
        r = await client.post(
            f"{base}/api/invites", json={"email": "New@Example.com", "role": "sales"}, headers=stack.admin
        )
        assert r.status_code == 201, r.text
        invite = r.json()
        assert invite["send_status"] == "sent" and invite["email"] == "new@example.com"
        link = mailbox_link(tmp_path, "new@example.com")
        assert link == invite["accept_url"] and link.startswith(base)
        page = await client.get(link)
        assert page.status_code == 200 and "new@example.com" in page.text
        csrf = CSRF.search(page.text)
        assert csrf
        short = await client.post(link, data={"csrf": csrf.group(1), "password": "short", "password2": "short"})
        assert short.status_code == 400 and "at least 10" in short.text
        fields = {"csrf": csrf.group(1), "password": "a good passphrase", "password2": "a good passphrase", "name": "N"}
        r = await client.post(link, data=fields)
        assert r.status_code == 303 and "fs_session" in r.headers["set-cookie"]
        me = (await client.get(f"{base}/api/me")).json()
        assert me == {"actor": "new@example.com", "role": "sales", "via": "session", "user_id": me["user_id"]}
        # the link works once
        async with httpx.AsyncClient() as other:  # another browser, with its own form token
            form = CSRF.search((await other.get(f"{base}/console/login")).text)
            assert form
            again = await other.post(link, data={**fields, "csrf": form.group(1)})
            assert again.status_code == 410 and "used already" in again.text
        assert (await client.get(link)).status_code == 410
        # the audit log has the invite (link redacted) and the acceptance
        entries = (await client.get(f"{base}/api/audit", headers=stack.admin)).json()["entries"]
        kinds = [(e["kind"], e["actor"]) for e in entries]
        assert ("invite_accepted", "new@example.com") in kinds and ("change", "admin token") in kinds
        created = next(e for e in entries if e["path"] == "/api/invites")
        assert created["after"]["accept_url"] == "[redacted]" and created["request"]["email"] == "New@Example.com"
        # an invite for an existing user is refused
        r = await client.post(
            f"{base}/api/invites", json={"email": "new@example.com", "role": "viewer"}, headers=stack.admin
        )
        assert r.status_code == 409


async def test_expired_and_withdrawn_invites_cannot_be_used(settings_kwargs: dict[str, Any], tmp_path: Path) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=30) as client:
        base = stack.base_url
        r = await client.post(
            f"{base}/api/invites", json={"email": "late@example.com", "role": "viewer"}, headers=stack.admin
        )
        invite = r.json()
        token = invite["accept_url"].rsplit("/", 1)[1]
        engine = make_engine(settings_kwargs["database_url"])
        maker = make_sessionmaker(engine)
        try:
            opened = await accounts.open_invite(maker, SECRET, token, datetime.now(UTC))
            later = opened.expires_at + timedelta(seconds=1)
            for attempt in (
                accounts.open_invite(maker, SECRET, token, later),
                accounts.accept_invite(maker, SECRET, token, "a good passphrase", "", 1, later),
            ):
                try:
                    await attempt
                except AccountError as exc:
                    assert exc.status == 410 and "expired" in str(exc)
                else:
                    raise AssertionError("an expired invite was accepted")
        finally:
            await engine.dispose()
        r = await client.post(f"{base}/api/invites/{invite['id']}/revoke", headers=stack.admin)
        assert r.status_code == 200 and r.json()["revoked_at"]
        page = await client.get(invite["accept_url"])
        assert page.status_code == 410 and "withdrawn" in page.text
        assert (await client.post(f"{base}/api/invites/{uuid.uuid4()}/revoke", headers=stack.admin)).status_code == 404


async def test_audit_records_changes_with_before_and_after(settings_kwargs: dict[str, Any], tmp_path: Path) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=30) as client:
        base = stack.base_url
        marketer = await stack.user(client, "m@example.com", "marketer")
        parts = {"subject": "Hi", "html": "<p>Hello {{ lead.email }}</p>"}
        r = await client.post(f"{base}/api/templates", json={"name": "hello", **parts}, headers=bearer(marketer))
        assert r.status_code == 201, r.text
        template_id = r.json()["id"]
        r = await client.put(
            f"{base}/api/templates/{template_id}", json={**parts, "subject": "Hi again"}, headers=bearer(marketer)
        )
        assert r.status_code == 200
        r = await client.post(f"{base}/api/sources", json={"name": "web"}, headers=bearer(marketer))
        assert r.status_code == 201 and r.json()["write_key"].startswith("wk_")
        await client.post(f"{base}/api/templates/validate", json=parts, headers=bearer(marketer))  # a read: not audited

        async def entries() -> list[dict[str, Any]] | None:
            found = (await client.get(f"{base}/api/audit?actor=m@example.com", headers=stack.admin)).json()["entries"]
            return found if len(found) == 3 else None

        found = await eventually(entries, what="three audit entries")
        source, update, create = found  # newest first
        assert create["method"] == "POST" and create["path"] == "/api/templates" and create["status"] == 201
        assert create["before"] is None and create["after"]["current_version"] == 1 and create["role"] == "marketer"
        assert update["method"] == "PUT" and update["before"]["current_version"] == 1
        assert update["after"]["current_version"] == 2 and update["request"]["subject"] == "Hi again"
        assert source["after"]["write_key"] == "[redacted]" and source["via"] == "api_token"
        assert "wk_" not in str(found)
        page = (await client.get(f"{base}/api/audit?actor=m@example.com&limit=2", headers=stack.admin)).json()
        assert len(page["entries"]) == 2 and page["next"] == page["entries"][1]["id"]
        older = (
            await client.get(f"{base}/api/audit?actor=m@example.com&before_id={page['next']}", headers=stack.admin)
        ).json()
        assert [e["id"] for e in older["entries"]] == [create["id"]]


async def test_sales_decision_is_audited_with_the_lead_before_and_after(
    settings_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    async with (
        console_stack(settings_kwargs, tmp_path, pipeline=True) as stack,
        httpx.AsyncClient(timeout=30) as client,
    ):
        base = stack.base_url
        sales = await stack.user(client, "sales@example.com", "sales")
        key = (await client.post(f"{base}/api/sources", json={"name": "web"}, headers=stack.admin)).json()["write_key"]
        r = await client.post(f"{base}/v1/track", json={"userId": "ann", "event": "Demo"}, headers=basic(key))
        assert r.status_code == 200

        async def lead() -> dict[str, Any] | None:
            r = await client.get(f"{base}/api/leads/ann", headers=bearer(sales))
            return r.json() if r.status_code == 200 else None

        before = await eventually(lead, what="the lead")
        decision = {"decision": "set", "model": "b2b", "stage": "lead", "reason": "met at the fair"}
        r = await client.post(f"{base}/api/leads/ann/stage", json=decision, headers=bearer(sales))
        assert r.status_code in (200, 202), r.text
        entries = (await client.get(f"{base}/api/audit?kind=sales_decision", headers=stack.admin)).json()["entries"]
        assert len(entries) == 1
        entry = entries[0]
        assert (
            entry["actor"] == "sales@example.com"
            and entry["role"] == "sales"
            and entry["path"] == "/api/leads/ann/stage"
        )
        assert entry["request"]["reason"] == "met at the fair" and entry["status"] == r.status_code
        assert entry["before"]["stages"] == before["stages"] and entry["before"]["user_id"] == "ann"
        assert entry["after"] == r.json()


async def test_an_erasure_leaves_no_trace_of_the_person_in_the_audit_log(
    settings_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=30) as client:
        engine = make_engine(settings_kwargs["database_url"])
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                lead = Lead(lead_id=uuid.uuid4(), user_id="ann", email="ann@example.com")
                session.add(lead)
                await session.flush()
                session.add(LeadIdentity(kind="user", value="ann", lead_id=lead.lead_id))
                common = {"actor": "x", "role": "admin", "via": "admin_token", "kind": "change", "status": 200}
                await repository.add_audit(
                    session, **common, method="POST", path="/api/leads/ann/stage", request={}, before=None, after={}
                )
                await repository.add_audit(
                    session, **common, method="PUT", path="/api/other", request={"user_id": "ann"}, before=None,
                    after={},
                )  # fmt: skip
                await repository.add_audit(
                    session, **common, method="PUT", path="/api/kept", request={"user_id": "bob"}, before=None,
                    after={},
                )  # fmt: skip
        finally:
            await engine.dispose()
        r = await client.delete(f"{stack.base_url}/api/leads/ann", headers=stack.admin)
        assert r.status_code == 200, r.text
        entries = (await client.get(f"{stack.base_url}/api/audit", headers=stack.admin)).json()["entries"]
        assert "ann" not in json.dumps(entries)
        assert [e["path"] for e in entries] == ["/api/leads/[erased]", "/api/kept", "[erased]", "[erased]"]


async def test_sign_in_stops_after_ten_failures_for_an_email(settings_kwargs: dict[str, Any], tmp_path: Path) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=30) as client:
        await stack.user(client, "m@example.com", "marketer")
        await stack.user(client, "o@example.com", "marketer")
        for _ in range(10):
            assert (await sign_in(client, stack.base_url, "M@example.com", "wrong password")).status_code == 401
        r = await sign_in(client, stack.base_url, "m@example.com")  # the right password, too late
        assert r.status_code == 429 and "too many failed sign-ins" in r.text
        assert (await sign_in(client, stack.base_url, "o@example.com")).status_code == 303
        failed = (
            await client.get(f"{stack.base_url}/api/audit?kind=sign_in_failed&limit=50", headers=stack.admin)
        ).json()
        assert len(failed["entries"]) == 10 and {e["actor"] for e in failed["entries"]} == {"m@example.com"}


async def test_invitation_goes_out_over_real_smtp_once(
    settings_kwargs: dict[str, Any], tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    address = smtp_sink.address("invitee")
    smtp = (smtp_sink.host, smtp_sink.port)
    async with console_stack(settings_kwargs, tmp_path, smtp=smtp) as stack, httpx.AsyncClient(timeout=30) as client:
        r = await client.post(
            f"{stack.base_url}/api/invites", json={"email": address, "role": "viewer"}, headers=stack.admin
        )
        assert r.status_code == 201 and r.json()["send_status"] == "sent", r.text
        (received,) = await smtp_sink.wait_for(address)
        message = received.message
        assert message["Subject"] == "You are invited to FunnelStream"
        body = message.get_body(("plain",))
        assert body is not None and r.json()["accept_url"] in body.get_content()
        assert list(tmp_path.glob("*.eml")) == []
        sends = (await client.get(f"{stack.base_url}/api/sends", headers=stack.admin)).json()["sends"]
        assert [(s["kind"], s["status"]) for s in sends] == [("transactional", "sent")]


async def test_a_console_session_of_any_role_opens_the_dashboard(
    settings_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=30) as client:
        r = await client.get(f"{stack.base_url}/dashboard", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
        await stack.user(client, "viewer@example.com", "viewer")
        assert (await sign_in(client, stack.base_url, "viewer@example.com")).status_code in (200, 303)
        r = await client.get(f"{stack.base_url}/dashboard", follow_redirects=False)
        assert r.status_code == 200 and "FunnelStream" in r.text
