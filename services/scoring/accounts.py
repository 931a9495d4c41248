"""Accounts (Segment `group` calls): membership, traits, and the buying group's roll-up.

B2B purchases involve several people; an account's score rolls up its members' scores (sum, max or
average, per the rule set) and its stage per funnel model is the furthest stage any member reached.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.rules import RuleSet


async def join(session: AsyncSession, joins: list[tuple[str, uuid.UUID, dict[str, Any]]]) -> None:
    """(group id, lead, group traits) from group calls: upsert accounts and memberships."""
    if not joins:
        return
    traits: dict[str, dict[str, Any]] = {}
    for account, _, t in joins:
        traits.setdefault(account, {}).update(t)
    await session.execute(
        text(
            "INSERT INTO accounts (account_id, traits) SELECT * FROM unnest(CAST(:ids AS text[]), "
            "CAST(:traits AS jsonb[])) ON CONFLICT (account_id) DO UPDATE SET traits = accounts.traits || "
            "excluded.traits, updated_at = now()"
        ),
        {"ids": list(traits), "traits": [orjson.dumps(t, default=str).decode() for t in traits.values()]},
    )
    pairs = sorted({(account, lead) for account, lead, _ in joins})
    await session.execute(
        text(
            "INSERT INTO account_members (account_id, lead_id) SELECT * FROM unnest(CAST(:a AS text[]), "
            "CAST(:l AS uuid[])) ON CONFLICT DO NOTHING"
        ),
        {"a": [a for a, _ in pairs], "l": [lead for _, lead in pairs]},
    )


def roll_up(rules: RuleSet, members: list[tuple[float, dict[str, str]]]) -> tuple[float, dict[str, str]]:
    """An account's score and stages from its members' (score, stages)."""
    scores = [score for score, _ in members]
    if not scores:
        return 0.0, {}
    value = {"sum": sum(scores), "max": max(scores), "avg": sum(scores) / len(scores)}[rules.account_rollup]
    stages = {}
    for model in rules.models:
        reached = [model.index(s[model.name]) for _, s in members if model.name in s]
        stages[model.name] = model.stages[max(reached, default=0)].name
    return value, stages


async def refresh(session: AsyncSession, rules: RuleSet, leads: Iterable[uuid.UUID]) -> None:
    """Recompute the accounts these leads belong to (one read, one write)."""
    rows = await session.execute(
        text(
            "SELECT m.account_id, l.score, l.stages FROM account_members m JOIN leads l ON l.lead_id = m.lead_id "
            "WHERE m.account_id IN (SELECT account_id FROM account_members WHERE lead_id = ANY(CAST(:ids AS uuid[]))) "
            "AND l.merged_into IS NULL"
        ),
        {"ids": list(leads)},
    )
    members: dict[str, list[tuple[float, dict[str, str]]]] = {}
    for account, score, stages in rows:
        members.setdefault(account, []).append((float(score), stages))
    if not members:
        return
    ids = sorted(members)
    rolled = [roll_up(rules, members[a]) for a in ids]
    await session.execute(
        text(
            "UPDATE accounts AS a SET score = d.score, stages = d.stages, member_count = d.n, updated_at = now() "
            "FROM unnest(CAST(:ids AS text[]), CAST(:scores AS numeric[]), CAST(:stages AS jsonb[]), "
            "CAST(:n AS int[])) AS d(account_id, score, stages, n) WHERE a.account_id = d.account_id"
        ),
        {
            "ids": ids,
            "scores": [round(score, 4) for score, _ in rolled],
            "stages": [orjson.dumps(stages).decode() for _, stages in rolled],
            "n": [len(members[a]) for a in ids],
        },
    )
