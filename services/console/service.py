"""Accounts, pure: roles and what each may do, passwords (argon2id), random tokens, invite links, redaction."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.tokens import InvalidToken, load_signed, sign

Role = Literal["admin", "marketer", "sales", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "marketer", "sales", "viewer")
Via = Literal["admin_token", "api_token", "session"]
INVITE_SALT = "funnelstream.console-invite.v1"
FORM_SALT = "funnelstream.console-form.v1"
MIN_PASSWORD = 10
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# POSTs that only compute an answer from what they are given: a viewer may call them, nothing is audited.
READ_ONLY_POST = re.compile(r"^/api/(templates(/[^/]+)?/(validate|preview)|sequences/[^/]+/dry-run|scoring/dry-run)$")
SALES_DECISION = re.compile(r"^/api/leads/[^/]+/stage$")
USER_ADMIN = re.compile(r"^/api/(users|invites)(/.*)?$")
# A dev-mailbox message may be an invitation, whose link makes an account with the invited role.
RAW_MAIL = re.compile(r"^/api/mailbox/[^/]+$")
OWN_TOKENS = re.compile(r"^/api/me/tokens(/[^/]+/revoke)?$")
SECRET_KEY = re.compile(r"(password|token|secret|private_key|write_key|accept_url|api_key)", re.IGNORECASE)
REDACTED = "[redacted]"

_hasher = PasswordHasher()  # argon2id with the library's current RFC 9106 low-memory profile


@dataclass(frozen=True)
class Actor:
    """Who makes a request: a user (by session or API token) or the bootstrap admin token."""

    label: str  # the user's email, or "admin token"
    role: Role
    via: Via
    user_id: uuid.UUID | None = None
    csrf_token: str | None = None  # set for sessions


ADMIN_TOKEN_ACTOR = Actor("admin token", "admin", "admin_token")


def is_change(method: str, path: str) -> bool:
    """Whether a request to the admin API changes something (and so is checked by role and audited)."""
    return method.upper() not in SAFE_METHODS and not READ_ONLY_POST.match(path)


def refusal(role: Role, method: str, path: str) -> str | None:
    """None when `role` may make this admin API request, else why not (for the 403 answer)."""
    if USER_ADMIN.match(path) and role != "admin":
        return "only an admin manages users and invites"
    if RAW_MAIL.match(path) and role != "admin":
        return "only an admin reads whole messages of the dev mailbox (they may hold invitation links)"
    if not is_change(method, path) or role == "admin":
        return None
    if role == "marketer":
        return None
    if role == "sales" and method.upper() == "POST" and (SALES_DECISION.match(path) or OWN_TOKENS.match(path)):
        return None
    if role == "sales":
        return "the sales role may read, and accept or reject leads, nothing else"
    return f"the {role} role may only read"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches the stored argon2 hash; False for accounts without a password."""
    if not stored:
        _hasher.hash(password)  # same work either way: no timing hint that the account has no password
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password(password: str) -> str | None:
    """Why a new password is not acceptable, or None."""
    if len(password) < MIN_PASSWORD:
        return f"the password needs at least {MIN_PASSWORD} characters"
    if len(password) > 1000:
        return "the password is too long"
    return None


def new_secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """SHA-256 of a random 256-bit token: enough to store it, nothing to brute-force."""
    return hashlib.sha256(token.encode()).hexdigest()


def normal_email(email: str) -> str:
    return email.strip().lower()


def invite_token(secret_key: str, invite_id: uuid.UUID, expires_at: datetime) -> str:
    """The signed token of an invite link; the invite row makes it single-use."""
    return sign(secret_key, INVITE_SALT, {"i": invite_id.hex, "x": int(expires_at.timestamp())})


def read_invite_token(secret_key: str, token: str, now: datetime) -> uuid.UUID:
    """The invite id of an unaltered, unexpired token; InvalidToken otherwise."""
    data = load_signed(secret_key, INVITE_SALT, token)
    try:
        invite_id, expires = uuid.UUID(hex=str(data["i"])), int(data["x"])
    except (KeyError, TypeError, ValueError):
        raise InvalidToken("invite token payload is incomplete") from None
    if now.timestamp() >= expires:
        raise InvalidToken("the invite link has expired")
    return invite_id


def form_token(secret_key: str, pre_session: str) -> str:
    """CSRF token of the forms shown before sign-in (sign-in, accept invite), bound to a cookie."""
    return digest(f"{FORM_SALT}:{secret_key}:{pre_session}")


def invite_expiry(now: datetime, hours: float) -> datetime:
    return now + timedelta(hours=hours)


def redact(value: Any, depth: int = 0) -> Any:
    """`value` with the values of secret-looking keys replaced, for the audit log."""
    if depth > 20:
        return "…"
    if isinstance(value, dict):
        return {
            k: REDACTED if SECRET_KEY.search(str(k)) and v is not None else redact(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v, depth + 1) for v in value]
    return value
