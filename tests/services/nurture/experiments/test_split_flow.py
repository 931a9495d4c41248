"""A split step (variant paths) end to end: each lead takes its deterministic path, conversions and revenue
within the window are counted per path, a decision by hand routes the rest, and the API refuses what it must."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx

from services.nurture.experiments import repository
from services.nurture.experiments.assignment import assign
from tests.helpers import basic, eventually, running_stack
from tests.services.nurture.experiments.test_experiment_flow import Shop, scheduler
from tests.smtp import SmtpSink

WEIGHTS = [("mail", 1.0), ("quiet", 1.0)]


async def test_a_split_sends_each_lead_down_its_path_and_counts_conversions_per_path(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with running_stack(settings_kwargs) as stack, httpx.AsyncClient() as client:
        await asyncio.wait_for(asyncio.gather(*(r.assigned.wait() for r in stack.runners.values())), 60)
        shop = Shop(stack, client, smtp_sink, await stack.create_source(client))
        body = {
            "name": "nudge",
            "subject": "Need a hand?",
            "html": "<p>Reply to this email</p>",
            "kind": "transactional",
        }
        template = (await shop.api("POST", "/templates", body, 201))["id"]
        definition = {
            "trigger": {"kind": "event", "event": "Trial Started"},
            "steps": [
                {"id": "pick", "type": "split",
                 "paths": [{"key": "mail", "next": "nudge"}, {"key": "quiet", "next": "exit"}]},
                {"id": "nudge", "type": "send_email", "template_id": template},
            ],
        }  # fmt: skip
        sequence = (await shop.api("POST", "/sequences", {"name": "trial", "message_class": "transactional",
                                                          "definition": definition}, 201))["id"]  # fmt: skip
        await shop.api("POST", f"/sequences/{sequence}/activate")
        base = {"name": "nudge or not", "sequence_id": sequence, "metric": "conversion"}
        refused = await shop.api("POST", "/experiments", {**base, "step_id": "pick"}, 400)
        assert refused["field"] == "goal_event"
        refused = await shop.api(
            "POST", "/experiments", {**base, "step_id": "nudge", "goal_event": "Order Completed"}, 400
        )
        assert refused["field"] == "step_id"  # a send step without variants
        experiment = await shop.api(
            "POST", "/experiments", {**base, "step_id": "pick", "goal_event": "Order Completed", "window": "PT1H"}, 201
        )
        assert experiment["kind"] == "path" and experiment["variants"][1] == {
            "key": "quiet",
            "next": "exit",
            "weight": 1,
        }

        async with scheduler(settings_kwargs, stack, smtp_sink) as sessionmaker:
            users: list[str] = []
            address: dict[str, str] = {}
            paths: dict[str, str] = {}
            while len(set(paths.values())) < 2 or len(users) < 12:  # until both paths were taken
                wave = [f"t{len(users) + i}" for i in range(6)]
                users += wave
                address |= {user: smtp_sink.address(user) for user in wave}
                earlier = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
                batch: list[dict[str, Any]] = []
                for user in wave:
                    batch += [
                        {"type": "identify", "userId": user, "traits": {"email": address[user]}},
                        # An order before the exposure never counts for it.
                        {"type": "track", "userId": user, "event": "Order Completed", "timestamp": earlier,
                         "properties": {"revenue": 999}},
                        {"type": "track", "userId": user, "event": "Trial Started"},
                    ]  # fmt: skip
                r = await client.post(f"{stack.base_url}/v1/batch", json={"batch": batch}, headers=basic(shop.key))
                assert r.is_success
                for user in wave:
                    paths[user] = assign(experiment["id"], await shop.lead_id(user), WEIGHTS)
                    split = await eventually(partial(_logged, shop, user, "split"), what=f"{user} split")
                    assert split["detail"] == {"path": paths[user]}
            for user in users:
                assert await eventually(partial(_ended, shop, user), what=f"{user} done") == "completed"
                if paths[user] == "mail":
                    await smtp_sink.wait_for(address[user], 1, timeout=30)
                else:
                    assert smtp_sink.received(address[user]) == []
            mail = [u for u in users if paths[u] == "mail"]
            quiet = [u for u in users if paths[u] == "quiet"]

            # Conversions after the exposure: two of the mailed leads (one with revenue as text), one quiet lead.
            buyers = [(mail[0], 30), (quiet[0], 10)] + ([(mail[1], "12.50")] if len(mail) > 1 else [])
            orders = [{"type": "track", "userId": u, "event": "Order Completed", "properties": {"revenue": r}}
                      for u, r in buyers]  # fmt: skip
            assert (
                await client.post(f"{stack.base_url}/v1/batch", json={"batch": orders}, headers=basic(shop.key))
            ).is_success
            mailed_buyers = len([b for b in buyers if b[0] in mail])

            async def counted() -> dict[str, Any] | None:
                results = await shop.api("GET", f"/experiments/{experiment['id']}/results")
                totals = [v["total"] for v in results["variants"]]
                return results if totals == [mailed_buyers, 1] else None

            results = await eventually(counted, what="conversions counted per path")
            assert [v["exposures"] for v in results["variants"]] == [len(mail), len(quiet)]
            revenue = await _outcomes(sessionmaker, {**experiment, "metric": "revenue"})
            assert [a.total for a in revenue] == [30 + (12.5 if len(mail) > 1 else 0), 10]
            # Measured by opens instead: the emails the enrollment sent after the split count for its path.
            [nudge] = smtp_sink.received(address[mail[0]])
            await shop.open_as_person(mail[0], str(nudge.message["Message-ID"]))

            async def opened() -> list[float] | None:
                totals = [a.total for a in await _outcomes(sessionmaker, {**experiment, "metric": "open"})]
                return totals if sum(totals) else None

            assert await eventually(opened, what="the open counted for its path") == [1.0, 0.0]

            decided = await shop.api("POST", f"/experiments/{experiment['id']}/decide", {"winner": "mail"})
            assert decided["status"] == "decided" and decided["decision"]["rule"] == "manual"
            await shop.api("POST", f"/experiments/{experiment['id']}/decide", {"winner": "quiet"}, 409)
            late = [f"late{i}" for i in range(4)]
            batch = [m for u in late for m in (
                {"type": "identify", "userId": u, "traits": {"email": smtp_sink.address(u)}},
                {"type": "track", "userId": u, "event": "Trial Started"},
            )]  # fmt: skip
            assert (
                await client.post(f"{stack.base_url}/v1/batch", json={"batch": batch}, headers=basic(shop.key))
            ).is_success
            for user in late:
                split = await eventually(partial(_logged, shop, user, "split"), what=f"{user} split")
                assert split["detail"] == {"path": "mail"}  # the winner's path, whatever the hash says
            stopped = await shop.api("POST", f"/experiments/{experiment['id']}/stop")
            assert stopped["status"] == "stopped"
            again = {**base, "step_id": "pick", "goal_event": "Order Completed", "name": "second round"}
            assert (await shop.api("POST", "/experiments", again, 201))["status"] == "running"
            await shop.api("GET", f"/experiments/{uuid.uuid4()}/results", status=404)


async def _enrollments(shop: Shop, user: str) -> list[dict[str, Any]]:
    r = await shop.client.get(f"{shop.stack.base_url}/api/leads/{user}/enrollments", headers=shop.stack.admin)
    return list(r.json()) if r.status_code == 200 else []  # 404 until scoring created the lead


async def _logged(shop: Shop, user: str, action: str) -> dict[str, Any] | None:
    for enrollment in await _enrollments(shop, user):
        for entry in enrollment["log"]:
            if entry["action"] == action:
                return dict(entry)
    return None


async def _ended(shop: Shop, user: str) -> str | None:
    found = await _enrollments(shop, user)
    return found[0]["status"] if found and found[0]["status"] != "active" else None


async def _outcomes(sessionmaker: Any, experiment: dict[str, Any]) -> list[Any]:
    async with sessionmaker() as session:
        stored = await repository.get(session, uuid.UUID(experiment["id"]))
        assert stored is not None
        return await repository.outcomes(session, {**stored, "metric": experiment["metric"]})
