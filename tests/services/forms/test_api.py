"""The forms admin API over real HTTP: validation naming the field, versions, embed code, the file, and
links that are not valid."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.services.forms.helpers import definition, forms_stack
from tests.smtp import SmtpSink


async def test_forms_are_validated_versioned_and_come_with_embed_code(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forms_stack(settings_kwargs, smtp_sink, monkeypatch) as f:
        api, admin = f"{f.base}/api/forms", f.stack.admin
        assert (await f.client.get(api)).status_code == 401

        bad = {"name": "x", "definition": definition(success_redirect="javascript:alert(1)")}
        answer = await f.client.post(api, json=bad, headers=admin)
        assert answer.status_code == 400 and answer.json()["field"] == "definition.success_redirect"
        no_email = {"name": "x", "definition": definition(fields=[{"name": "company", "type": "company"}])}
        answer = await f.client.post(api, json=no_email, headers=admin)
        assert answer.status_code == 400 and "exactly one email field" in answer.json()["error"]
        unknown = {"name": "x", "definition": definition(sequence_id=str(uuid.uuid4()))}
        answer = await f.client.post(api, json=unknown, headers=admin)
        assert answer.status_code == 400 and answer.json()["field"] == "definition.sequence_id"
        no_source = {"name": "x", "source_id": str(uuid.uuid4()), "definition": definition()}
        assert (await f.client.post(api, json=no_source, headers=admin)).json()["field"] == "source_id"

        form = await f.create()
        assert form["version"] == 1 and form["status"] == "active" and form["file"] is None
        assert form["embed"]["page_url"] == f"{f.base}/forms/{form['id']}"
        assert form["embed"]["iframe"].startswith(f'<iframe src="{f.base}/forms/{form["id"]}"')
        edited = await f.client.put(
            f"{api}/{form['id']}", json={"name": "Guide v2", "definition": definition(title="New")}, headers=admin
        )
        assert edited.json()["version"] == 2 and edited.json()["updated_at"] > form["updated_at"]
        assert "New" in (await f.client.get(f"{f.base}/forms/{form['id']}")).text
        assert [x["name"] for x in (await f.client.get(api, headers=admin)).json()["forms"]] == ["Guide v2"]

        stored = await f.client.put(
            f"{api}/{form['id']}/file", params={"filename": 'My "guide".pdf'}, content=b"%PDF", headers=admin
        )
        assert stored.json()["filename"] == "My _guide_.pdf" and stored.json()["size"] == 4
        assert (await f.client.get(f"{api}/{form['id']}", headers=admin)).json()["file"]["size"] == 4
        assert (await f.client.get(f"{api}/{uuid.uuid4()}", headers=admin)).status_code == 404

        script = await f.client.get(f"{f.base}/forms/{form['id']}.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        page = await f.client.get(f"{f.base}/forms/{form['id']}")
        assert "frame-ancestors *" in page.headers["content-security-policy"]

        for path in ("confirm", "files"):
            invalid = await f.client.get(f"{f.base}/forms/{path}/not-a-token")
            assert invalid.status_code == 400 and "not valid" in invalid.text
        assert (await f.client.post(f"{f.base}/forms/confirm/not-a-token")).status_code == 400
