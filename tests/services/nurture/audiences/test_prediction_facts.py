"""Audiences read the lead's predicted probability where scoring keeps it (real PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from services.nurture.audiences.definition import AudienceDefinition
from services.nurture.audiences.repository import lead_facts
from services.nurture.audiences.service import is_member
from tests.helpers import env

LIKELY = AudienceDefinition.model_validate(
    {"include": [{"kind": "prediction", "gte": 0.6}], "exclude_customers": False, "exclude_unsubscribed": False}
)


async def test_an_audience_on_the_prediction_takes_the_likely_lead_only(settings_kwargs: dict[str, Any]) -> None:
    likely, unlikely = uuid.uuid4(), uuid.uuid4()
    async with env(settings_kwargs) as e:
        async with e.sessionmaker() as session, session.begin():
            for lead, p in ((likely, 0.8), (unlikely, 0.2)):
                await session.execute(
                    text("INSERT INTO leads (lead_id, score_state) VALUES (:l, CAST(:s AS jsonb))"),
                    {"l": lead, "s": json.dumps({"predictions": {"b2b": p}})},
                )
        async with e.sessionmaker() as session, session.begin():
            facts = await lead_facts(session, [likely, unlikely], [], datetime.now(UTC))
        # The test database's active rules (tests/helpers.py COUNTING_RULES) have `b2b` as primary model.
        assert facts[likely].primary_model == "b2b" and facts[likely].predictions == {"b2b": 0.8}
        assert is_member(LIKELY, facts[likely], datetime.now(UTC))
        assert not is_member(LIKELY, facts[unlikely], datetime.now(UTC))
