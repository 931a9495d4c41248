"""CSV imports, parsed and checked as plain data: contacts with their consent, and suppression lists.

Rows are numbered as a spreadsheet shows them: the header is row 1, the first contact row 2. A row is
accepted whole or rejected with one reason; the file is refused only when it cannot be read as CSV
or lacks the `email` column.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Literal, TypeVar

from services.nurture.consent.feedback import parse_time
from services.nurture.consent.service import GLOBAL, SUPPRESSION_REASONS, normalize_email

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
MAX_TRAITS = 50
MAX_TRAIT_KEY = 100
MAX_TRAIT_VALUE = 1000
MAX_CONSENT_TEXT = 2000
EMAIL = re.compile(r"^[^@\s<>(),;:\"]{1,64}@[^@\s<>(),;:\"]+\.[^@\s<>(),;:\".]{2,}$")
TOPIC = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,79}$")
CONTACT_COLUMNS = {"email", "user_id", "consent", "consent_text", "consent_at", "topics"}
# Segment's reserved trait names, so imported names match what identify calls send.
TRAIT_NAMES = {"first_name": "firstName", "last_name": "lastName"}


class CsvError(ValueError):
    """The whole file is refused (answered 400)."""


@dataclass(frozen=True)
class Rejected:
    row: int
    reason: str


@dataclass(frozen=True)
class ContactRow:
    row: int
    email: str
    user_id: str | None
    traits: dict[str, str]
    consent: Literal["subscribed", "unsubscribed"] | None
    consent_text: str | None
    consent_at: datetime | None
    topics: tuple[str, ...]  # empty: the consent is for everything


@dataclass(frozen=True)
class SuppressionRow:
    row: int
    email: str
    reason: str
    at: datetime | None


T = TypeVar("T")


@dataclass
class Parsed(Generic[T]):
    rows: list[T] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    total: int = 0


def read_csv(body: bytes) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header (lower-cased, trimmed) and (row number, values) of a UTF-8 CSV with `,`, `;` or tab."""
    if len(body) > MAX_BYTES:
        raise CsvError(f"file exceeds {MAX_BYTES // (1024 * 1024)} MB")
    try:
        content = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvError("file is not UTF-8 text") from None
    first = content.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        if "email" not in header:
            raise CsvError("the header row has no `email` column")
        if len(set(header)) != len(header):
            raise CsvError("the header row names a column twice")
        rows: list[tuple[int, dict[str, str]]] = []
        for number, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue
            if len(rows) >= MAX_ROWS:
                raise CsvError(f"file has more than {MAX_ROWS} rows; split it")
            rows.append((number, {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)}))
    except csv.Error as exc:
        raise CsvError(f"not valid CSV: {exc}") from None
    return header, rows


def email_problem(value: str) -> str | None:
    if not value:
        return "email: missing"
    if len(value) > 320 or not EMAIL.match(value):
        return "email: not an email address"
    return None


def parse_contacts(body: bytes) -> Parsed[ContactRow]:
    """Contact rows: `email` (required), `user_id`, `consent` (subscribed, unsubscribed, none or empty),
    `consent_text` (required with subscribed), `consent_at`, `topics` (`;`, `|` or space separated);
    every other column is a trait (`first_name`, `last_name` become `firstName`, `lastName`)."""
    header, rows = read_csv(body)
    parsed: Parsed[ContactRow] = Parsed(total=len(rows))
    trait_columns = [h for h in header if h and h not in CONTACT_COLUMNS]
    if len(trait_columns) > MAX_TRAITS:
        raise CsvError(f"at most {MAX_TRAITS} trait columns")
    if any(len(h) > MAX_TRAIT_KEY for h in trait_columns):
        raise CsvError(f"column names are at most {MAX_TRAIT_KEY} characters")
    seen_emails: dict[str, int] = {}
    seen_users: dict[str, int] = {}
    for number, values in rows:
        row, problem = _contact(number, values, trait_columns)
        if row is not None and problem is None:
            earlier = seen_emails.get(row.email)
            if earlier is None and row.user_id is not None:
                earlier = seen_users.get(row.user_id)
            problem = f"duplicate of row {earlier}" if earlier is not None else None
        if row is None or problem is not None:
            parsed.rejected.append(Rejected(number, problem or "invalid row"))
            continue
        seen_emails[row.email] = number
        if row.user_id is not None:
            seen_users[row.user_id] = number
        parsed.rows.append(row)
    return parsed


def _contact(number: int, values: dict[str, str], trait_columns: list[str]) -> tuple[ContactRow | None, str | None]:
    email = normalize_email(values.get("email", ""))
    problem = email_problem(email)
    if problem:
        return None, problem
    user_id = values.get("user_id") or None
    if user_id is not None and len(user_id) > 512:
        return None, "user_id: longer than 512 characters"
    consent = values.get("consent", "").lower()
    status: Literal["subscribed", "unsubscribed"] | None = None
    if consent == "subscribed":
        status = "subscribed"
    elif consent == "unsubscribed":
        status = "unsubscribed"
    elif consent not in ("", "none"):
        return None, "consent: must be subscribed, unsubscribed, none or empty"
    consent_text = values.get("consent_text") or None
    if consent_text is not None and len(consent_text) > MAX_CONSENT_TEXT:
        return None, f"consent_text: longer than {MAX_CONSENT_TEXT} characters"
    if status == "subscribed" and consent_text is None:
        return None, "consent_text: required for subscribed (what the person agreed to)"
    consent_at = None
    if values.get("consent_at"):
        consent_at = parse_time(values["consent_at"])
        if consent_at is None:
            return None, "consent_at: not an ISO 8601 time"
    topics = tuple(dict.fromkeys(t for t in re.split(r"[;|\s]+", values.get("topics", "").lower()) if t))
    for topic in topics:
        if topic == GLOBAL or not TOPIC.match(topic):
            return None, f"topics: {topic[:40]!r} is not a topic name (a-z, 0-9, _ . -)"
    if topics and status is None:
        return None, "topics: given without consent"
    traits = {}
    for column in trait_columns:
        value = values.get(column, "")
        if value:
            if len(value) > MAX_TRAIT_VALUE:
                return None, f"{column}: longer than {MAX_TRAIT_VALUE} characters"
            traits[TRAIT_NAMES.get(column, column)] = value
    return ContactRow(number, email, user_id, traits, status, consent_text, consent_at, topics), None


def parse_suppressions(body: bytes) -> Parsed[SuppressionRow]:
    """Suppression rows: `email` (required), `reason` (bounced, complained, unsubscribed, manual; empty:
    manual), `at` (when; empty: the import's time)."""
    _, rows = read_csv(body)
    parsed: Parsed[SuppressionRow] = Parsed(total=len(rows))
    seen: dict[str, int] = {}
    for number, values in rows:
        email = normalize_email(values.get("email", ""))
        reason = values.get("reason", "").lower() or "manual"
        at = parse_time(values["at"]) if values.get("at") else None
        problem = email_problem(email)
        if problem is None and reason not in SUPPRESSION_REASONS:
            problem = f"reason: must be one of {', '.join(SUPPRESSION_REASONS)}"
        if problem is None and values.get("at") and at is None:
            problem = "at: not an ISO 8601 time"
        if problem is None and email in seen:
            problem = f"duplicate of row {seen[email]}"
        if problem is not None:
            parsed.rejected.append(Rejected(number, problem))
            continue
        seen[email] = number
        parsed.rows.append(SuppressionRow(number, email, reason, at))
    return parsed
