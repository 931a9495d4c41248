"""Console screens over real HTTP without a browser: scoring rules (dry run before activation), users and
invites, API tokens, error pages, and the server-side end of a session."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from services.console import accounts
from shared.db import make_engine, make_sessionmaker
from tests.helpers import basic, eventually
from tests.services.console.stack import PASSWORD, console_stack
from tests.services.console.test_accounts import CSRF, sign_in
from tests.smtp import SmtpSink


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, html
    return found.group(1)


async def test_scoring_draft_dry_run_then_activate(settings_kwargs: dict[str, Any], tmp_path: Path) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=60) as client:
        base = stack.base_url
        await stack.user(client, "m@example.com", "marketer")
        await sign_in(client, base, "m@example.com")
        screen = await client.get(f"{base}/console/scoring")
        assert screen.status_code == 200 and "(active)" in screen.text
        csrf = csrf_of(screen.text)
        active = (await client.get(f"{base}/api/scoring/rule-sets/active", headers=stack.admin)).json()
        rules = active["rules"] | {"behaviour": [{"id": "any-event", "type": None, "points": 5}]}
        bad = await client.post(f"{base}/console/scoring/rule-sets", data={"csrf": csrf, "rules": "{not json"})
        assert bad.status_code == 400 and "not JSON" in bad.text
        r = await client.post(
            f"{base}/console/scoring/rule-sets", data={"csrf": csrf, "rules": json.dumps(rules), "note": "5 points"}
        )
        assert r.status_code == 303
        draft = r.headers["location"]
        version = int(re.search(r"version=(\d+)", draft).group(1))  # type: ignore[union-attr]
        page = await client.get(base + draft)
        assert "(draft)" in page.text and f"/console/scoring/rule-sets/{version}/activate" in page.text
        r = await client.post(
            f"{base}/console/scoring/dry-run", data={"csrf": csrf, "version": str(version), "target": "b2b/lead"}
        )
        assert r.status_code == 200 and 'id="dry-run"' in r.text and f"Dry run of version {version}" in r.text
        r = await client.post(f"{base}/console/scoring/rule-sets/{version}/activate", data={"csrf": csrf})
        assert r.status_code == 303, r.text
        now_active = (await client.get(f"{base}/api/scoring/rule-sets/active", headers=stack.admin)).json()
        assert now_active["version"] == version and float(now_active["rules"]["behaviour"][0]["points"]) == 5
        audit = (await client.get(f"{base}/api/audit?path=/api/scoring", headers=stack.admin)).json()["entries"]
        assert [(e["method"], e["path"], e["actor"]) for e in audit] == [
            ("POST", f"/api/scoring/rule-sets/{version}/activate", "m@example.com"),
            ("POST", "/api/scoring/rule-sets", "m@example.com"),
        ]


async def test_admin_invites_and_manages_users_on_screen(settings_kwargs: dict[str, Any], tmp_path: Path) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=60) as client:
        base = stack.base_url
        await stack.user(client, "boss@example.com", "admin")
        await stack.user(client, "m@example.com", "marketer")
        await sign_in(client, base, "boss@example.com")
        csrf = csrf_of((await client.get(f"{base}/console/users")).text)
        r = await client.post(
            f"{base}/console/users/invite", data={"csrf": csrf, "email": "v@example.com", "role": "viewer"}
        )
        assert r.status_code == 200 and "Invitation to v@example.com as viewer: email sent" in r.text
        assert len(list(tmp_path.glob("*.eml"))) == 1
        users = {u["email"]: u["id"] for u in (await client.get(f"{base}/api/users", headers=stack.admin)).json()}
        r = await client.post(f"{base}/console/users/{users['m@example.com']}", data={"csrf": csrf, "role": "sales"})
        assert r.status_code == 303
        r = await client.post(f"{base}/console/users/{users['m@example.com']}", data={"csrf": csrf, "disabled": "true"})
        assert r.status_code == 303
        listed = (await client.get(f"{base}/console/users")).text
        assert "disabled" in listed
        async with httpx.AsyncClient() as other:
            denied = await sign_in(other, base, "m@example.com")
            assert denied.status_code == 401
        # a marketer cannot open the users screen: an HTML page saying why
        await client.post(f"{base}/console/users/{users['m@example.com']}", data={"csrf": csrf, "disabled": "false"})
        async with httpx.AsyncClient() as other:
            await sign_in(other, base, "m@example.com")
            r = await other.get(f"{base}/console/users")
            assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
            assert "only an admin manages users" in r.text


async def test_api_token_screen_shows_the_token_once(settings_kwargs: dict[str, Any], tmp_path: Path) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=60) as client:
        base = stack.base_url
        await stack.user(client, "m@example.com", "marketer")
        await sign_in(client, base, "m@example.com")
        csrf = csrf_of((await client.get(f"{base}/console/tokens")).text)
        r = await client.post(f"{base}/console/tokens", data={"csrf": csrf, "name": "export script"})
        token = re.search(r'id="new-token">(fst_[^<]+)<', r.text)
        assert token
        me = (await client.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token.group(1)}"})).json()
        assert me["actor"] == "m@example.com" and me["via"] == "api_token"
        again = (await client.get(f"{base}/console/tokens")).text
        assert "export script" in again and token.group(1) not in again


async def test_a_session_ends_on_the_server_when_it_expires(settings_kwargs: dict[str, Any], tmp_path: Path) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=60) as client:
        await stack.user(client, "m@example.com", "marketer")
        engine = make_engine(settings_kwargs["database_url"])
        try:
            maker = make_sessionmaker(engine)
            past = datetime.now(UTC) - timedelta(hours=2)
            old = await accounts.sign_in(maker, "m@example.com", PASSWORD, 1, past)
            fresh = await accounts.sign_in(maker, "m@example.com", PASSWORD, 1, datetime.now(UTC))
        finally:
            await engine.dispose()
        assert old is not None and fresh is not None
        for session, status in ((old, 401), (fresh, 200)):
            async with httpx.AsyncClient(cookies={"fs_session": session.token}) as browser:
                assert (await browser.get(f"{stack.base_url}/api/me")).status_code == status
        async with httpx.AsyncClient(cookies={"fs_session": old.token}) as browser:
            r = await browser.get(f"{stack.base_url}/console/leads")
        assert r.status_code == 303 and r.headers["location"] == "/console/login?next=/console/leads"


async def test_forms_screen_creates_a_form_and_shows_its_embed_code(
    settings_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=60) as client:
        base = stack.base_url
        await stack.user(client, "m@example.com", "marketer")
        await sign_in(client, base, "m@example.com")
        screen = await client.get(f"{base}/console/forms")
        csrf = csrf_of(screen.text)
        definition = re.search(
            r'<textarea id="definition" name="definition" rows="16">(.*?)</textarea>', screen.text, re.S
        )
        assert definition
        example = json.loads(definition.group(1).replace("&#34;", '"').replace("&quot;", '"'))
        r = await client.post(
            f"{base}/console/forms", data={"csrf": csrf, "name": "guide", "definition": json.dumps(example)}
        )
        assert r.status_code == 303, r.text
        page = await client.get(base + r.headers["location"])
        form_id = r.headers["location"].split("/")[-1].split("?")[0]
        assert page.status_code == 200 and f"/forms/{form_id}.js" in page.text and 'id="embed-iframe"' in page.text
        shown = await client.get(f"{base}/forms/{form_id}")
        assert shown.status_code == 200 and "Work email" in shown.text
        edited = {**example, "title": "The 2027 pricing guide"}
        r = await client.post(
            f"{base}/console/forms/{form_id}/edit", data={"csrf": csrf, "definition": json.dumps(edited)}
        )
        assert r.status_code == 303 and "version+2" in r.headers["location"]
        assert "The 2027 pricing guide" in (await client.get(f"{base}/forms/{form_id}")).text
        r = await client.post(f"{base}/console/forms/{form_id}/archive", data={"csrf": csrf})
        assert r.status_code == 303
        assert (await client.get(f"{base}/forms/{form_id}")).status_code == 404
        bad = await client.post(
            f"{base}/console/forms", data={"csrf": csrf, "name": "x", "definition": '{"fields": []}'}
        )
        assert bad.status_code == 400 and "definition" in bad.text


async def test_audience_screen_shows_destinations_and_keeps_credentials_out_of_the_audit(
    settings_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=60) as client:
        base = stack.base_url
        await stack.user(client, "m@example.com", "marketer")
        await sign_in(client, base, "m@example.com")
        csrf = csrf_of((await client.get(f"{base}/console/audiences")).text)
        definition = {"include": [{"kind": "event", "name": "Product Viewed", "days": 7}]}
        r = await client.post(
            f"{base}/console/audiences", data={"csrf": csrf, "name": "viewers", "definition": json.dumps(definition)}
        )
        assert r.status_code == 303, r.text
        audience = r.headers["location"].split("?")[0]
        fields = {
            "csrf": csrf, "kind": "meta", "name": "Meta retargeting",
            "config": json.dumps({"audience_id": "2385"}),
            "credentials": json.dumps({"access_token": "EAAB-secret-1234"}),
        }  # fmt: skip
        r = await client.post(f"{base}{audience}/destinations", data=fields)
        assert r.status_code == 303, r.text
        page = (await client.get(base + audience)).text
        assert "Meta retargeting" in page and "EAAB-secret" not in page
        wider = {"include": [{"kind": "event", "name": "Product Viewed", "days": 30}]}
        r = await client.post(f"{base}{audience}/edit", data={"csrf": csrf, "definition": json.dumps(wider)})
        assert r.status_code == 303, r.text
        api = (await client.get(f"{base}/api{audience.removeprefix('/console')}", headers=stack.admin)).json()
        assert api["definition"]["include"][0]["days"] == 30
        entries = (await client.get(f"{base}/api/audit?path=/api/audiences", headers=stack.admin)).json()["entries"]
        assert len(entries) == 3 and "EAAB-secret" not in json.dumps(entries)
        assert entries[1]["request"]["credentials"]["access_token"] == "[redacted]"
        assert entries[0]["method"] == "PATCH" and entries[0]["before"]["definition"]["include"][0]["days"] == 7


async def test_experiment_screen_starts_shows_results_and_decides(
    settings_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=60) as client:
        base = stack.base_url
        ids = []
        for name in ("a", "b"):
            r = await client.post(
                f"{base}/api/templates", json={"name": name, "subject": name, "html": "<p>x</p>"}, headers=stack.admin
            )
            ids.append(r.json()["id"])
        variants = [{"key": "a", "template_id": ids[0]}, {"key": "b", "template_id": ids[1]}]
        definition = {
            "trigger": {"kind": "event", "event": "Signed Up"},
            "steps": [{"id": "send", "type": "send_email", "template_id": ids[0], "variants": variants}],
        }
        r = await client.post(
            f"{base}/api/sequences", json={"name": "ab", "definition": definition}, headers=stack.admin
        )
        assert r.status_code == 201, r.text
        sequence_id = r.json()["id"]
        await stack.user(client, "m@example.com", "marketer")
        await sign_in(client, base, "m@example.com")
        csrf = csrf_of((await client.get(f"{base}/console/experiments")).text)
        fields = {
            "csrf": csrf,
            "name": "subject test",
            "sequence_id": sequence_id,
            "step_id": "send",
            "metric": "click",
        }
        wrong = await client.post(f"{base}/console/experiments", data={**fields, "step_id": "nope"})
        assert wrong.status_code in (400, 404) and "nope" in wrong.text
        r = await client.post(f"{base}/console/experiments", data=fields)
        assert r.status_code == 303, r.text
        page = await client.get(base + r.headers["location"])
        assert page.status_code == 200 and "(running)" in page.text and "<td>b</td>" in page.text
        experiment = r.headers["location"].split("?")[0]
        r = await client.post(f"{base}{experiment}/decide", data={"csrf": csrf, "winner": "b"})
        assert r.status_code == 303
        page = await client.get(base + experiment)
        assert "(decided)" in page.text and "winner <strong>b</strong>" in page.text


async def test_sales_rejects_a_lead_on_its_page_and_a_viewer_sees_no_decision_form(
    settings_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    async with (
        console_stack(settings_kwargs, tmp_path, pipeline=True) as stack,
        httpx.AsyncClient(timeout=60) as client,
    ):
        base = stack.base_url
        await stack.user(client, "s@example.com", "sales")
        await stack.user(client, "v@example.com", "viewer")
        key = (await client.post(f"{base}/api/sources", json={"name": "web"}, headers=stack.admin)).json()["write_key"]
        r = await client.post(f"{base}/v1/track", json={"userId": "ann", "event": "Demo"}, headers=basic(key))
        assert r.status_code == 200

        async def lead_stage() -> str | None:
            r = await client.get(f"{base}/api/leads/ann", headers=stack.admin)
            return str(r.json()["stage"]) if r.status_code == 200 else None

        assert await eventually(lead_stage, what="the lead") == "lead"
        async with httpx.AsyncClient(timeout=60) as viewer:
            await sign_in(viewer, base, "v@example.com")
            page = await viewer.get(f"{base}/console/leads/ann")
            assert page.status_code == 200 and "Demo" in page.text and "Sales decision" not in page.text
        await sign_in(client, base, "s@example.com")
        page = await client.get(f"{base}/console/leads/ann")
        assert "Sales decision" in page.text
        r = await client.post(
            f"{base}/console/leads/ann/decision",
            data={"csrf": csrf_of(page.text), "decision": "reject", "reason": "no budget"},
        )
        assert r.status_code == 303, r.text
        assert await eventually(lambda: _is(lead_stage, "visitor"), what="the lead recycled")
        page = await client.get(f"{base}/console/leads/ann")
        assert "stage (sales)" in page.text and "no budget" in page.text
        entries = (await client.get(f"{base}/api/audit?kind=sales_decision", headers=stack.admin)).json()["entries"]
        assert [(e["actor"], e["request"]["decision"]) for e in entries] == [("s@example.com", "reject")]


async def _is(probe: Any, value: str) -> bool:
    return bool(await probe() == value)


async def test_sequence_page_dry_run_and_edit_template_archive(settings_kwargs: dict[str, Any], tmp_path: Path) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=60) as client:
        base = stack.base_url
        r = await client.post(
            f"{base}/api/templates", json={"name": "t", "subject": "s", "html": "<p>x</p>"}, headers=stack.admin
        )
        template_id = r.json()["id"]
        definition = {
            "trigger": {"kind": "event", "event": "Signed Up"},
            "steps": [{"id": "send", "type": "send_email", "template_id": template_id}],
        }
        r = await client.post(
            f"{base}/api/sequences", json={"name": "s", "definition": definition}, headers=stack.admin
        )
        sequence = f"/console/sequences/{r.json()['id']}"
        await stack.user(client, "m@example.com", "marketer")
        await sign_in(client, base, "m@example.com")
        page = await client.get(base + sequence)
        csrf = csrf_of(page.text)
        r = await client.post(f"{base}{sequence}/dry-run", data={"csrf": csrf, "days": "7"})
        assert r.status_code == 200 and 'id="dry-run"><strong>0</strong> leads' in r.text
        edited = {**definition, "steps": [{"id": "wait", "type": "wait", "duration": "PT1H"}, *definition["steps"]]}
        r = await client.post(f"{base}{sequence}/edit", data={"csrf": csrf, "definition": json.dumps(edited)})
        assert r.status_code == 303 and "version+2" in r.headers["location"]
        page = await client.get(base + sequence)
        assert "version 2" in page.text and "<strong>wait</strong>" in page.text
        bad = await client.post(f"{base}{sequence}/edit", data={"csrf": csrf, "definition": '{"steps": []}'})
        assert bad.status_code == 400 and "definition" in bad.text
        r = await client.post(f"{base}/console/templates/{template_id}/archive", data={"csrf": csrf})
        assert r.status_code == 303
        listed = (await client.get(base + r.headers["location"])).text
        assert "Template t archived" in listed and f"/console/templates/{template_id}" not in listed


async def test_a_viewer_changes_their_password_and_an_admin_resets_one(
    settings_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=60) as client:
        base = stack.base_url
        await stack.user(client, "v@example.com", "viewer")
        async with httpx.AsyncClient() as other_browser:
            await sign_in(other_browser, base, "v@example.com")
            await sign_in(client, base, "v@example.com")
            csrf = csrf_of((await client.get(f"{base}/console/password")).text)
            wrong = {
                "csrf": csrf,
                "current": "not it at all",
                "password": "new passphrase!",
                "password2": "new passphrase!",
            }
            r = await client.post(f"{base}/console/password", data=wrong)
            assert r.status_code == 400 and "current password is wrong" in r.text
            r = await client.post(f"{base}/console/password", data={**wrong, "current": PASSWORD})
            assert r.status_code == 303
            assert (await client.get(f"{base}/api/me")).status_code == 200  # this browser stays signed in
            assert (await other_browser.get(f"{base}/api/me")).status_code == 401  # the other one is out
        async with httpx.AsyncClient() as again:
            assert (await sign_in(again, base, "v@example.com", "new passphrase!")).status_code == 303
        users = {u["email"]: u["id"] for u in (await client.get(f"{base}/api/users", headers=stack.admin)).json()}
        r = await client.patch(
            f"{base}/api/users/{users['v@example.com']}", json={"password": "reset by admin"}, headers=stack.admin
        )
        assert r.status_code == 200
        assert (await client.get(f"{base}/api/me")).status_code == 401
        entry = (await client.get(f"{base}/api/audit?path=/api/users", headers=stack.admin)).json()["entries"][0]
        assert entry["request"] == {"password": "[redacted]"}
        async with httpx.AsyncClient() as again:
            assert (await sign_in(again, base, "v@example.com", "reset by admin")).status_code == 303


async def test_sends_screen_resends_a_failed_email(
    settings_kwargs: dict[str, Any], tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    address = smtp_sink.address("flaky")
    smtp_sink.answer_rcpt(address, "550 5.1.1 mailbox unavailable")
    smtp = (smtp_sink.host, smtp_sink.port)
    async with console_stack(settings_kwargs, tmp_path, smtp=smtp) as stack, httpx.AsyncClient(timeout=60) as client:
        base = stack.base_url
        r = await client.post(f"{base}/api/sends/test", json={"to": address}, headers=stack.admin)
        assert r.json()["status"] == "failed", r.text
        await stack.user(client, "m@example.com", "marketer")
        await sign_in(client, base, "m@example.com")
        page = await client.get(f"{base}/console/sends?status=failed")
        assert address in page.text and "Resend" in page.text
        r = await client.post(
            f"{base}/console/sends/{r.json()['id']}/resend", data={"csrf": csrf_of(page.text), "back": "failed"}
        )
        assert r.status_code == 303 and "Resent:+sent" in r.headers["location"]
        assert len(await smtp_sink.wait_for(address)) == 1
        assert address in (await client.get(f"{base}/console/sends?status=sent")).text


async def test_webhooks_screen_adds_an_endpoint_shows_its_secret_once_and_rotates_it(
    settings_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    async with console_stack(settings_kwargs, tmp_path) as stack, httpx.AsyncClient(timeout=60) as client:
        base = stack.base_url
        await stack.user(client, "m@example.com", "marketer")
        await sign_in(client, base, "m@example.com")
        csrf = csrf_of((await client.get(f"{base}/console/webhooks")).text)
        form = [("csrf", csrf), ("url", "https://crm.example/hook"), ("event_types", "lead.mql"),
                ("event_types", "lead.stage_changed")]  # fmt: skip
        urlencoded = {"Content-Type": "application/x-www-form-urlencoded"}
        r = await client.post(f"{base}/console/webhooks", content=urlencode(form), headers=urlencoded)
        secret = re.search(r'id="webhook-secret">([^<]+)<', r.text)
        assert r.status_code == 200 and secret
        (endpoint,) = (await client.get(f"{base}/api/webhook-endpoints", headers=stack.admin)).json()
        assert endpoint["event_types"] == ["lead.mql", "lead.stage_changed"]
        listed = (await client.get(f"{base}/console/webhooks")).text
        assert "https://crm.example/hook" in listed and secret.group(1) not in listed
        r = await client.post(f"{base}/console/webhooks/{endpoint['id']}/rotate", data={"csrf": csrf})
        rotated = re.search(r'id="webhook-secret">([^<]+)<', r.text)
        assert rotated and rotated.group(1) != secret.group(1)
        r = await client.post(f"{base}/console/webhooks/{endpoint['id']}/test", data={"csrf": csrf})
        assert r.status_code == 303
        page = await client.get(f"{base}/console/webhooks/{endpoint['id']}")
        assert page.status_code == 200 and "ping" in page.text
        r = await client.post(f"{base}/console/webhooks/{endpoint['id']}/stop", data={"csrf": csrf})
        assert r.status_code == 303
        assert not (await client.get(f"{base}/api/webhook-endpoints", headers=stack.admin)).json()[0]["active"]
        audit = json.dumps((await client.get(f"{base}/api/audit", headers=stack.admin)).json())
        assert secret.group(1) not in audit and rotated.group(1) not in audit
