"""Leads and accounts in the admin API over real HTTP with the real broker, PostgreSQL and scoring
consumer: the detail scored at request time, filtered and paged lists, the ledger, sales decisions
(through the API and a CRM's signed webhook) and the roll-up of a buying group."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from shared.signing import sign
from tests.helpers import eventually
from tests.services.admin.scoring_helpers import Admin, admin_stack, b2b, counting, score_at_least

SALES_STAGES = ({"name": "mql", "entry": score_at_least(3)}, {"name": "sal"}, {"name": "sql"})


async def test_the_lead_detail_decays_engagement_to_the_time_of_the_request(settings_kwargs: dict[str, Any]) -> None:
    rules = {
        "behaviour": [{"id": "demo", "event": "Demo Requested", "points": 10}],
        "fit": [{"id": "director", "conditions": [{"field": "traits.title", "op": "matches", "value": "Director"}],
                 "points": 20}],
        "half_life_days": 1,
        "models": [b2b({"name": "mql", "entry": score_at_least(25)})],
        "attention": [{"id": "asked-for-demo", "when": {"all": [{"kind": "event", "names": ["Demo Requested"]}]}}],
    }  # fmt: skip
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    async with admin_stack(settings_kwargs) as api:
        version = await api.activate(rules)
        await api.send("identify", {"userId": "u-d", "traits": {"title": "Sales Director"}}, two_days_ago)
        await api.send("track", {"userId": "u-d", "event": "Demo Requested"}, two_days_ago + timedelta(seconds=1))
        lead = await api.lead_when("u-d", lambda d: any(e["rule_id"] == "demo" for e in d["ledger"]), "demo points")

        # 30 points two days ago; the 10 behaviour points halved twice since: 20 + 2.5.
        assert Decimal("22.49") < Decimal(lead["score"]) < Decimal("22.51")
        assert lead["fit"] == "20.0000" and Decimal("2.49") < Decimal(lead["engagement"]) < Decimal("2.51")
        assert lead["grade"] == "B4"  # engagement 10 was grade 3 when the demo was asked for; 2.5 is 4
        assert lead["stage"] == "mql" and lead["stages"] == {"b2b": "mql"}
        assert lead["rule_set_version"] == version and lead["alerts"] == ["asked-for-demo"]
        assert datetime.fromisoformat(lead["engagement_at"]) == two_days_ago + timedelta(seconds=1)
        assert [(c["from"], c["to"], c["kind"]) for c in lead["stage_history"]] == [
            ("visitor", "lead", "entry"),
            ("lead", "mql", "entry"),
        ]
        assert [(e["type"], e["name"], e["bot"]) for e in lead["recent_events"]] == [
            ("track", "Demo Requested", None),
            ("identify", None, None),
        ]
        assert sorted((e["kind"], e["rule_id"], e["points"]) for e in lead["ledger"]) == [
            ("behaviour", "demo", 10.0),
            ("fit", "director", 20.0),
        ]
        assert lead["traits"] == {"title": "Sales Director"} and lead["email"] is None

        listed = (await api.get("/leads", {"user_id": "u-d"})).json()
        assert listed["next"] is None and len(listed["leads"]) == 1
        assert Decimal("22.49") < Decimal(listed["leads"][0]["score"]) < Decimal("22.51")
        assert listed["leads"][0]["grade"] == "B4"

        ledger = (await api.get("/leads/u-d/ledger")).json()
        assert ledger["totals"] == {
            "fit": 20.0,
            "engagement": 10.0,
            "lead_fit": 20.0,
            "lead_engagement": 10.0,
            "engagement_at": lead["engagement_at"],
            "balanced": True,
        }
        paged, after = [], None
        while True:
            page = (await api.get("/leads/u-d/ledger", {"limit": 1} | ({"after": after} if after else {}))).json()
            paged += page["entries"]
            after = page["next"]
            if after is None:
                break
        assert paged == ledger["entries"] and len(paged) == 2
        assert (await api.get("/leads/nobody")).status_code == 404
        assert (await api.get("/leads/nobody/ledger")).status_code == 404
        assert (await api.get("/leads/u-d/ledger", {"after": "nonsense"})).json()["field"] == "after"


def users(answer: dict[str, Any]) -> list[str]:
    """The test's own leads in a list answer (probe leads of rule activation are anonymous)."""
    return [lead["user_id"] for lead in answer["leads"] if lead["user_id"]]


async def all_pages(api: Admin, params: dict[str, Any]) -> list[str]:
    found, after = [], None
    while True:
        answer = (await api.get("/leads", params | ({"after": after} if after else {}))).json()
        found += [lead["lead_id"] for lead in answer["leads"]]
        after = answer["next"]
        if after is None:
            return found


async def test_leads_are_listed_by_stage_grade_and_score_in_pages(settings_kwargs: dict[str, Any]) -> None:
    viewed = {"any": [{"kind": "event", "names": ["Product Viewed"]}]}
    shop = {"name": "shop", "stages": [{"name": "awareness"}, {"name": "interest", "entry": viewed}]}
    rules = counting(
        grades={"fit": [30, 20, 10], "engagement": [3, 2, 1]},
        models=[b2b({"name": "mql", "entry": score_at_least(3)}), shop],
    )
    async with admin_stack(settings_kwargs) as api:
        await api.activate(rules)
        for n in range(1, 5):
            await api.track(f"u-{n}", times=n)
        await api.track("u-5", "Product Viewed", times=5)
        for n in range(1, 6):
            await api.lead_scored(f"u-{n}", f"{n}.0000")

        everyone = (await api.get("/leads")).json()
        assert users(everyone) == ["u-5", "u-4", "u-3", "u-2", "u-1"] and everyone["next"] is None
        top = next(lead for lead in everyone["leads"] if lead["user_id"] == "u-5")
        assert top["grade"] == "D1" and top["stages"] == {"b2b": "mql", "shop": "interest"}
        assert await all_pages(api, {"limit": 2}) == [lead["lead_id"] for lead in everyone["leads"]]
        first = (await api.get("/leads", {"limit": 2})).json()
        assert len(first["leads"]) == 2 and first["next"]

        async def listed(params: Any) -> list[str]:
            r = await api.get("/leads", params)
            assert r.status_code == 200, r.text
            return users(r.json())

        assert await listed({"stage": "mql"}) == ["u-5", "u-4", "u-3"]
        assert await listed({"stage": "lead"}) == ["u-2", "u-1"]
        assert await listed({"model": "shop", "stage": "interest"}) == ["u-5"]
        assert await listed({"grade": "D1"}) == ["u-5", "u-4", "u-3"]
        assert await listed({"grade": "d2,D3"}) == ["u-2", "u-1"]
        assert await listed([("grade", "D2"), ("grade", "D3")]) == ["u-2", "u-1"]
        assert await listed({"min_score": 2, "max_score": 3}) == ["u-3", "u-2"]
        assert await listed({"stage": "mql", "min_score": 4, "limit": 1}) == ["u-5"]
        assert await all_pages(api, {"stage": "mql", "limit": 1}) == [
            lead["lead_id"] for lead in everyone["leads"] if lead["user_id"] in ("u-5", "u-4", "u-3")
        ]
        assert await listed({"email": "nobody@example.com"}) == []

        for params, field in (
            ({"stage": "sql"}, "stage"),
            ({"model": "nope", "stage": "x"}, "model"),
            ({"model": "shop"}, "stage"),
            ({"grade": "Z9"}, "grade"),
            ({"after": "bm9wZQ"}, "after"),
            ({"limit": 501}, "limit"),
        ):
            r = await api.get("/leads", params)
            assert r.status_code == 400 and r.json()["field"] == field, (params, r.text)


async def test_sales_accepts_one_lead_and_rejects_another_which_is_recycled(settings_kwargs: dict[str, Any]) -> None:
    async with admin_stack(settings_kwargs) as api:
        await api.activate(counting(models=[b2b(*SALES_STAGES)], recycle_days=30))
        await api.track("u-yes", times=3)
        await api.track("u-no", times=3)
        for user in ("u-yes", "u-no"):
            await api.lead_when(user, lambda lead: lead["stage"] == "mql", f"{user} in mql")

        bant = {"budget": True, "authority": "VP Sales", "need": True, "timeline": "Q3"}
        accept = {"decision": "accept", "reason": "budget confirmed", "bant": bant, "actor": "ann@example.com"}
        r = await api.post("/leads/u-yes/stage", accept)
        assert r.status_code in (200, 202), r.text
        if r.status_code == 200:
            assert r.json()["stage"] == "sal"
        else:
            assert r.json()["accepted"] is True
        lead = await api.lead_when("u-yes", lambda d: d["stage"] == "sal", "u-yes accepted")
        decided = lead["stage_history"][-1]
        assert (decided["from"], decided["to"], decided["kind"]) == ("mql", "sal", "sales")
        assert decided["reason"] == "budget confirmed"
        assert decided["details"] == {"decision": "accept", "actor": "ann@example.com", "bant": bant}
        assert any(e["name"] == "funnelstream.sales_decision" for e in lead["recent_events"])

        r = await api.post("/leads/u-no/stage", {"decision": "reject", "reason": "student project"})
        assert r.status_code in (200, 202), r.text
        lead = await api.lead_when("u-no", lambda d: d["stage"] == "lead", "u-no recycled")
        assert lead["stage_history"][-1]["reason"] == "student project"
        assert lead["stage_history"][-1]["kind"] == "sales"
        await api.track("u-no", times=3)
        lead = await api.lead_scored("u-no", "6.0000")
        assert lead["stage"] == "lead"  # the score would make it an MQL again; the rejection holds it back

        for body, field in (
            ({"decision": "maybe"}, "decision"),
            ({"decision": "accept", "model": "shop"}, "model"),
            ({"decision": "accept", "stage": "won"}, "stage"),
            ({"decision": "set"}, "stage"),
            ({"decision": "accept", "bant": {"money": True}}, "bant.money"),
        ):
            r = await api.post("/leads/u-yes/stage", body)
            assert r.status_code == 400 and r.json()["field"] == field, (body, r.text)
        assert (await api.post("/leads/nobody/stage", {"decision": "accept"})).status_code == 404


async def test_a_crm_sets_a_stage_through_the_signed_webhook(settings_kwargs: dict[str, Any]) -> None:
    async with admin_stack(settings_kwargs) as api:
        await api.activate(counting(models=[b2b(*SALES_STAGES)]))
        await api.track("u-crm", times=3)
        await api.lead_when("u-crm", lambda lead: lead["stage"] == "mql", "u-crm in mql")
        source = (await api.post("/sources", {"name": "crm"})).json()["id"]
        secret = (await api.post(f"/sources/{source}/webhook-secrets")).json()["secret"]
        decision = {"model": "b2b", "stage": "sql", "decision": "set", "reason": "opportunity opened", "actor": "crm"}
        body = orjson.dumps(
            {"type": "track", "userId": "u-crm", "event": "funnelstream.sales_decision", "properties": decision}
        )
        r = await api.client.post(
            f"{api.stack.base_url}/webhooks/generic/{source}",
            content=body,
            headers={
                "Content-Type": "application/json",
                "FunnelStream-Signature": sign(secret, body, int(time.time())),
            },
        )
        assert r.status_code == 200, r.text
        lead = await api.lead_when("u-crm", lambda d: d["stage"] == "sql", "u-crm in sql")
        change = lead["stage_history"][-1]
        assert (change["from"], change["to"], change["kind"], change["reason"]) == (
            "mql",
            "sql",
            "sales",
            "opportunity opened",
        )


async def test_an_account_rolls_up_its_buying_group(settings_kwargs: dict[str, Any]) -> None:
    async with admin_stack(settings_kwargs) as api:  # the template's rules: one point per event
        await api.send("identify", {"userId": "u-ceo"})
        await api.send("group", {"userId": "u-ceo", "groupId": "acme", "traits": {"name": "Acme", "employees": 200}})
        await api.send("group", {"userId": "u-cto", "groupId": "acme", "traits": {"industry": "retail"}})
        await api.send("group", {"userId": "u-solo", "groupId": "tiny"})

        async def acme_rolled_up() -> dict[str, Any] | None:
            r = await api.get("/accounts/acme")
            found: dict[str, Any] = r.json()
            return found if r.status_code == 200 and found["score"] == "3.0000" else None

        acme = await eventually(acme_rolled_up, what="acme with both members scored")
        assert acme["traits"] == {"name": "Acme", "employees": 200, "industry": "retail"}
        assert acme["member_count"] == 2 and acme["stages"] == {"b2b": "lead"} and acme["score_now"] == "3.0000"
        assert [(m["user_id"], m["score"], m["grade"], m["stage"]) for m in acme["members"]] == [
            ("u-ceo", "2.0000", "D4", "lead"),
            ("u-cto", "1.0000", "D4", "lead"),
        ]
        ceo = await api.lead("u-ceo")
        assert ceo is not None and ceo["accounts"] == [{"account_id": "acme", "score": "3.0000"}]

        await api.lead_scored("u-solo", "1.0000")  # its account is rolled up in the same transaction
        everything = (await api.get("/accounts")).json()
        assert [a["account_id"] for a in everything["accounts"]] == ["acme", "tiny"]
        assert [a["account_id"] for a in (await api.get("/accounts", {"min_score": 2})).json()["accounts"]] == ["acme"]
        assert len((await api.get("/accounts", {"stage": "lead"})).json()["accounts"]) == 2
        first = (await api.get("/accounts", {"limit": 1})).json()
        second = (await api.get("/accounts", {"limit": 1, "after": first["next"]})).json()
        assert [a["account_id"] for a in first["accounts"] + second["accounts"]] == ["acme", "tiny"]
        assert second["next"] is None
        assert (await api.get("/accounts/nowhere")).status_code == 404
        assert (await api.get("/accounts", {"stage": "won"})).json()["field"] == "stage"
