"""The scoring admin API over real HTTP with the real broker, PostgreSQL and scoring consumer:
rule-set versions and their activation, and dry runs of rules over recent history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.services.admin.scoring_helpers import admin_stack, b2b, counting, score_at_least


async def test_rule_sets_are_validated_stored_as_drafts_and_activated_with_a_rescore_job(
    settings_kwargs: dict[str, Any],
) -> None:
    async with admin_stack(settings_kwargs) as api:
        await api.send("identify", {"userId": "u-1", "traits": {"email": "u1@example.com"}})
        await api.send("identify", {"userId": "u-2"})
        for user in ("u-1", "u-2"):
            await api.lead_scored(user, "1.0000")
        listed = (await api.get("/scoring/rule-sets")).json()
        assert [(v["version"], v["status"]) for v in listed] == [(1, "active")]

        no_bound = counting(models=[b2b({"name": "mql", "entry": {"all": [{"kind": "score"}]}})])
        r = await api.post("/scoring/rule-sets", {"rules": no_bound})
        assert r.status_code == 400
        assert r.json()["field"].startswith("rules.models.0.stages.2.entry.all.0"), r.json()
        assert "gte, lt or both" in r.json()["error"]
        r = await api.post("/scoring/rule-sets", {"rules": counting(primary_model="shop")})
        assert r.status_code == 400 and r.json()["field"] == "rules" and "shop" in r.json()["error"]

        rules = counting(models=[b2b({"name": "mql", "entry": score_at_least(5)})], half_life_days=14)
        r = await api.post("/scoring/rule-sets", {"rules": rules, "note": "MQL at 5 points"})
        assert r.status_code == 201, r.text
        draft = r.json()
        assert draft["version"] == 2 and draft["status"] == "draft" and draft["note"] == "MQL at 5 points"
        stored = (await api.get("/scoring/rule-sets/2")).json()
        assert stored["rules"]["half_life_days"] == 14
        assert [s["name"] for s in stored["rules"]["models"][0]["stages"]] == ["visitor", "lead", "mql"]
        assert (await api.get("/scoring/rule-sets/active")).json()["version"] == 1

        r = await api.post("/scoring/rule-sets/2/activate", {"emit_changes": True})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["rule_set_version"] == 2 and job["emit_changes"] is True and job["total"] == 2
        r = await api.get(f"/scoring/rescores/{job['id']}")
        assert r.status_code == 200 and r.json()["total"] == 2 and r.json()["status"] in ("running", "done")

        assert (await api.get("/scoring/rule-sets/active")).json()["version"] == 2
        listed = (await api.get("/scoring/rule-sets")).json()
        assert [(v["version"], v["status"]) for v in listed] == [(2, "active"), (1, "retired")]
        r = await api.post("/scoring/rule-sets/2/activate")
        assert r.status_code == 409 and "already active" in r.json()["error"]
        for path in ("/scoring/rule-sets/9", "/scoring/rescores/00000000-0000-0000-0000-000000000000"):
            assert (await api.get(path)).status_code == 404
        assert (await api.post("/scoring/rule-sets/9/activate")).status_code == 404


async def test_a_dry_run_counts_who_would_have_entered_a_stage_under_other_rules(
    settings_kwargs: dict[str, Any],
) -> None:
    strict = counting(models=[b2b({"name": "mql", "entry": score_at_least(4)})])
    async with admin_stack(settings_kwargs) as api:
        active = await api.activate(counting(models=[b2b({"name": "mql", "entry": score_at_least(2)})]))
        strict_version = await api.add_rules(strict, "MQL at 4 points")
        long_ago = datetime.now(UTC) - timedelta(days=40)
        await api.track("u-old", times=4, at=long_ago)  # MQL 40 days ago under either rule set
        await api.track("u-old")
        for user, events in (("u-one", 1), ("u-three", 3), ("u-five", 5)):
            await api.track(user, times=events)
        for user, score in (("u-old", "5.0000"), ("u-one", "1.0000"), ("u-three", "3.0000"), ("u-five", "5.0000")):
            await api.lead_scored(user, score)
        history_before = len((await api.lead("u-three") or {})["stage_history"])

        r = await api.post("/scoring/dry-run", {"rules": strict, "stage": "mql", "days": 30})
        assert r.status_code == 200, r.text
        tried = r.json()
        assert tried["count"] == 1 and tried["compared_with_active"] == 2
        assert [lead["user_id"] for lead in tried["leads"]] == ["u-five"]
        assert tried["leads"][0]["score"] == "5.0000"
        assert tried["rule_set_version"] is None and tried["capped"] is False
        assert tried["leads_replayed"] >= 4 and tried["window"]["days"] == 30
        assert (tried["model"], tried["stage"]) == ("b2b", "mql")

        stored = (await api.post("/scoring/dry-run", {"version": strict_version, "stage": "mql"})).json()
        assert (stored["count"], stored["compared_with_active"]) == (1, 2)
        assert stored["rule_set_version"] == strict_version

        now = (await api.post("/scoring/dry-run", {"stage": "mql"})).json()
        assert (now["count"], now["compared_with_active"], now["rule_set_version"]) == (2, 2, active)
        assert sorted(lead["user_id"] for lead in now["leads"]) == ["u-five", "u-three"]
        longer = (await api.post("/scoring/dry-run", {"stage": "mql", "days": 50})).json()
        assert longer["count"] == 3 and "u-old" in [lead["user_id"] for lead in longer["leads"]]
        later_stage = (await api.post("/scoring/dry-run", {"stage": "lead"})).json()
        assert later_stage["count"] >= 3  # entering mql counts as reaching lead or later

        after = await api.lead("u-three")
        assert after is not None and after["stage"] == "mql" and len(after["stage_history"]) == history_before

        for body, field in (
            ({"stage": "sql"}, "stage"),
            ({"stage": "mql", "model": "shop"}, "model"),
            ({"stage": "mql", "days": 0}, "days"),
            ({"stage": "mql", "days": 366}, "days"),
            ({"stage": "mql", "rules": strict, "version": strict_version}, "version"),
        ):
            r = await api.post("/scoring/dry-run", body)
            assert r.status_code == 400 and r.json()["field"] == field, (body, r.text)
        assert (await api.post("/scoring/dry-run", {"stage": "mql", "version": 99})).status_code == 404
