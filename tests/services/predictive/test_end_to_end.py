"""Training on history in the real PostgreSQL, serving through the real broker, stages, rollback."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import text

from services.scoring.rules import DEFAULT_RULES
from shared.db import make_engine
from tests.helpers import basic, eventually, running_stack
from tests.services.predictive.generate import generate
from tests.services.predictive.history import store

THRESHOLD = 0.2


def rules_with_a_likely_stage() -> dict[str, Any]:
    """The shipped rules plus a B2B stage `likely`, entered when the model predicts a customer."""
    rules = copy.deepcopy(DEFAULT_RULES)
    b2b = rules["models"][0]
    likely = {"all": [{"kind": "known"}, {"kind": "prediction", "gte": THRESHOLD}]}
    b2b["stages"].insert(2, {"name": "likely", "entry": likely})
    return rules


async def prepare(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE rule_sets SET status = 'retired' WHERE status = 'active'"))
            await conn.execute(
                text("INSERT INTO rule_sets (rules, status, activated_at) VALUES (CAST(:r AS jsonb), 'active', now())"),
                {"r": orjson.dumps(rules_with_a_likely_stage()).decode()},
            )
        await store(engine, generate(1500, 1, datetime.now(UTC), signal=True))
    finally:
        await engine.dispose()


async def test_train_activate_predict_move_a_stage_and_roll_back(settings_kwargs: dict[str, Any]) -> None:
    await prepare(settings_kwargs["database_url"])
    async with running_stack(settings_kwargs) as stack, httpx.AsyncClient(timeout=60) as c:
        api = f"{stack.base_url}/api"
        # A sequence for leads the model comes to find likely (the trigger reads lead.score_changed).
        sequence = {"name": "likely-buyers", "definition": {
            "trigger": {"kind": "prediction_crossed", "model": "b2b", "gte": THRESHOLD},
            "steps": [{"id": "later", "type": "wait", "duration": "P1D"}]}}  # fmt: skip
        created = await c.post(f"{api}/sequences", json=sequence, headers=stack.admin)
        assert created.status_code == 201, created.text
        activated = await c.post(f"{api}/sequences/{created.json()['id']}/activate", headers=stack.admin)
        assert activated.json()["status"] == "active"
        first = await c.post(f"{api}/predictive/train", json={"min_positives": 30}, headers=stack.admin)
        assert first.status_code == 201, first.text
        run = first.json()
        assert run["decision"] == "activate" and run["status"] == "active", run["reason"]
        assert run["metrics"]["model"]["auc"] > run["metrics"]["rules"]["auc"]
        assert run["metrics"]["test"]["positives"] >= 30 and run["metrics"]["model"]["reliability"]

        # A new lead with a business email looks at the pricing page twice: scored, predicted, `likely`.
        key = await stack.create_source(c)
        auth = basic(key)
        hot_traits = {"email": "ann@bigcorp.io", "title": "Engineer"}
        r = await c.post(f"{stack.base_url}/v1/identify", headers=auth, json={"userId": "hot", "traits": hot_traits})
        assert r.status_code == 200
        for _ in range(2):
            r = await c.post(f"{stack.base_url}/v1/page", headers=auth,
                             json={"userId": "hot", "name": "Pricing", "properties": {"path": "/pricing"}})  # fmt: skip
            assert r.status_code == 200
        await c.post(f"{stack.base_url}/v1/page", headers=auth,
                     json={"userId": "cold", "name": "Blog", "properties": {"path": "/blog"}})  # fmt: skip
        await c.post(f"{stack.base_url}/v1/identify", headers=auth,
                     json={"userId": "cold", "traits": {"email": "bob@gmail.com"}})  # fmt: skip

        async def predicted(user: str, version: int) -> dict[str, Any] | None:
            got = await c.get(f"{api}/leads/{user}/prediction", headers=stack.admin)
            found = [p for p in got.json() if p["model_version"] == version] if got.status_code == 200 else []
            return found[0] if found else None

        async def pricing_counted() -> dict[str, Any] | None:
            p = await predicted("hot", run["version"])
            return p if p and any(f["feature"].startswith("pricing") for f in p["top_features"]) else None

        hot = await eventually(pricing_counted, what="the hot lead's prediction with its pricing views")
        cold = await eventually(lambda: predicted("cold", run["version"]), what="the cold lead's prediction")
        assert hot["funnel_model"] == "b2b"
        assert hot["probability"] >= THRESHOLD > cold["probability"]
        raising = [f["feature"] for f in hot["top_features"] if f["direction"] == "raises"]
        assert any(f.startswith("pricing") for f in raising), hot["top_features"]

        async def stage(user: str) -> str | None:
            got = await c.get(f"{api}/leads/{user}", headers=stack.admin)
            return got.json()["stages"]["b2b"] if got.status_code == 200 else None

        assert await eventually(lambda: _is(stage("hot"), "likely"), what="hot lead in stage likely")
        assert await stage("cold") == "lead"

        async def enrolled(user: str) -> list[Any] | None:
            got = await c.get(f"{api}/leads/{user}/enrollments", headers=stack.admin)
            return (got.json() or None) if got.status_code == 200 else None

        [enrollment] = await eventually(lambda: enrolled("hot"), what="the hot lead enrolled by its prediction")
        assert enrollment["status"] == "active"
        assert await enrolled("cold") is None
        detail = (await c.get(f"{api}/leads/hot", headers=stack.admin)).json()
        assert [h["to"] for h in detail["stage_history"] if h["model"] == "b2b"][-1] == "likely"
        assert detail["predictions"][0]["probability"] >= THRESHOLD and detail["predictions"][0]["top_features"]

        async def visit_until_predicted_by(version: int) -> dict[str, Any]:
            """Scoring processes see an activation within a second: visit again until it shows."""
            for _ in range(20):
                await c.post(f"{stack.base_url}/v1/page", headers=auth,
                             json={"userId": "hot", "name": "Docs", "properties": {"path": "/docs"}})  # fmt: skip
                try:
                    return await eventually(lambda: predicted("hot", version), timeout=1.5)
                except AssertionError:
                    continue
            raise AssertionError(f"the hot lead was never predicted by model {version}")

        # A second model, then roll back to the first: one call; the next events are predicted by it.
        second = (await c.post(f"{api}/predictive/train", json={"min_positives": 30}, headers=stack.admin)).json()
        assert second["status"] == "active"
        await visit_until_predicted_by(second["version"])
        back = await c.post(f"{api}/predictive/models/b2b/rollback", headers=stack.admin)
        assert back.status_code == 200, back.text
        assert back.json() == {"funnel_model": "b2b", "rolled_back": second["version"], "active": run["version"]}
        runs = (await c.get(f"{api}/predictive/models", headers=stack.admin)).json()
        assert {r["version"]: r["status"] for r in runs} == {run["version"]: "active", second["version"]: "rolled_back"}
        assert all(r["reason"] and r["metrics"]["model"]["auc"] for r in runs)
        await visit_until_predicted_by(run["version"])

        # Rolling back the only model leaves none; with none active there is nothing to roll back.
        assert (await c.post(f"{api}/predictive/models/b2b/rollback", headers=stack.admin)).json()["active"] is None
        assert (await c.post(f"{api}/predictive/models/b2b/rollback", headers=stack.admin)).status_code == 409


async def _is(value: Any, expected: str) -> bool:
    return bool(await value == expected)
