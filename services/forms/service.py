"""Pure decisions of lead capture: field validation, the signed time token, links, and the events.

No I/O and no clock: every function gets `now`. Tokens are signed with FUNNELSTREAM_SECRET_KEY through
shared/tokens.py, one salt per purpose, so a form token is never a confirmation link and vice versa.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.forms.schemas import TRAITS, UTM_FIELDS, FieldDef, FormDefinition
from services.nurture.consent.imports import email_problem
from services.nurture.consent.service import email_digest, normalize_email
from services.nurture.delivery.message import check_address
from shared.events import TrackedEvent, derived_id
from shared.tokens import InvalidToken, load_signed, sign

FORM_SALT = "funnelstream.form.v1"
CONFIRM_SALT = "funnelstream.form-confirm.v1"
FILE_SALT = "funnelstream.form-file.v1"
# Events of forms without a source of their own come from this fixed source id.
FORMS_SOURCE_ID = uuid.UUID("0c4b6a52-2b1e-5d38-9f7e-666f726d7300")
MAX_UTM = 256
ANONYMOUS_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
PHONE = re.compile(r"^[0-9+() ./-]{4,40}$")
CHECKED = frozenset({"on", "yes", "true", "1"})


class Refused(Exception):
    """A submission refused as a whole (not a field error): status, message and the input it is about."""

    def __init__(self, status: int, error: str, field: str | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.field = status, error, field


@dataclass(frozen=True)
class FormToken:
    nonce: str
    issued_at: datetime


def make_form_token(secret_key: str, form_id: uuid.UUID, now: datetime) -> str:
    """The hidden token of a rendered form: which form, when it was shown, and a one-use nonce."""
    return sign(secret_key, FORM_SALT, {"f": form_id.hex, "t": round(now.timestamp(), 3), "n": secrets.token_hex(16)})


def check_form_token(
    secret_key: str, token: str, form_id: uuid.UUID, now: datetime, min_seconds: float, max_seconds: float
) -> FormToken:
    """The token's nonce and time if it was made for this form between `max_seconds` and `min_seconds` ago;
    Refused otherwise (a bot posting at once, an old page, another form's token). Replays: see the nonce."""
    try:
        data = load_signed(secret_key, FORM_SALT, token[:1000])
        issued = datetime.fromtimestamp(float(data["t"]), UTC)
        nonce, form = str(data["n"]), str(data["f"])
    except (InvalidToken, KeyError, TypeError, ValueError, OverflowError):
        raise Refused(
            400, "the form token is missing or invalid: reload the page and submit again", "fs_token"
        ) from None
    if form != form_id.hex:
        raise Refused(400, "the form token belongs to another form", "fs_token")
    age = (now - issued).total_seconds()
    if age < min_seconds:
        raise Refused(400, "submitted too fast after the form was shown: take a moment and submit again", "fs_token")
    if age > max_seconds:
        raise Refused(400, "the form has expired: reload the page and submit again", "fs_token")
    return FormToken(nonce, issued)


def validate(definition: FormDefinition, raw: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(values, errors by field name) for a submitted form; `consent` must be ticked."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for field in definition.fields:
        value = str(raw.get(field.name, "")).strip()
        if field.type == "hidden" and not value:
            value = field.value
        values[field.name] = value
        problem = field_problem(field, value)
        if problem:
            errors[field.name] = problem
    if str(raw.get("consent", "")).strip().lower() not in CHECKED:
        errors["consent"] = "Please tick the box to agree."
    return values, errors


def field_problem(field: FieldDef, value: str) -> str | None:
    """What is wrong with one value, in words for the person filling the form; None if nothing."""
    if field.type == "checkbox":
        checked = value.lower() in CHECKED
        return "Please tick this box." if field.required and not checked else None
    if not value:
        return "This field is required." if field.required else None
    if len(value) > field.max_length:
        return f"At most {field.max_length} characters."
    if field.type == "email":
        try:
            if email_problem(value):
                raise ValueError(value)
            check_address(value)
        except ValueError:
            return "Please enter a valid email address."
    if field.type == "phone" and not PHONE.match(value):
        return "Please enter a valid phone number."
    if field.choices is not None and value not in field.choices:
        return "Please choose one of the options."
    if field.pattern is not None and not re.fullmatch(field.pattern, value):
        return "Please match the requested format."
    return None


def utm_of(raw: Mapping[str, str]) -> dict[str, str]:
    """The utm_* hidden inputs the page or script filled from the visitor's URL."""
    return {name: str(raw[name]).strip()[:MAX_UTM] for name in UTM_FIELDS if str(raw.get(name, "")).strip()}


def email_field(definition: FormDefinition) -> str:
    return next(f.name for f in definition.fields if f.type == "email")


def anonymous_id_for(given: str | None, email: str) -> str:
    """The visitor's anonymous id (the tracker's cookie) when it looks like one, else one derived from the
    address, so the submission still names a lead and the same person always gets the same id."""
    if given and ANONYMOUS_ID.match(given):
        return given
    return "form-" + email_digest(email)


def traits_of(definition: FormDefinition, values: Mapping[str, str]) -> dict[str, Any]:
    """Standard fields as Segment traits (email, firstName, title…), other fields under their name."""
    traits: dict[str, Any] = {}
    for field in definition.fields:
        value = values.get(field.name, "")
        if not value:
            continue
        if field.type == "email":
            value = normalize_email(value)
        traits[TRAITS.get(field.type, field.name)] = value
    return traits


@dataclass(frozen=True)
class Submitted:
    """What the events of one accepted submission say."""

    submission_id: uuid.UUID
    form_id: uuid.UUID
    form_name: str
    form_version: int
    source_id: uuid.UUID
    anonymous_id: str
    traits: dict[str, Any]
    utm: dict[str, str]
    ip: str | None
    user_agent: str | None
    page_url: str | None


def submission_events(s: Submitted, now: datetime) -> list[TrackedEvent]:
    """identify (the traits) then track "Form Submitted", keyed by the visitor's anonymous id so they follow
    the visitor's earlier events in order; the email in the traits makes the lead known (visitor → lead)."""
    campaign = {("name" if k == "utm_campaign" else k.removeprefix("utm_")): v for k, v in s.utm.items()}
    context: dict[str, Any] = {"library": {"name": "fs-forms", "version": "1"}, "campaign": campaign}
    if s.ip:
        context["ip"] = s.ip
    if s.user_agent:
        context["userAgent"] = s.user_agent[:2048]
    if s.page_url:
        context["page"] = {"url": s.page_url[:2048]}
    properties: dict[str, Any] = {"form_id": str(s.form_id), "form_name": s.form_name, "form_version": s.form_version}
    properties |= s.utm
    events = []
    for kind, name, extra in (("identify", None, {"traits": s.traits}), ("track", "Form Submitted", {})):
        message_id = f"form-{s.submission_id}-{kind}"
        events.append(
            TrackedEvent(
                event_id=derived_id(s.source_id, message_id), source_id=s.source_id, message_id=message_id,
                type=kind, event=name, anonymous_id=s.anonymous_id,
                properties=properties if kind == "track" else {}, context=context, timestamp=now, received_at=now,
                **extra,
            )
        )  # fmt: skip
    return events


def confirmed_event(
    source_id: uuid.UUID, submission_id: uuid.UUID, form_id: uuid.UUID, anonymous_id: str, email: str, at: datetime
) -> TrackedEvent:
    """track "Form Confirmed": its id derives from the submission, so a repeated click counts once."""
    message_id = f"form-{submission_id}-confirmed"
    return TrackedEvent(
        event_id=derived_id(source_id, message_id),
        source_id=source_id,
        message_id=message_id,
        type="track",
        event="Form Confirmed",
        anonymous_id=anonymous_id,
        properties={"form_id": str(form_id), "submission_id": str(submission_id)},
        context={"library": {"name": "fs-forms", "version": "1"}, "traits": {"email": normalize_email(email)}},
        timestamp=at,
        received_at=at,
    )


def make_confirm_token(secret_key: str, submission_id: uuid.UUID) -> str:
    return sign(secret_key, CONFIRM_SALT, {"s": submission_id.hex, "n": secrets.token_urlsafe(9)})


def read_confirm_token(secret_key: str, token: str) -> uuid.UUID:
    """The submission a confirmation link is for; InvalidToken if it was not made here or was altered."""
    return _submission_of(load_signed(secret_key, CONFIRM_SALT, token[:1000]))


def make_file_token(secret_key: str, submission_id: uuid.UUID) -> str:
    return sign(secret_key, FILE_SALT, {"s": submission_id.hex, "n": secrets.token_urlsafe(9)})


def read_file_token(secret_key: str, token: str) -> uuid.UUID:
    return _submission_of(load_signed(secret_key, FILE_SALT, token[:1000]))


def _submission_of(data: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(hex=str(data["s"]))
    except (KeyError, ValueError):
        raise InvalidToken("token names no submission") from None
