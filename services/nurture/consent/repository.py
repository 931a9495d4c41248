"""SQL for consent: the send-time check, status changes with their audit rows, suppressions, tombstones.

A person's subscription rows may sit on several leads: scoring folds leads into one another (identify,
alias, a shared email) and moves identities and history, not consent. Readers gather the rows of the
live lead and of every lead folded into it (`lead_merges`, indexed by `into_lead_id`); writers write to
the live lead. Repositories never commit; the caller's transaction does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.nurture.consent.service import (
    GLOBAL,
    Consent,
    ConsentState,
    Decision,
    Kind,
    Method,
    Status,
    SuppressionReason,
    fold_rows,
    identity_hash,
    may_send,
    normalize_email,
)

# The live lead of :lead and every lead folded into it, at any depth.
PERSON = (
    "WITH RECURSIVE live AS (SELECT coalesce(l.merged_into, l.lead_id) AS lead_id FROM leads l "
    "WHERE l.lead_id = :lead), "
    "folded(lead_id) AS (SELECT lead_id FROM live UNION "
    "SELECT m.from_lead_id FROM lead_merges m JOIN folded f ON m.into_lead_id = f.lead_id) "
)

CAN_SEND = text(
    PERSON  # noqa: S608 - constants only
    + ", addr AS (SELECT lower(trim(coalesce(CAST(:email AS text), "
    "(SELECT l.email FROM leads l WHERE l.lead_id = (SELECT lead_id FROM live))))) AS email) "
    "SELECT (SELECT lead_id FROM live) AS live, (SELECT email FROM addr) AS email, "
    "(SELECT coalesce(json_agg(json_build_array(s.topic, s.status, s.method, s.source, s.changed_at)), '[]') "
    " FROM subscriptions s WHERE s.lead_id IN (SELECT lead_id FROM folded)) AS rows, "
    "(SELECT p.reason FROM suppressions p WHERE p.email = (SELECT email FROM addr)) AS suppression, "
    "EXISTS (SELECT 1 FROM erasure_tombstones t WHERE t.identity_hash = "
    " encode(sha256(convert_to('email:' || (SELECT email FROM addr), 'UTF8')), 'hex')) AS erased, "
    "coalesce((SELECT c.opt_out_regime FROM source_consent_settings c WHERE c.source_id = coalesce("
    " CAST(:source AS uuid), (SELECT e.source_id FROM lead_events e WHERE e.lead_id = (SELECT lead_id FROM live) "
    " ORDER BY e.occurred_at LIMIT 1))), false) AS regime"
)


async def can_send(
    session: AsyncSession,
    *,
    lead_id: uuid.UUID | None,
    email: str | None,
    kind: Kind,
    topic: str | None,
    source_id: uuid.UUID | None,
) -> Decision:
    """May this email go out now? Call it right before handing the message to SMTP, in any transaction.

    `lead_id` None checks an address alone (suppressions, erasures; marketing then needs an opt-out
    regime of `source_id`). `email` None uses the lead's address. `source_id` None uses the source of
    the lead's first event for the opt-out regime. One query.
    """
    row = (await session.execute(CAN_SEND, {"lead": lead_id, "email": email, "source": source_id})).one()
    if row.erased:
        return Decision(False, "erased")
    if lead_id is not None and row.live is None:
        return Decision(False, "unknown-lead")  # erased, or deleted by retention
    everything, topics = fold_rows(_consents(row.rows))
    state = ConsentState(everything, topics, row.suppression)
    return may_send(state, kind=kind, topic=topic, opt_out_regime=row.regime, has_email=bool(row.email))


def _consents(raw: Any) -> list[tuple[str, Consent]]:
    items = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    return [
        (topic, Consent(status=status, at=datetime.fromisoformat(at), method=method, source=source))
        for topic, status, method, source, at in items
    ]


@dataclass(frozen=True)
class StatusChange:
    """One change of one lead's consent for one topic (`*`: everything), as `set_statuses` writes it."""

    lead_id: uuid.UUID
    topic: str
    status: str
    method: str
    source: str | None
    consent_text: str | None
    ip: str | None
    at: datetime
    actor: str = "api"
    force: bool = False  # write (and audit) even if the status is the same: a renewed statement


SET_STATUSES = text(
    "WITH input AS (SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS i(lead_id uuid, topic text, "
    " status text, method text, consent_text text, source text, ip text, changed_at timestamptz, actor text, "
    " force boolean)), "
    "prev AS (SELECT s.lead_id, s.topic, s.status FROM subscriptions s JOIN input i USING (lead_id, topic)), "
    "up AS (INSERT INTO subscriptions (lead_id, topic, status, method, consent_text, source, ip, changed_at) "
    " SELECT lead_id, topic, status, method, consent_text, source, ip, changed_at FROM input "
    " ON CONFLICT (lead_id, topic) DO UPDATE SET status = EXCLUDED.status, method = EXCLUDED.method, "
    " consent_text = EXCLUDED.consent_text, source = EXCLUDED.source, ip = EXCLUDED.ip, "
    " changed_at = EXCLUDED.changed_at "
    # An older statement never overrides a newer one (an import of last year's opt-in after today's
    # unsubscribe); the same status again is no change unless the caller renews it on purpose.
    # A bounce or complaint is not softened into an unsubscribe; only a new subscription replaces it.
    " WHERE subscriptions.changed_at <= EXCLUDED.changed_at AND (subscriptions.status <> EXCLUDED.status "
    "  OR (SELECT i.force FROM input i WHERE i.lead_id = EXCLUDED.lead_id AND i.topic = EXCLUDED.topic)) "
    " AND NOT (EXCLUDED.status = 'unsubscribed' AND subscriptions.status IN ('bounced', 'complained')) "
    " RETURNING lead_id, topic) "
    "INSERT INTO consent_changes (lead_id, topic, previous_status, status, method, consent_text, source, ip, "
    " actor, changed_at) "
    "SELECT i.lead_id, i.topic, p.status, i.status, i.method, i.consent_text, i.source, i.ip, i.actor, i.changed_at "
    "FROM up JOIN input i USING (lead_id, topic) LEFT JOIN prev p USING (lead_id, topic) "
    "RETURNING lead_id, topic"
)


TOPIC_ROWS = text(
    "WITH RECURSIVE folded(live, lead_id) AS (SELECT l, l FROM unnest(CAST(:ids AS uuid[])) AS l UNION "
    "SELECT f.live, m.from_lead_id FROM lead_merges m JOIN folded f ON m.into_lead_id = f.lead_id) "
    "SELECT f.live, s.topic, s.status, s.changed_at FROM subscriptions s JOIN folded f ON s.lead_id = f.lead_id "
    "WHERE s.topic <> '*'"
)


async def _leaving_everything(session: AsyncSession, changes: Sequence[StatusChange]) -> list[StatusChange]:
    """Leaving everything leaves every topic subscribed to before it, too (on folded leads as well), so a
    renewed "unsubscribe from all" also ends topics chosen after an earlier one. Topics the same batch
    names are left as given."""
    leaving = {c.lead_id: c for c in changes if c.topic == GLOBAL and c.status == "unsubscribed"}
    if not leaving:
        return []
    named = {(c.lead_id, c.topic) for c in changes}
    rows = await session.execute(TOPIC_ROWS, {"ids": list(leaving)})
    latest: dict[tuple[uuid.UUID, str], tuple[datetime, str]] = {}
    for r in rows:
        key = (r.live, r.topic)
        if key not in latest or r.changed_at > latest[key][0]:
            latest[key] = (r.changed_at, r.status)
    return [
        replace(leaving[lead], topic=topic)
        for (lead, topic), (at, status) in sorted(latest.items())
        if status in ("subscribed", "pending") and at <= leaving[lead].at and (lead, topic) not in named
    ]


async def set_statuses(session: AsyncSession, changes: Sequence[StatusChange]) -> set[tuple[uuid.UUID, str]]:
    """Apply many changes in one statement, each with its audit row; returns the (lead, topic) pairs that
    changed. Leads must be live (see `live_leads`) and each (lead, topic) given once. An unsubscribe from
    everything also unsubscribes the topics subscribed to before it."""
    if not changes:
        return set()
    changes = [*changes, *await _leaving_everything(session, changes)]
    rows = [
        {
            "lead_id": str(c.lead_id),
            "topic": c.topic,
            "status": c.status,
            "method": c.method,
            "consent_text": c.consent_text,
            "source": c.source,
            "ip": c.ip,
            "changed_at": c.at.isoformat(),
            "actor": c.actor,
            "force": c.force,
        }
        for c in changes
    ]
    result = await session.execute(SET_STATUSES, {"rows": orjson.dumps(rows).decode()})
    return {(r.lead_id, r.topic) for r in result}


async def set_status(
    session: AsyncSession,
    lead_id: uuid.UUID,
    topic: str,
    status: str,
    method: str,
    source: str | None,
    consent_text: str | None,
    ip: str | None,
    at: datetime,
    *,
    actor: str = "api",
    force: bool = False,
) -> bool:
    """Set one lead's consent for `topic` (`*`: everything) as stated at `at`, with an audit row; True if it
    changed. Idempotent; an older statement than the current one changes nothing. LookupError: no lead."""
    live = (await live_leads(session, [lead_id])).get(lead_id)
    if live is None:
        raise LookupError(f"no lead {lead_id}")
    change = StatusChange(live, topic, status, method, source, consent_text, ip, at, actor, force)
    return bool(await set_statuses(session, [change]))


async def live_leads(session: AsyncSession, lead_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """Each existing lead id → the live lead it is folded into (itself if not folded)."""
    ids = list(set(lead_ids))
    if not ids:
        return {}
    rows = await session.execute(
        text("SELECT lead_id, coalesce(merged_into, lead_id) AS live FROM leads WHERE lead_id = ANY(:ids)"),
        {"ids": ids},
    )
    return {r.lead_id: r.live for r in rows}


@dataclass(frozen=True)
class SubscriptionRow:
    lead_id: uuid.UUID
    topic: str
    status: str
    method: str
    consent_text: str | None
    source: str | None
    ip: str | None
    changed_at: datetime


PERSON_SUBSCRIPTIONS = text(
    PERSON  # noqa: S608 - constants only
    + "SELECT s.lead_id, s.topic, s.status, s.method, s.consent_text, s.source, s.ip, s.changed_at "
    "FROM subscriptions s WHERE s.lead_id IN (SELECT lead_id FROM folded) ORDER BY s.topic, s.changed_at"
)
FOLDED = text(PERSON + "SELECT lead_id FROM folded")  # noqa: S608 - constants only


async def person_subscriptions(session: AsyncSession, lead_id: uuid.UUID) -> list[SubscriptionRow]:
    """Every subscription row of the person `lead_id` belongs to, folded leads included."""
    rows = await session.execute(PERSON_SUBSCRIPTIONS, {"lead": lead_id})
    return [SubscriptionRow(*r) for r in rows]


def state_of(rows: Iterable[SubscriptionRow], suppression: str | None = None) -> ConsentState:
    """The consent state of a person from all their rows (and their address's suppression reason)."""
    everything, topics = fold_rows(
        (r.topic, Consent(cast(Status, r.status), r.changed_at, cast(Method, r.method), r.source, r.consent_text))
        for r in rows
    )
    return ConsentState(everything, topics, cast(SuppressionReason | None, suppression))


async def consent_history(session: AsyncSession, lead_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT topic, previous_status, status, method, consent_text, source, ip, actor, changed_at, recorded_at "
            "FROM consent_changes WHERE lead_id = ANY(:ids) ORDER BY recorded_at, id"
        ),
        {"ids": list(lead_ids)},
    )
    return [dict(r._mapping) for r in rows]


async def folded_leads(session: AsyncSession, live: uuid.UUID) -> list[uuid.UUID]:
    """The live lead and every lead folded into it."""
    rows = await session.execute(FOLDED, {"lead": live})
    return [r.lead_id for r in rows]


# -- suppressions and tombstones ------------------------------------------------------

SUPPRESSION_RANK = {"manual": 0, "unsubscribed": 1, "bounced": 2, "complained": 3}


async def suppress(session: AsyncSession, entries: Sequence[tuple[str, str, str | None, datetime]]) -> int:
    """Add (email, reason, source, at) entries; an address keeps its strictest reason. Returns rows written."""
    if not entries:
        return 0
    latest: dict[str, tuple[str, str, str | None, datetime]] = {}
    for email, reason, source, at in entries:
        key = normalize_email(email)
        current = latest.get(key)
        if current is None or SUPPRESSION_RANK[reason] > SUPPRESSION_RANK[current[1]]:
            latest[key] = (key, reason, source, at)
    rows = [{"email": e, "reason": r, "source": s, "at": a.isoformat()} for e, r, s, a in latest.values()]
    result = await session.execute(
        text(
            "INSERT INTO suppressions (email, reason, source, at) "
            "SELECT email, reason, source, at FROM json_to_recordset(CAST(:rows AS json)) "
            "AS i(email text, reason text, source text, at timestamptz) "
            "ON CONFLICT (email) DO UPDATE SET reason = EXCLUDED.reason, source = EXCLUDED.source, at = EXCLUDED.at "
            "WHERE array_position(ARRAY['manual', 'unsubscribed', 'bounced', 'complained'], suppressions.reason) "
            " < array_position(ARRAY['manual', 'unsubscribed', 'bounced', 'complained'], EXCLUDED.reason) "
            "RETURNING email"
        ),
        {"rows": orjson.dumps(rows).decode()},
    )
    return len(result.all())


async def suppressions_of(session: AsyncSession, emails: Sequence[str]) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT email, reason, source, at FROM suppressions WHERE email = ANY(:emails) ORDER BY email"),
        {"emails": [normalize_email(e) for e in emails]},
    )
    return [dict(r._mapping) for r in rows]


async def unsuppress(session: AsyncSession, email: str) -> bool:
    row = await session.execute(
        text("DELETE FROM suppressions WHERE email = :email RETURNING email"), {"email": normalize_email(email)}
    )
    return row.first() is not None


async def erased(session: AsyncSession, identities: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Those of `identities` ((kind, value); kinds "user", "anonymous", "email") that belong to an erased
    person. The scoring consumer drops their events, so a replay cannot bring anyone back. One query."""
    by_hash: dict[str, list[tuple[str, str]]] = {}
    for identity in identities:
        by_hash.setdefault(identity_hash(*identity), []).append(identity)
    if not by_hash:
        return set()
    rows = await session.execute(
        text("SELECT identity_hash FROM erasure_tombstones WHERE identity_hash = ANY(:hashes)"),
        {"hashes": list(by_hash)},
    )
    return {identity for r in rows for identity in by_hash[r.identity_hash]}


async def consent_check(
    session: AsyncSession, *, lead_id: uuid.UUID | None, to_email: str | None, kind: str, topic: str | None
) -> str | None:
    """`can_send` in the shape of services/nurture/delivery/operators.py ConsentCheck: None when the email
    may go out, else the reason. Unknown kinds are checked as marketing (the stricter)."""
    checked: Kind = "transactional" if kind == "transactional" else "marketing"
    decision = await can_send(session, lead_id=lead_id, email=to_email, kind=checked, topic=topic, source_id=None)
    return None if decision.allowed else decision.reason
