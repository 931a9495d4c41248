"""Consent admin API over real HTTP: CSV imports, consent per topic, source regime, export and erasure."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from services.nurture.consent import repository
from services.nurture.consent.service import identity_hash
from tests.helpers import basic, eventually
from tests.services.nurture.consent.stack import consent_stack

CONTACTS = (
    "email,user_id,first_name,company,consent,consent_text,consent_at,topics\n"
    "ann@example.com,u-ann,Ann,Acme,subscribed,Newsletter box on /signup,2025-05-01T10:00:00Z,news;product\n"
    "bad-address,,Bob,,,,,\n"
    "cat@example.com,,Cat,,subscribed,Signed up at the fair,,\n"
    "dan@example.com,,Dan,,subscribed,,,\n"
    "eve@example.com,u-eve,Eve,,unsubscribed,,,\n"
)


async def test_contacts_import_dry_run_writes_nothing_then_the_real_run_does(settings_kwargs: dict[str, Any]) -> None:
    async with consent_stack(settings_kwargs, consumers=()) as cs:
        dry = await cs.import_csv("/api/contacts/import", CONTACTS, dry_run="true")
        assert dry.status_code == 200, dry.text
        report = dry.json()
        assert report["dry_run"] and (report["rows"], report["accepted"]) == (5, 3)
        assert [r["row"] for r in report["rejected"]] == [3, 5]
        assert report["rejected"][1]["reason"].startswith("consent_text")
        assert (report["leads_created"], report["consent_statements"], report["consent_changed"]) == (3, 4, None)
        assert await cs.scalar("SELECT count(*) FROM leads") == 0
        assert await cs.scalar("SELECT count(*) FROM subscriptions") == 0

        real = (await cs.import_csv("/api/contacts/import", CONTACTS, dry_run="false", source="fair-2025")).json()
        assert not real["dry_run"] and real["rejected"] == report["rejected"]
        assert (real["leads_created"], real["consent_changed"]) == (3, 4)

        ann = await cs.consent("u-ann")
        assert ann["effective"] == {"news": "subscribed", "product": "subscribed"}
        assert {(s["topic"], s["method"], s["source"]) for s in ann["subscriptions"]} == {
            ("news", "import", "fair-2025"),
            ("product", "import", "fair-2025"),
        }
        assert ann["subscriptions"][0]["changed_at"].startswith("2025-05-01T10:00:00")
        cat = await cs.consent("cat@example.com", by="email")
        assert cat["user_id"] is None and cat["effective"] == {"*": "subscribed"}
        assert cat["may_send"]["marketing"] == {"allowed": True, "reason": "subscribed"}
        traits = await cs.scalar("SELECT traits FROM leads WHERE user_id = 'u-ann'")
        assert traits == {"firstName": "Ann", "company": "Acme"}

        # Again, a year-old opt-in cannot override today's unsubscribe, and the same lead is not made twice.
        await cs.api("PUT", "/api/leads/u-ann/consent", json={"changes": [{"topic": "news", "status": "unsubscribed"}]})
        again = (await cs.import_csv("/api/contacts/import", CONTACTS)).json()
        assert (again["leads_created"], again["leads_updated"], again["consent_changed"]) == (0, 3, 0)
        assert (await cs.consent("u-ann"))["effective"]["news"] == "unsubscribed"
        assert await cs.scalar("SELECT count(*) FROM leads") == 3


async def test_a_broken_file_is_refused_whole(settings_kwargs: dict[str, Any]) -> None:
    async with consent_stack(settings_kwargs, consumers=()) as cs:
        r = await cs.import_csv("/api/contacts/import", "name,phone\nAnn,1\n")
        assert r.status_code == 400 and "email" in r.json()["error"]


async def test_suppression_import_dry_run_then_real(settings_kwargs: dict[str, Any]) -> None:
    async with consent_stack(settings_kwargs, consumers=()) as cs:
        body = "email,reason\nold@example.com,bounced\nspam@example.com,complained\nx@example.com,nonsense\n"
        dry = (await cs.import_csv("/api/suppressions/import", body, dry_run="true")).json()
        assert (dry["accepted"], dry["rejected"], dry["suppressions_written"]) == (
            2,
            [{"row": 4, "reason": "reason: must be one of bounced, complained, unsubscribed, manual"}],
            None,
        )
        assert (await cs.can_send(None, "old@example.com", "transactional")).allowed
        real = (await cs.import_csv("/api/suppressions/import", body)).json()
        assert real["suppressions_written"] == 2
        assert (await cs.can_send(None, "OLD@example.com", "transactional")).reason == "bounced"
        assert (await cs.api("DELETE", "/api/suppressions/old@example.com")).status_code == 204
        assert (await cs.can_send(None, "old@example.com", "transactional")).allowed


async def test_consent_per_topic_needs_the_consent_text_and_keeps_every_change(settings_kwargs: dict[str, Any]) -> None:
    async with consent_stack(settings_kwargs) as cs:
        await cs.identified_lead("u-fay", "fay@example.com")
        missing = await cs.api("PUT", "/api/leads/u-fay/consent", json={"changes": [{"status": "subscribed"}]})
        assert missing.status_code == 400 and "consent_text" in missing.json()["error"]
        assert (await cs.api("PUT", "/api/leads/nobody/consent", json={"changes": []})).status_code == 400
        change = {"topic": "news", "status": "pending", "method": "double", "consent_text": "Weekly news"}
        pending = (await cs.api("PUT", "/api/leads/u-fay/consent", json={"changes": [change]})).json()
        assert pending["changed"] == ["news"] and pending["may_send"]["marketing"]["reason"] == "no-consent"
        confirmed = {**change, "status": "subscribed"}
        done = (await cs.api("PUT", "/api/leads/u-fay/consent", json={"changes": [confirmed]})).json()
        assert [(h["previous_status"], h["status"]) for h in done["history"]] == [
            (None, "pending"),
            ("pending", "subscribed"),
        ]
        same = (await cs.api("PUT", "/api/leads/u-fay/consent", json={"changes": [confirmed]})).json()
        assert same["changed"] == [] and len(same["history"]) == 2


async def test_opt_out_regime_per_source(settings_kwargs: dict[str, Any]) -> None:
    async with consent_stack(settings_kwargs) as cs:
        lead = await cs.identified_lead("u-gus", "gus@example.com")
        source = await cs.scalar("SELECT source_id FROM lead_events e JOIN leads l USING (lead_id) LIMIT 1")
        assert (await cs.can_send(lead, None, "marketing")).reason == "no-consent"
        missing = await cs.api("PUT", f"/api/sources/{uuid.uuid4()}/consent-settings", json={"opt_out_regime": True})
        assert missing.status_code == 404
        r = await cs.api("PUT", f"/api/sources/{source}/consent-settings", json={"opt_out_regime": True})
        assert r.status_code == 200 and r.json()["opt_out_regime"] is True
        assert (await cs.api("GET", f"/api/sources/{source}/consent-settings")).json()["opt_out_regime"] is True
        assert (await cs.can_send(lead, None, "marketing")).reason == "opt-out-regime"
        await cs.api("PUT", "/api/leads/u-gus/consent", json={"changes": [{"status": "unsubscribed"}]})
        assert (await cs.can_send(lead, None, "marketing")).reason == "unsubscribed"


async def test_consent_given_before_identify_follows_the_person_into_the_merged_lead(
    settings_kwargs: dict[str, Any],
) -> None:
    async with consent_stack(settings_kwargs) as cs:
        imported = await cs.import_csv(
            "/api/contacts/import", "email,consent,consent_text\nhal@example.com,subscribed,Fair sign-up\n"
        )
        assert imported.json()["leads_created"] == 1
        import_lead = uuid.UUID((await cs.consent("hal@example.com", by="email"))["lead_id"])
        # The person signs up on the website: scoring folds the imported lead into the known one.
        lead = await cs.identified_lead("u-hal", "hal@example.com")

        async def folded() -> bool:
            return bool(await cs.scalar("SELECT merged_into IS NOT NULL FROM leads WHERE lead_id = :l", l=import_lead))

        await eventually(folded, what="imported lead folded")
        assert lead != import_lead
        assert (await cs.can_send(lead, None, "marketing")).reason == "subscribed"
        assert (await cs.consent("u-hal"))["effective"] == {"*": "subscribed"}


async def test_export_then_erase_leaves_only_tombstones(settings_kwargs: dict[str, Any]) -> None:
    async with consent_stack(settings_kwargs) as cs:
        lead = await cs.identified_lead("u-ida", "ida@example.com")
        write_key = await cs.stack.create_source(cs.client)
        await cs.client.post(
            f"{cs.base}/v1/track",
            json={"userId": "u-ida", "anonymousId": "anon-ida", "event": "Pricing Viewed"},
            headers=basic(write_key),
        )

        async def tracked() -> bool:
            return await cs.events_named("Pricing Viewed", "u-ida") == 1

        await eventually(tracked, what="second event applied")
        await cs.subscribe("u-ida")
        await cs.import_csv("/api/suppressions/import", "email,reason\nida@example.com,manual\n")
        # Tables of other features are found by their columns: a lead_id, or an enrollment of the person.
        enrollment = uuid.uuid4()
        async with cs.maker() as session, session.begin():
            await session.execute(text("CREATE TABLE partner_notes (lead_id uuid, note text)"))
            await session.execute(text("INSERT INTO partner_notes VALUES (:l, 'called, wants a demo')"), {"l": lead})
            await session.execute(
                text(
                    "INSERT INTO enrollments (id, sequence_id, version, lead_id, cause_event_id) "
                    "VALUES (:e, gen_random_uuid(), 1, :l, gen_random_uuid())"
                ),
                {"e": enrollment, "l": lead},
            )
            await session.execute(
                text("INSERT INTO enrollment_log (enrollment_id, action) VALUES (:e, 'entered')"), {"e": enrollment}
            )

        exported = await cs.api("GET", "/api/leads/u-ida/export")
        assert exported.status_code == 200
        data = exported.json()
        assert data["lead_id"] == str(lead)
        assert {("user", "u-ida"), ("email", "ida@example.com"), ("anonymous", "anon-ida")} <= {
            (i["kind"], i["value"]) for i in data["identities"]
        }
        assert data["leads"][0]["user_id"] == "u-ida"
        assert len(data["tables"]["lead_events"]) == 2
        assert data["tables"]["score_ledger"] and data["tables"]["stage_history"]
        assert data["tables"]["subscriptions"][0]["status"] == "subscribed"
        assert data["tables"]["consent_changes"] and data["suppressions"][0]["reason"] == "manual"
        assert data["tables"]["partner_notes"] == [{"lead_id": str(lead), "note": "called, wants a demo"}]
        assert [e["id"] for e in data["tables"]["enrollments"]] == [str(enrollment)]
        assert [e["action"] for e in data["tables"]["enrollment_log"]] == ["entered"]

        erased = await cs.api("DELETE", "/api/leads/u-ida")
        assert erased.status_code == 200, erased.text
        result = erased.json()
        assert result["erased"] and not result["already"] and result["tombstones"] >= 3
        removed = result["removed"]
        assert removed["leads"] == 1 and removed["lead_events"] == 2 and removed["subscriptions"] == 1
        assert removed["suppressions"] == 1 and removed["audience_memberships"] == 0
        assert removed["partner_notes"] == removed["enrollments"] == removed["enrollment_log"] == 1

        for table, column in (("leads", "user_id"), ("lead_identities", "value")):
            assert await cs.scalar(f"SELECT count(*) FROM {table} WHERE {column} = 'u-ida'") == 0  # noqa: S608
        assert await cs.scalar("SELECT count(*) FROM lead_events WHERE lead_id = :l", l=lead) == 0
        assert await cs.scalar("SELECT count(*) FROM suppressions") == 0
        email_hash = identity_hash("email", "ida@example.com")
        assert await cs.scalar("SELECT count(*) FROM erasure_tombstones WHERE identity_hash = :h", h=email_hash) == 1

        async with cs.maker() as session:
            gone = await repository.erased(
                session, [("user", "u-ida"), ("anonymous", "anon-ida"), ("email", "IDA@example.com"), ("user", "u-x")]
            )
        assert gone == {("user", "u-ida"), ("anonymous", "anon-ida"), ("email", "IDA@example.com")}
        assert (await cs.can_send(None, "ida@example.com", "transactional")).reason == "erased"
        assert (await cs.can_send(lead, None, "transactional")).reason == "unknown-lead"
        assert (await cs.api("GET", "/api/leads/u-ida/export")).status_code == 410
        assert (await cs.api("DELETE", "/api/leads/u-ida")).json()["already"] is True
        assert (await cs.api("DELETE", "/api/leads/u-nobody")).status_code == 404
        reimport = (await cs.import_csv("/api/contacts/import", "email\nida@example.com\n")).json()
        assert reimport["rejected"] == [{"row": 2, "reason": "erased person: an import cannot bring them back"}]
