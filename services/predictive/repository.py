"""SQL for predictive scoring: training histories, training runs, the active models, lead predictions."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.predictive.features import MAX_EVENTS, Event
from services.predictive.service import LeadHistory
from services.scoring import repository as scoring_repository

HISTORY_CHUNK = 1000
RUN_COLUMNS = (
    "version, funnel_model, target_stage, horizon_days, status, decision, reason, metrics, params, "
    "rule_set_version, trained_at, activated_at"
)


@dataclass(frozen=True)
class RunRow:
    version: int
    funnel_model: str
    target_stage: str
    horizon_days: float
    status: str
    decision: str
    reason: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    rule_set_version: int
    trained_at: datetime
    activated_at: datetime | None


@dataclass(frozen=True)
class PredictionWrite:
    lead_id: uuid.UUID
    funnel_model: str
    probability: float
    model_version: int
    top_features: list[dict[str, Any]]
    predicted_at: datetime


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


async def histories(
    session: AsyncSession, funnel_model: str, reached_stages: Sequence[str], since: datetime, limit: int
) -> list[LeadHistory]:
    """Live leads with events since `since` (at most `limit`, an arbitrary sample by lead id), their
    retained events, and when each first entered one of `reached_stages` of the funnel model."""
    ids = list(
        await session.scalars(
            text(
                "SELECT l.lead_id FROM leads l WHERE l.merged_into IS NULL AND EXISTS "
                "(SELECT 1 FROM lead_events e WHERE e.lead_id = l.lead_id AND e.occurred_at >= :since) "
                "ORDER BY l.lead_id LIMIT :limit"
            ),
            {"since": since, "limit": limit},
        )
    )
    found: list[LeadHistory] = []
    for start in range(0, len(ids), HISTORY_CHUNK):
        chunk = ids[start : start + HISTORY_CHUNK]
        people = {
            r.lead_id: (r.email, r.user_id)
            for r in await session.execute(
                text("SELECT lead_id, email, user_id FROM leads WHERE lead_id = ANY(CAST(:ids AS uuid[]))"),
                {"ids": chunk},
            )
        }
        reached = {
            r.lead_id: r.at
            for r in await session.execute(
                text(
                    "SELECT lead_id, min(occurred_at) AS at FROM stage_history "
                    "WHERE lead_id = ANY(CAST(:ids AS uuid[])) AND model = :model "
                    "AND to_stage = ANY(CAST(:stages AS text[])) GROUP BY lead_id"
                ),
                {"ids": chunk, "model": funnel_model, "stages": list(reached_stages)},
            )
        }
        events = await scoring_repository.history(session, chunk)
        for lead in chunk:
            email, user_id = people[lead]
            found.append(LeadHistory(lead, email, user_id, events.get(lead, []), reached.get(lead)))
    return found


async def insert_run(
    session: AsyncSession,
    *,
    funnel_model: str,
    target_stage: str,
    horizon_days: float,
    decision: str,
    reason: str,
    metrics: dict[str, Any],
    artifact: dict[str, Any] | None,
    params: dict[str, Any],
    rule_set_version: int,
) -> int:
    version: int = await session.scalar(
        text(
            "INSERT INTO predictive_models (funnel_model, target_stage, horizon_days, status, decision, reason, "
            "metrics, artifact, params, rule_set_version) VALUES (:funnel, :target, :horizon, 'rejected', "
            ":decision, :reason, CAST(:metrics AS jsonb), CAST(:artifact AS jsonb), CAST(:params AS jsonb), :rules) "
            "RETURNING version"
        ),
        {
            "funnel": funnel_model,
            "target": target_stage,
            "horizon": horizon_days,
            "decision": decision,
            "reason": reason,
            "metrics": _json(metrics),
            "artifact": _json(artifact) if artifact is not None else None,
            "params": _json(params),
            "rules": rule_set_version,
        },
    )
    return version


async def _lock(session: AsyncSession) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(7315529)"))


async def activate(session: AsyncSession, version: int) -> None:
    """Make `version` its funnel model's active model; the one active before is retired."""
    await _lock(session)
    await session.execute(
        text(
            "UPDATE predictive_models SET status = 'retired' WHERE status = 'active' AND version <> :v "
            "AND funnel_model = (SELECT funnel_model FROM predictive_models WHERE version = :v)"
        ),
        {"v": version},
    )
    await session.execute(
        text("UPDATE predictive_models SET status = 'active', activated_at = now() WHERE version = :v"),
        {"v": version},
    )


async def rollback(session: AsyncSession, funnel_model: str) -> tuple[int, int | None] | None:
    """The active model becomes `rolled_back` and the one active before it active again.

    Returns (rolled back, now active or None when there was no earlier model); None when no model
    of that funnel model is active."""
    await _lock(session)
    current = await session.scalar(
        text("SELECT version FROM predictive_models WHERE funnel_model = :f AND status = 'active'"),
        {"f": funnel_model},
    )
    if current is None:
        return None
    previous = await session.scalar(
        text(
            "SELECT version FROM predictive_models WHERE funnel_model = :f AND status = 'retired' "
            "ORDER BY activated_at DESC NULLS LAST, version DESC LIMIT 1"
        ),
        {"f": funnel_model},
    )
    await session.execute(
        text("UPDATE predictive_models SET status = 'rolled_back' WHERE version = :v"), {"v": current}
    )
    if previous is not None:
        await session.execute(
            text("UPDATE predictive_models SET status = 'active', activated_at = now() WHERE version = :v"),
            {"v": previous},
        )
    return current, previous


async def runs(session: AsyncSession, funnel_model: str | None, limit: int) -> list[RunRow]:
    rows = await session.execute(
        text(
            f"SELECT {RUN_COLUMNS} FROM predictive_models WHERE (CAST(:f AS text) IS NULL OR funnel_model = :f) "  # noqa: S608
            "ORDER BY version DESC LIMIT :limit"
        ),
        {"f": funnel_model, "limit": limit},
    )
    return [RunRow(*r) for r in rows]


async def run(session: AsyncSession, version: int) -> RunRow | None:
    row = (
        await session.execute(
            text(f"SELECT {RUN_COLUMNS} FROM predictive_models WHERE version = :v"),  # noqa: S608
            {"v": version},
        )
    ).first()
    return RunRow(*row) if row is not None else None


async def active_versions(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(text("SELECT funnel_model, version FROM predictive_models WHERE status = 'active'"))
    return {r.funnel_model: r.version for r in rows}


async def artifacts(session: AsyncSession, versions: Iterable[int]) -> dict[int, dict[str, Any]]:
    rows = await session.execute(
        text("SELECT version, artifact FROM predictive_models WHERE version = ANY(CAST(:v AS int[]))"),
        {"v": list(versions)},
    )
    return {r.version: r.artifact for r in rows if r.artifact is not None}


async def recent_events(
    session: AsyncSession, lead_ids: Sequence[uuid.UUID], since: datetime
) -> dict[uuid.UUID, list[Event]]:
    """Each lead's latest human events since `since` (at most MAX_EVENTS), narrow: what features need."""
    rows = await session.execute(
        text(
            "SELECT l.id AS lead_id, e.type, e.name, e.path, e.occurred_at FROM unnest(CAST(:ids AS uuid[])) AS l(id) "
            "CROSS JOIN LATERAL (SELECT type, name, properties->>'path' AS path, occurred_at FROM lead_events "
            "WHERE lead_id = l.id AND occurred_at >= :since AND bot IS NULL ORDER BY occurred_at DESC LIMIT :cap) e"
        ),
        {"ids": list(lead_ids), "since": since, "cap": MAX_EVENTS},
    )
    found: dict[uuid.UUID, list[Event]] = {}
    for r in rows:
        found.setdefault(r.lead_id, []).append(Event(r.type, r.name, r.path, r.occurred_at))
    return found


async def write_predictions(session: AsyncSession, rows: list[PredictionWrite]) -> None:
    """One upsert for the batch; a prediction as of an earlier event time never replaces a later one."""
    if not rows:
        return
    await session.execute(
        text(
            "INSERT INTO lead_predictions (lead_id, funnel_model, probability, model_version, top_features, "
            "predicted_at) SELECT r.lead_id, r.funnel_model, r.probability, r.model_version, r.top_features, "
            "r.predicted_at FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(lead_id uuid, funnel_model text, "
            "probability float8, model_version int, top_features jsonb, predicted_at timestamptz) "
            "ON CONFLICT (lead_id, funnel_model) DO UPDATE SET probability = EXCLUDED.probability, "
            "model_version = EXCLUDED.model_version, top_features = EXCLUDED.top_features, "
            "predicted_at = EXCLUDED.predicted_at, updated_at = now() "
            "WHERE lead_predictions.predicted_at <= EXCLUDED.predicted_at "
            "OR lead_predictions.model_version <> EXCLUDED.model_version"
        ),
        {
            "rows": orjson.dumps(
                [
                    {
                        "lead_id": str(w.lead_id),
                        "funnel_model": w.funnel_model,
                        "probability": w.probability,
                        "model_version": w.model_version,
                        "top_features": w.top_features,
                        "predicted_at": w.predicted_at.isoformat(),
                    }
                    for w in rows
                ]
            ).decode()
        },
    )


async def lead_predictions(session: AsyncSession, lead_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT funnel_model, probability, model_version, top_features, predicted_at FROM lead_predictions "
            "WHERE lead_id = :lead ORDER BY funnel_model"
        ),
        {"lead": lead_id},
    )
    return [dict(r._mapping) for r in rows]
