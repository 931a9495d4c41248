"""Bounce and complaint feedback from mail providers, as plain data: pure parsing, no I/O.

Each provider's payload becomes `Feedback` items with a dedup key from the provider's own event id, so a
redelivered webhook has no second effect. What each means (applied by `effects.apply_feedback`):
hard bounce → the address is suppressed and the lead `bounced` (no mail at all); soft bounce → recorded
only; complaint → suppressed, the lead `complained` and unsubscribed; unsubscribe → the lead unsubscribed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any, Literal

FeedbackKind = Literal["bounce", "complaint", "unsubscribe"]
BounceType = Literal["hard", "soft"]
MAX_ITEMS = 1000
MAX_DETAIL = 500


class FeedbackError(ValueError):
    """The payload is not what the provider sends; the message names what is wrong (answered 400)."""


@dataclass(frozen=True)
class Feedback:
    provider: str
    dedup_key: str
    email: str
    kind: FeedbackKind
    at: datetime
    bounce_type: BounceType | None = None
    message_id: str | None = None
    detail: str | None = None


def address(value: Any) -> str | None:
    """A plain lower-cased address from `x@y` or `Name <x@y>`, or None."""
    if not isinstance(value, str) or len(value) > 512:
        return None
    found = parseaddr(value)[1].strip().lower()
    return found if "@" in found and " " not in found else None


def parse_time(value: Any) -> datetime | None:
    """An aware datetime from ISO 8601 text (any precision, `Z` allowed) or unix seconds, else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # .NET sends 7 fractional digits; Python takes at most 6
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def when(value: Any, default: datetime) -> datetime:
    return parse_time(value) or default


def _detail(*parts: Any) -> str | None:
    text = "; ".join(str(p) for p in parts if p not in (None, ""))
    return text[:MAX_DETAIL] or None


def _digest(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:40]


# -- ours -----------------------------------------------------------------------------------------------


def funnelstream_feedback(data: Any, body_digest: str, now: datetime) -> list[Feedback]:
    """Our format: one object or a list of `{email, type: bounce|complaint, bounce_type: hard|soft,
    message_id?, at?}`. Without a message id the dedup key comes from the signed body."""
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > MAX_ITEMS:
        raise FeedbackError(f"give 1 to {MAX_ITEMS} feedback objects")
    out = []
    for index, item in enumerate(items):
        where = f"{index}." if isinstance(data, list) else ""
        if not isinstance(item, dict):
            raise FeedbackError(f"{where}: must be a JSON object")
        email = address(item.get("email"))
        if email is None:
            raise FeedbackError(f"{where}email: must be an email address")
        kind = item.get("type")
        if kind not in ("bounce", "complaint"):
            raise FeedbackError(f"{where}type: must be bounce or complaint")
        bounce_type = item.get("bounce_type", "hard" if kind == "bounce" else None)
        if kind == "bounce" and bounce_type not in ("hard", "soft"):
            raise FeedbackError(f"{where}bounce_type: must be hard or soft")
        message_id = item.get("message_id")
        if message_id is not None and (not isinstance(message_id, str) or len(message_id) > 512):
            raise FeedbackError(f"{where}message_id: must be a string of at most 512 characters")
        at = item.get("at")
        if at is not None and parse_time(at) is None:
            raise FeedbackError(f"{where}at: must be an ISO 8601 time")
        key = f"{message_id}:{email}:{kind}" if message_id else f"{body_digest}:{index}"
        out.append(
            Feedback(
                provider="funnelstream",
                dedup_key="funnelstream:" + _digest(key),
                email=email,
                kind=kind,
                at=when(at, now),
                bounce_type=bounce_type if kind == "bounce" else None,
                message_id=message_id,
            )
        )
    return out


# -- Amazon SES through SNS -----------------------------------------------------------------------------


def ses_feedback(message: dict[str, Any], now: datetime) -> list[Feedback]:
    """The SES notification inside an SNS `Notification` (notification or event publishing format)."""
    kind = message.get("notificationType") or message.get("eventType")
    mail = message.get("mail")
    message_id = mail.get("messageId") if isinstance(mail, dict) else None
    message_id = message_id if isinstance(message_id, str) else None
    if kind == "Bounce":
        bounce = message.get("bounce")
        if not isinstance(bounce, dict):
            raise FeedbackError("bounce: missing")
        hard = bounce.get("bounceType") == "Permanent"  # Transient and Undetermined may recover
        recipients = bounce.get("bouncedRecipients")
        event_id = bounce.get("feedbackId") or message_id
        at = when(bounce.get("timestamp"), now)
        detail = _detail(bounce.get("bounceType"), bounce.get("bounceSubType"))
        bounce_type: BounceType = "hard" if hard else "soft"
        return [
            Feedback(
                "ses",
                "ses:" + _digest(event_id, email),
                email,
                "bounce",
                at,
                bounce_type,
                message_id,
                _detail(detail, r.get("diagnosticCode")),
            )
            for r, email in _recipients(recipients)
        ]
    if kind == "Complaint":
        complaint = message.get("complaint")
        if not isinstance(complaint, dict):
            raise FeedbackError("complaint: missing")
        event_id = complaint.get("feedbackId") or message_id
        at = when(complaint.get("timestamp"), now)
        detail = _detail(complaint.get("complaintFeedbackType"), complaint.get("complaintSubType"))
        return [
            Feedback("ses", "ses:" + _digest(event_id, email), email, "complaint", at, None, message_id, detail)
            for _, email in _recipients(complaint.get("complainedRecipients"))
        ]
    return []  # deliveries, opens and the rest: nothing for consent


def _recipients(value: Any) -> list[tuple[dict[str, Any], str]]:
    if not isinstance(value, list):
        raise FeedbackError("recipients: must be a list")
    out = []
    for item in value[:MAX_ITEMS]:
        email = address(item.get("emailAddress")) if isinstance(item, dict) else None
        if email is not None:
            out.append((item, email))
    return out


# -- SendGrid Event Webhook ------------------------------------------------------------------------------

SENDGRID_DROPPED: dict[str, tuple[FeedbackKind, BounceType | None]] = {
    "Bounced Address": ("bounce", "hard"),
    "Invalid": ("bounce", "hard"),
    "Spam Reporting Address": ("complaint", None),
    "Unsubscribed Address": ("unsubscribe", None),
}


def sendgrid_feedback(data: Any, now: datetime) -> list[Feedback]:
    """SendGrid's event array: bounce (type `blocked` is soft), dropped (by its reason), spamreport,
    unsubscribe and group_unsubscribe (both leave everything: the stricter reading); others ignored."""
    if not isinstance(data, list) or len(data) > MAX_ITEMS:
        raise FeedbackError(f"body must be a JSON array of at most {MAX_ITEMS} events")
    out = []
    for item in data:
        if not isinstance(item, dict):
            raise FeedbackError("every event must be a JSON object")
        email = address(item.get("email"))
        event = item.get("event")
        mapped: tuple[FeedbackKind, BounceType | None] | None = None
        if event == "bounce":
            mapped = ("bounce", "soft" if item.get("type") == "blocked" else "hard")
        elif event == "dropped":
            mapped = SENDGRID_DROPPED.get(str(item.get("reason")))
        elif event == "spamreport":
            mapped = ("complaint", None)
        elif event in ("unsubscribe", "group_unsubscribe"):
            mapped = ("unsubscribe", None)
        if mapped is None or email is None:
            continue
        event_id = item.get("sg_event_id") or _digest(item.get("sg_message_id"), email, event, item.get("timestamp"))
        message_id = item.get("sg_message_id") if isinstance(item.get("sg_message_id"), str) else None
        kind, bounce_type = mapped
        out.append(
            Feedback(
                "sendgrid",
                f"sendgrid:{str(event_id)[:150]}",
                email,
                kind,
                when(item.get("timestamp"), now),
                bounce_type,
                message_id,
                _detail(event, item.get("type"), item.get("reason"), item.get("status")),
            )
        )
    return out


# -- Postmark ---------------------------------------------------------------------------------------------

POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
POSTMARK_SUPPRESSION: dict[str, tuple[FeedbackKind, BounceType | None]] = {
    "HardBounce": ("bounce", "hard"),
    "SpamComplaint": ("complaint", None),
}


def postmark_feedback(data: Any, now: datetime) -> list[Feedback]:
    """Postmark's Bounce, SpamComplaint and SubscriptionChange webhooks (one record per request)."""
    if not isinstance(data, dict):
        raise FeedbackError("body must be a JSON object")
    record = data.get("RecordType")
    message_id = data.get("MessageID") if isinstance(data.get("MessageID"), str) else None
    if record in ("Bounce", "SpamComplaint"):
        email = address(data.get("Email"))
        if email is None:
            raise FeedbackError("Email: must be an email address")
        bounce_kind = data.get("Type")
        at = when(data.get("BouncedAt"), now)
        key = f"postmark:{record}:{data.get('ID') or _digest(message_id, email, bounce_kind)}"
        detail = _detail(bounce_kind, data.get("Description"))
        if record == "SpamComplaint" or bounce_kind == "SpamComplaint":
            return [Feedback("postmark", key, email, "complaint", at, None, message_id, detail)]
        if bounce_kind == "Unsubscribe":
            return [Feedback("postmark", key, email, "unsubscribe", at, None, message_id, detail)]
        bounce_type: BounceType = "hard" if bounce_kind in POSTMARK_HARD else "soft"
        return [Feedback("postmark", key, email, "bounce", at, bounce_type, message_id, detail)]
    if record == "SubscriptionChange":
        email = address(data.get("Recipient"))
        if email is None:
            raise FeedbackError("Recipient: must be an email address")
        if not data.get("SuppressSending"):
            return []  # a reactivation in Postmark does not subscribe anyone here
        reason = str(data.get("SuppressionReason"))
        kind, suppressed_type = POSTMARK_SUPPRESSION.get(reason, ("unsubscribe", None))
        at = when(data.get("ChangedAt"), now)
        key = "postmark:SubscriptionChange:" + _digest(email, reason, data.get("ChangedAt"), message_id)
        return [Feedback("postmark", key, email, kind, at, suppressed_type, message_id, reason)]
    return []
