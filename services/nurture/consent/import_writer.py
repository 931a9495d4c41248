"""SQL of the contact and suppression imports: which lead each row is, then (unless a dry run) the writes.

Leads are written here directly, not published as identify events for scoring to create: consent rows
need the lead id inside the import's own transaction (an event would create the lead later, after the
answer, and a failed import could not be rolled back), and the admin API has no topic settings to
publish with. Identity rules are scoring's, through its repository functions (one identity, one lead;
concurrent creators resolved by ON CONFLICT). Leads known only by an address get the anonymous id
`imp-<fingerprint>` so events can name them. Imported traits are stamped with the import's time, so a
later identify wins; fit is recomputed at the lead's next event or rescore.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.nurture.consent.imports import ContactRow, Parsed, Rejected, SuppressionRow
from services.nurture.consent.repository import StatusChange, erased, set_statuses, suppress
from services.nurture.consent.service import GLOBAL, email_digest
from services.scoring import repository as identities


@dataclass
class ImportReport:
    dry_run: bool
    rows: int
    accepted: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    leads_created: int = 0
    leads_updated: int = 0
    consent_statements: int = 0
    consent_changed: int | None = None  # None in a dry run: known only once written
    suppressions_written: int | None = None


@dataclass
class Target:
    row: ContactRow
    lead_id: uuid.UUID | None  # None: a new lead
    attach: list[tuple[str, str]] = field(default_factory=list)  # identities to add to the lead
    set_user: bool = False


def import_anonymous_id(email: str) -> str:
    return "imp-" + email_digest(email)


async def plan_contacts(session: AsyncSession, parsed: Parsed[ContactRow]) -> tuple[list[Target], list[Rejected]]:
    """Which lead each row is (existing or new), and the rows that cannot be imported."""
    wanted: list[tuple[str, str]] = []
    for row in parsed.rows:
        wanted.append(("email", row.email))
        if row.user_id:
            wanted.append(("user", row.user_id))
    found = await identities.find_leads(session, wanted)
    gone = await erased(session, wanted)
    owners = await session.execute(
        text("SELECT lead_id, user_id FROM leads WHERE lead_id = ANY(:ids)"), {"ids": list(set(found.values()))}
    )
    user_of = {r.lead_id: r.user_id for r in owners}
    targets: list[Target] = []
    rejected = list(parsed.rejected)
    claimed: dict[uuid.UUID, int] = {}
    for row in parsed.rows:
        by_email = found.get(("email", row.email))
        by_user = found.get(("user", row.user_id)) if row.user_id else None
        problem = None
        if ("email", row.email) in gone or (row.user_id and ("user", row.user_id) in gone):
            problem = "erased person: an import cannot bring them back"
        elif by_email is not None and by_user is None and row.user_id and user_of.get(by_email) is not None:
            problem = f"email belongs to the lead with user_id {user_of[by_email]!r}"
        elif by_email is not None and by_user is not None and by_email != by_user and user_of.get(by_email):
            problem = f"email belongs to the lead with user_id {user_of[by_email]!r}"
        lead = by_user or by_email
        if problem is None and lead is not None and lead in claimed:
            problem = f"same lead as row {claimed[lead]}"
        if problem is not None:
            rejected.append(Rejected(row.row, problem))
            continue
        target = Target(row, lead)
        if lead is not None:
            claimed[lead] = row.row
            if by_email is None:
                target.attach.append(("email", row.email))
            if row.user_id and by_user is None:
                target.attach.append(("user", row.user_id))
                target.set_user = True
        targets.append(target)
    rejected.sort(key=lambda r: r.row)
    return targets, rejected


async def import_contacts(
    session: AsyncSession, parsed: Parsed[ContactRow], *, dry_run: bool, now: datetime, source: str
) -> ImportReport:
    targets, rejected = await plan_contacts(session, parsed)
    report = ImportReport(dry_run, parsed.total, len(targets), rejected)
    report.leads_created = sum(1 for t in targets if t.lead_id is None)
    report.leads_updated = len(targets) - report.leads_created
    report.consent_statements = sum(len(t.row.topics) or 1 for t in targets if t.row.consent)
    if dry_run:
        return report
    new = [t for t in targets if t.lead_id is None]
    primaries = {
        t.row.row: ("user", t.row.user_id) if t.row.user_id else ("anonymous", import_anonymous_id(t.row.email))
        for t in new
    }
    await identities.create_leads(session, primaries.values())
    # Created here or a moment ago by a scoring consumer: either way the lead now exists.
    made = await identities.find_leads(session, primaries.values())
    for t in new:
        t.lead_id = made[primaries[t.row.row]]
        t.attach = [("email", t.row.email)]
    attach = {identity: t.lead_id for t in targets for identity in t.attach if t.lead_id is not None}
    attached = await identities.add_identities(session, attach)
    rows = [
        {
            "lead_id": str(t.lead_id),
            "user_id": t.row.user_id if t.set_user and ("user", t.row.user_id) in attached else None,
            "email": t.row.email,
            "traits": t.row.traits,
            "times": {k: now.isoformat() for k in t.row.traits},
        }
        for t in targets
    ]
    await session.execute(
        text(
            "UPDATE leads l SET user_id = coalesce(l.user_id, d.user_id), email = coalesce(l.email, d.email), "
            "traits = l.traits || d.traits, trait_times = l.trait_times || d.times, updated_at = now() "
            "FROM json_to_recordset(CAST(:rows AS json)) AS d(lead_id uuid, user_id text, email text, "
            "traits jsonb, times jsonb) WHERE l.lead_id = d.lead_id"
        ),
        {"rows": orjson.dumps(rows).decode()},
    )
    changes = [
        StatusChange(t.lead_id, topic, t.row.consent, "import", source, t.row.consent_text, None, at, "import")
        for t in targets
        if t.row.consent and t.lead_id is not None
        for at in (t.row.consent_at or now,)
        for topic in (t.row.topics or (GLOBAL,))
    ]
    report.consent_changed = len(await set_statuses(session, changes))
    return report


async def import_suppressions(
    session: AsyncSession, parsed: Parsed[SuppressionRow], *, dry_run: bool, now: datetime, source: str
) -> ImportReport:
    gone = await erased(session, [("email", r.email) for r in parsed.rows])
    rejected = list(parsed.rejected)
    rows = []
    for row in parsed.rows:
        if ("email", row.email) in gone:
            # The tombstone already stops all mail; keeping the address would undo part of the erasure.
            rejected.append(Rejected(row.row, "erased person: nothing is sent to them already"))
        else:
            rows.append(row)
    rejected.sort(key=lambda r: r.row)
    report = ImportReport(dry_run, parsed.total, len(rows), rejected)
    if not dry_run:
        report.suppressions_written = await suppress(session, [(r.email, r.reason, source, r.at or now) for r in rows])
    return report
