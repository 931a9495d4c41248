"""SQL of experiments: definitions, recorded assignments, outcomes per variant and winner decisions."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.nurture.experiments.stats import Arm

COLUMNS = (
    "id, name, sequence_id, step_id, kind, variants, metric, goal_event, window_seconds, alpha, min_sample, "
    "auto_winner, status, winner, decision, decided_at, created_at"
)
OPENED, CLICKED, ORDER = "Email Opened", "Email Link Clicked", "Order Completed"
# A number as Segment's ecommerce spec sends it (a JSON number or a numeric string); anything else is 0.
_NUMERIC = r"^\s*-?[0-9]+(\.[0-9]+)?\s*$"


@dataclass(frozen=True)
class Exposure:
    """A lead's first exposure to an experiment: recorded once, kept on replay and re-entry."""

    experiment_id: uuid.UUID
    lead_id: uuid.UUID
    variant: str
    enrollment_id: uuid.UUID
    send_key: str | None
    assigned_at: datetime


async def create(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any] | None:
    """A running experiment, or None if the step already has a live one (the partial unique index)."""
    row = (
        (
            await session.execute(
                text(
                    "INSERT INTO experiments (id, name, sequence_id, step_id, kind, variants, metric, goal_event, "  # noqa: S608 - constants
                    "window_seconds, alpha, min_sample, auto_winner, status) VALUES (:id, :name, :sequence_id, "
                    ":step_id, :kind, CAST(:variants AS jsonb), :metric, :goal_event, :window_seconds, :alpha, "
                    ":min_sample, :auto_winner, 'running') "
                    "ON CONFLICT (sequence_id, step_id) WHERE status <> 'stopped' DO NOTHING "
                    f"RETURNING {COLUMNS}"
                ),
                values,
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def get(session: AsyncSession, experiment_id: uuid.UUID) -> dict[str, Any] | None:
    row = (
        (
            await session.execute(text(f"SELECT {COLUMNS} FROM experiments WHERE id = :id"), {"id": experiment_id})  # noqa: S608
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def listing(session: AsyncSession, sequence_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            f"SELECT {COLUMNS} FROM experiments WHERE CAST(:s AS uuid) IS NULL OR sequence_id = :s "  # noqa: S608 - constants
            "ORDER BY created_at DESC"
        ),
        {"s": sequence_id},
    )
    return [dict(r) for r in rows.mappings()]


async def live_for_step(
    session: AsyncSession, sequence_id: uuid.UUID, step_id: str, lead_id: uuid.UUID
) -> tuple[dict[str, Any], str | None] | None:
    """The step's running or decided experiment and the variant this lead already got in it, if any."""
    row = (
        await session.execute(
            text(
                "SELECT e.id, e.status, e.winner, e.variants, a.variant FROM experiments e "
                "LEFT JOIN experiment_assignments a ON a.experiment_id = e.id AND a.lead_id = :lead "
                "WHERE e.sequence_id = :s AND e.step_id = :step AND e.status IN ('running', 'decided')"
            ),
            {"s": sequence_id, "step": step_id, "lead": lead_id},
        )
    ).first()
    if row is None:
        return None
    return {"id": row[0], "status": row[1], "winner": row[2], "variants": row[3]}, row[4]


async def record(session: AsyncSession, exposures: Iterable[Exposure]) -> None:
    """One statement for a round's exposures; a lead's first one wins."""
    items = list(exposures)
    if not items:
        return
    await session.execute(
        text(
            "INSERT INTO experiment_assignments (experiment_id, lead_id, variant, enrollment_id, send_key, "
            "assigned_at) SELECT * FROM unnest(CAST(:e AS uuid[]), CAST(:l AS uuid[]), CAST(:v AS text[]), "
            "CAST(:n AS uuid[]), CAST(:k AS text[]), CAST(:t AS timestamptz[])) ON CONFLICT DO NOTHING"
        ),
        {
            "e": [x.experiment_id for x in items],
            "l": [x.lead_id for x in items],
            "v": [x.variant for x in items],
            "n": [x.enrollment_id for x in items],
            "k": [x.send_key for x in items],
            "t": [x.assigned_at for x in items],
        },
    )


def _outcome_sql(experiment: dict[str, Any]) -> str:
    """Per exposure, the outcome: 1/0 for open, click and conversion, the revenue for revenue."""
    # As a difference, so the planner finds a lead's events by lead id; as a range on occurred_at it would
    # AND in a scan of everyone's events in the window, once per exposed lead.
    within = "ev.occurred_at - x.assigned_at BETWEEN interval '0' AND make_interval(secs => :w)"
    if experiment["metric"] in ("open", "click"):
        name = OPENED if experiment["metric"] == "open" else CLICKED
        # A send experiment counts its own email; a path experiment every email of the enrollment after the split.
        # Keys are "<enrollment>:<step count>": a path counts the enrollment's emails after the split's count.
        emails = "s.lead_id = x.lead_id AND " + (
            "s.send_key = x.send_key" if experiment["kind"] == "send"
            else "s.send_key LIKE x.enrollment_id::text || ':%' "
                 "AND CAST(split_part(s.send_key, ':', 2) AS int) > CAST(split_part(x.send_key, ':', 2) AS int)"
        )  # fmt: skip
        return (
            "CASE WHEN EXISTS (SELECT 1 FROM email_sends s JOIN lead_events ev ON ev.lead_id = x.lead_id "  # noqa: S608 - constants
            f"AND ev.properties->>'email_id' = s.message_id WHERE {emails} AND ev.type = 'track' "
            f"AND ev.name = '{name}' AND ev.bot IS NULL AND {within}) THEN 1 ELSE 0 END"
        )
    if experiment["metric"] == "conversion":
        return (
            "CASE WHEN EXISTS (SELECT 1 FROM lead_events ev WHERE ev.lead_id = x.lead_id AND ev.type = 'track' "  # noqa: S608 - constants
            f"AND lower(ev.name) = lower(:goal) AND ev.bot IS NULL AND {within}) THEN 1 ELSE 0 END"
        )
    amount = "COALESCE(ev.properties->>'revenue', ev.properties->>'total')"
    return (
        f"COALESCE((SELECT sum(CASE WHEN {amount} ~ '{_NUMERIC}' THEN CAST({amount} AS numeric) ELSE 0 END) "  # noqa: S608 - constants
        "FROM lead_events ev WHERE ev.lead_id = x.lead_id AND ev.type = 'track' AND lower(ev.name) = lower(:goal) "
        f"AND ev.bot IS NULL AND {within}), 0)"
    )


async def outcomes(session: AsyncSession, experiment: dict[str, Any]) -> list[Arm]:
    """Exposures and outcome sums per variant, in the experiment's variant order (missing variants are 0).

    A send experiment's exposure is an email that was `sent`; a path experiment's is the split taken."""
    exposed = (
        "JOIN email_sends sent ON sent.send_key = x.send_key AND sent.status = 'sent'"
        if experiment["kind"] == "send" else ""
    )  # fmt: skip
    rows = await session.execute(
        text(
            f"SELECT variant, count(*), COALESCE(sum(o), 0), COALESCE(sum(o * o), 0) FROM ("  # noqa: S608 - constants
            f"SELECT x.variant, ({_outcome_sql(experiment)}) AS o FROM experiment_assignments x {exposed} "
            "WHERE x.experiment_id = :id) per_lead GROUP BY variant"
        ),
        {"id": experiment["id"], "w": experiment["window_seconds"], "goal": experiment["goal_event"] or ORDER},
    )
    found = {r[0]: (int(r[1]), float(r[2]), float(r[3])) for r in rows}
    return [Arm(v["key"], *found.get(v["key"], (0, 0.0, 0.0))) for v in experiment["variants"]]


async def decide(
    session: AsyncSession, experiment_id: uuid.UUID, winner: str, decision: dict[str, Any], now: datetime
) -> bool:
    """Record the winner once: only a running experiment can be decided."""
    result = await session.execute(
        text(
            "UPDATE experiments SET status = 'decided', winner = :w, decision = CAST(:d AS jsonb), decided_at = :now "
            "WHERE id = :id AND status = 'running' RETURNING id"
        ),
        {"id": experiment_id, "w": winner, "d": _json(decision), "now": now},
    )
    return result.first() is not None


async def stop(session: AsyncSession, experiment_id: uuid.UUID) -> dict[str, Any] | None:
    await session.execute(text("UPDATE experiments SET status = 'stopped' WHERE id = :id"), {"id": experiment_id})
    return await get(session, experiment_id)


async def running_auto(session: AsyncSession) -> list[dict[str, Any]]:
    """Running experiments that may pick their winner themselves, locked so one process decides each."""
    rows = await session.execute(
        text(
            f"SELECT {COLUMNS} FROM experiments WHERE status = 'running' AND auto_winner FOR UPDATE SKIP LOCKED"  # noqa: S608 - constants
        )
    )
    return [dict(r) for r in rows.mappings()]


async def sequence_step(session: AsyncSession, sequence_id: uuid.UUID) -> dict[str, Any] | None:
    """The definition of the sequence's current version (to copy a step's variants from)."""
    row = (
        await session.execute(
            text(
                "SELECT v.definition FROM sequences s JOIN sequence_versions v ON v.sequence_id = s.id "
                "AND v.version = s.current_version WHERE s.id = :s"
            ),
            {"s": sequence_id},
        )
    ).first()
    return dict(row[0]) if row else None


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
