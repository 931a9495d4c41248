"""Rule-set versions in the database and the active one, cached per consumer process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.engine import Scorer
from services.scoring.rules import RuleSet, default_rule_set


@dataclass(frozen=True)
class RuleSetRow:
    version: int
    rules: dict[str, Any]
    status: str
    note: str
    created_at: datetime
    activated_at: datetime | None


COLUMNS = "version, rules, status, note, created_at, activated_at"


async def active(session: AsyncSession) -> RuleSetRow:
    """The active rule set; the shipped defaults become version 1 on first use."""
    row = (await session.execute(text(f"SELECT {COLUMNS} FROM rule_sets WHERE status = 'active'"))).first()  # noqa: S608
    if row is not None:
        return RuleSetRow(*row)
    await session.execute(
        text(
            "INSERT INTO rule_sets (rules, status, note, activated_at) "
            "SELECT CAST(:rules AS jsonb), 'active', 'shipped defaults', now() "
            "WHERE NOT EXISTS (SELECT 1 FROM rule_sets WHERE status = 'active') ON CONFLICT DO NOTHING"
        ),
        {"rules": orjson.dumps(default_rule_set().model_dump(mode="json", by_alias=True)).decode()},
    )
    row = (await session.execute(text(f"SELECT {COLUMNS} FROM rule_sets WHERE status = 'active'"))).one()  # noqa: S608
    return RuleSetRow(*row)


async def get(session: AsyncSession, version: int) -> RuleSetRow | None:
    row = (
        await session.execute(text(f"SELECT {COLUMNS} FROM rule_sets WHERE version = :v"), {"v": version})  # noqa: S608
    ).first()
    return RuleSetRow(*row) if row is not None else None


async def all_versions(session: AsyncSession) -> list[RuleSetRow]:
    rows = await session.execute(text(f"SELECT {COLUMNS} FROM rule_sets ORDER BY version DESC"))  # noqa: S608
    return [RuleSetRow(*r) for r in rows]


async def add(session: AsyncSession, rules: RuleSet, note: str) -> RuleSetRow:
    row = (
        await session.execute(
            text(f"INSERT INTO rule_sets (rules, note) VALUES (CAST(:rules AS jsonb), :note) RETURNING {COLUMNS}"),  # noqa: S608
            {"rules": orjson.dumps(rules.model_dump(mode="json", by_alias=True)).decode(), "note": note},
        )
    ).one()
    return RuleSetRow(*row)


async def activate(session: AsyncSession, version: int) -> None:
    """Make `version` the active rule set (the previous one is retired)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(7315528)"))
    await session.execute(
        text("UPDATE rule_sets SET status = 'retired' WHERE status = 'active' AND version <> :v"), {"v": version}
    )
    await session.execute(
        text("UPDATE rule_sets SET status = 'active', activated_at = now() WHERE version = :v"), {"v": version}
    )


def scorer_of(row: RuleSetRow) -> Scorer:
    return Scorer(RuleSet.model_validate(row.rules), row.version)


class ActiveRules:
    """The active rule set's Scorer, re-checked at most every `refresh_seconds`.

    A lead scored under an older version is rebuilt from its history when it is next touched, and the
    rescore job rebuilds the rest, so a short staleness after an activation costs nothing in the end.
    """

    def __init__(self, refresh_seconds: float = 1.0) -> None:
        self.refresh_seconds = refresh_seconds
        self._scorer: Scorer | None = None
        self._checked = 0.0

    async def get(self, session: AsyncSession) -> Scorer:
        now = time.monotonic()
        if self._scorer is not None and now - self._checked < self.refresh_seconds:
            return self._scorer
        version = await session.scalar(text("SELECT version FROM rule_sets WHERE status = 'active'"))
        if self._scorer is None or version != self._scorer.version:
            self._scorer = scorer_of(await active(session))
        self._checked = now
        return self._scorer
