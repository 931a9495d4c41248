"""Pure consent decisions: may this email go to this person now, and what consent rows mean together.

The send path asks at the last moment before anything leaves (`repository.can_send`), never only at
enrollment: an unsubscribe must win every race. Rules, in order:

1. Erased people, and people without an email address, get nothing.
2. A bounce or a complaint (on any topic, or a suppression of the address for that reason) stops all
   mail, transactional included: the address is dead or the person called us spam.
3. Transactional mail is allowed otherwise.
4. Marketing needs consent: a suppression of the address stops it; so does a global unsubscribe (unless
   the person subscribed to this very topic since), or an unsubscribe from the topic. A global
   subscription or a subscription to the topic allows it. Without either, only a source configured
   for an opt-out regime allows it. A pending double opt-in counts as no subscription at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

Status = Literal["subscribed", "pending", "unsubscribed", "bounced", "complained"]
Method = Literal["single", "double", "import", "shopify", "api", "link", "feedback", "admin"]
SuppressionReason = Literal["bounced", "complained", "unsubscribed", "manual"]
Kind = Literal["marketing", "transactional"]
IdentityKind = Literal["user", "anonymous", "email"]

STATUSES: tuple[str, ...] = get_args(Status)
METHODS: tuple[str, ...] = get_args(Method)
SUPPRESSION_REASONS: tuple[str, ...] = get_args(SuppressionReason)
GLOBAL = "*"  # the topic of a global subscription row
DEAD = ("bounced", "complained")  # statuses after which nothing at all is sent


@dataclass(frozen=True)
class Consent:
    """One subscription row: the status for everything (topic `*`) or one topic, and how it came to be."""

    status: Status
    at: datetime
    method: Method | None = None
    source: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class ConsentState:
    """Everything the decision needs about one person and one address."""

    everything: Consent | None = None
    topics: Mapping[str, Consent] = field(default_factory=dict)
    suppression: SuppressionReason | None = None  # the address is on the suppression list for this reason
    erased: bool = False


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def may_send(
    state: ConsentState | None, *, kind: Kind, topic: str | None, opt_out_regime: bool, has_email: bool
) -> Decision:
    """Whether an email of `kind` (about `topic`) may go out now; `reason` is a short code for logs and APIs."""
    state = state or ConsentState()
    if state.erased:
        return Decision(False, "erased")
    if not has_email:
        return Decision(False, "no-email")
    dead = _dead_reason(state)
    if dead is not None:
        return Decision(False, dead)
    if kind == "transactional":
        return Decision(True, "transactional")
    if state.suppression is not None:
        return Decision(False, "suppressed")
    everything = _effective(state.everything)
    on_topic = _effective(state.topics.get(topic)) if topic is not None and topic != GLOBAL else None
    if on_topic is not None and on_topic.status == "unsubscribed":
        return Decision(False, "topic-unsubscribed")
    if everything is not None and everything.status == "unsubscribed":
        # A subscription to this topic given after leaving everything (or with it) is the newer wish.
        if on_topic is not None and on_topic.status == "subscribed" and on_topic.at >= everything.at:
            return Decision(True, "topic-subscribed")
        return Decision(False, "unsubscribed")
    if on_topic is not None and on_topic.status == "subscribed":
        return Decision(True, "topic-subscribed")
    if everything is not None and everything.status == "subscribed":
        return Decision(True, "subscribed")
    if opt_out_regime:
        return Decision(True, "opt-out-regime")
    return Decision(False, "no-consent")


def _dead_reason(state: ConsentState) -> str | None:
    statuses: set[str] = {c.status for c in (state.everything, *state.topics.values()) if c is not None}
    if state.suppression is not None:
        statuses.add(state.suppression)
    for status in DEAD:
        if status in statuses:
            return status
    return None


def _effective(consent: Consent | None) -> Consent | None:
    """A pending double opt-in is no subscription yet: the same as no row."""
    return None if consent is None or consent.status == "pending" else consent


def fold_rows(rows: Iterable[tuple[str, Consent]]) -> tuple[Consent | None, dict[str, Consent]]:
    """(global, per topic) from rows of one person that may sit on several leads (merged ones keep
    theirs): per topic the latest change wins; at the same time the stricter status wins."""
    latest: dict[str, Consent] = {}
    for topic, consent in rows:
        current = latest.get(topic)
        if current is None or (consent.at, _strictness(consent.status)) > (current.at, _strictness(current.status)):
            latest[topic] = consent
    everything = latest.pop(GLOBAL, None)
    return everything, latest


def _strictness(status: str) -> int:
    return ("subscribed", "pending", "unsubscribed", "bounced", "complained").index(status)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def normalize_identity(kind: str, value: str) -> str:
    return normalize_email(value) if kind == "email" else value


def identity_hash(kind: str, value: str) -> str:
    """What an erasure tombstone keeps of an identity: sha256 of `kind:value` (emails lower-cased)."""
    return hashlib.sha256(f"{kind}:{normalize_identity(kind, value)}".encode()).hexdigest()


def email_digest(email: str) -> str:
    """A short, stable fingerprint of an address for signed links: binds a link to it without showing it."""
    return hashlib.sha256(normalize_email(email).encode()).hexdigest()[:32]


def masked(email: str) -> str:
    """`a***@example.com`: enough for a person to recognise their address on a public page."""
    local, at, domain = normalize_email(email).partition("@")
    return f"{local[:1]}***{at}{domain}" if at else "***"
