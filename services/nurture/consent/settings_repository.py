"""SQL of consent settings: the topics of the preference page and each source's consent regime."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def set_opt_out_regime(session: AsyncSession, source_id: uuid.UUID, opt_out_regime: bool) -> bool:
    """Record the source's consent regime; False if there is no such source."""
    row = await session.execute(
        text(
            "INSERT INTO source_consent_settings (source_id, opt_out_regime, updated_at) "
            "SELECT id, :regime, now() FROM sources WHERE id = :id "
            "ON CONFLICT (source_id) DO UPDATE SET opt_out_regime = EXCLUDED.opt_out_regime, updated_at = now() "
            "RETURNING source_id"
        ),
        {"id": source_id, "regime": opt_out_regime},
    )
    return row.first() is not None


async def opt_out_regime_of(session: AsyncSession, lead_id: uuid.UUID) -> bool:
    """Whether the source of the lead's first event is configured for the opt-out regime."""
    regime = await session.scalar(
        text(
            "SELECT c.opt_out_regime FROM source_consent_settings c WHERE c.source_id = (SELECT e.source_id "
            "FROM lead_events e WHERE e.lead_id = :lead ORDER BY e.occurred_at LIMIT 1)"
        ),
        {"lead": lead_id},
    )
    return bool(regime)


# -- topics --------------------------------------------------------------------------------------------


async def list_topics(session: AsyncSession) -> list[tuple[str, str, str]]:
    """(topic, label, description) of every topic, in topic order."""
    rows = await session.execute(text("SELECT topic, label, description FROM consent_topics ORDER BY topic"))
    return [(r.topic, r.label, r.description) for r in rows]


async def put_topic(session: AsyncSession, topic: str, label: str, description: str) -> None:
    await session.execute(
        text(
            "INSERT INTO consent_topics (topic, label, description) VALUES (:t, :l, :d) "
            "ON CONFLICT (topic) DO UPDATE SET label = EXCLUDED.label, description = EXCLUDED.description"
        ),
        {"t": topic, "l": label, "d": description},
    )


async def delete_topic(session: AsyncSession, topic: str) -> bool:
    row = await session.execute(text("DELETE FROM consent_topics WHERE topic = :t RETURNING topic"), {"t": topic})
    return row.first() is not None
