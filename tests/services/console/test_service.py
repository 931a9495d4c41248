"""Accounts, pure: what each role may do, passwords, invite links, redaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.console.screens_auth import safe_next
from services.console.service import (
    hash_password,
    invite_token,
    is_change,
    read_invite_token,
    redact,
    refusal,
    verify_password,
)
from shared.tokens import InvalidToken

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("role", "method", "path", "allowed"),
    [
        ("viewer", "GET", "/api/sources", True),
        ("viewer", "HEAD", "/api/leads", True),
        ("viewer", "POST", "/api/templates/validate", True),
        ("viewer", "POST", "/api/templates/abc/preview", True),
        ("viewer", "POST", "/api/sources", False),
        ("viewer", "POST", "/api/leads/u1/stage", False),
        ("viewer", "POST", "/api/me/tokens", False),
        ("viewer", "DELETE", "/api/leads/u1", False),
        ("viewer", "GET", "/api/users", False),
        ("sales", "POST", "/api/leads/u1/stage", True),
        ("sales", "POST", "/api/me/tokens", True),
        ("sales", "PUT", "/api/templates/abc", False),
        ("sales", "POST", "/api/sequences/abc/activate", False),
        ("marketer", "POST", "/api/sequences/abc/activate", True),
        ("marketer", "PUT", "/api/scoring/rule-sets", True),
        ("marketer", "POST", "/api/leads/u1/stage", True),
        ("marketer", "POST", "/api/invites", False),
        ("marketer", "PATCH", "/api/users/abc", False),
        ("marketer", "GET", "/api/users", False),
        ("marketer", "GET", "/api/mailbox", True),
        ("marketer", "GET", "/api/mailbox/1-invite.eml", False),
        ("admin", "GET", "/api/mailbox/1-invite.eml", True),
        ("admin", "POST", "/api/invites", True),
        ("admin", "DELETE", "/api/leads/u1", True),
    ],
)
def test_what_each_role_may_do(role: str, method: str, path: str, allowed: bool) -> None:
    assert (refusal(role, method, path) is None) is allowed  # type: ignore[arg-type]


def test_reads_and_previews_are_not_changes() -> None:
    assert not is_change("GET", "/api/sources")
    assert not is_change("POST", "/api/sequences/x/dry-run")
    assert is_change("POST", "/api/sequences/x/activate")
    assert is_change("POST", "/api/templates")


def test_password_is_stored_as_argon2id_and_verified() -> None:
    stored = hash_password("a long passphrase")
    assert stored.startswith("$argon2id$") and "a long passphrase" not in stored
    assert verify_password(stored, "a long passphrase")
    assert not verify_password(stored, "a long passphrasE")
    assert not verify_password(None, "anything at all")
    assert not verify_password("not a hash", "anything at all")


def test_invite_link_is_signed_and_expires() -> None:
    invite_id = uuid.uuid4()
    token = invite_token("k", invite_id, NOW + timedelta(hours=1))
    assert read_invite_token("k", token, NOW) == invite_id
    with pytest.raises(InvalidToken, match="expired"):
        read_invite_token("k", token, NOW + timedelta(hours=1))
    with pytest.raises(InvalidToken):
        read_invite_token("other key", token, NOW)
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(InvalidToken):
        read_invite_token("k", altered, NOW)


def test_secrets_are_redacted_at_any_depth() -> None:
    value = {
        "name": "web",
        "write_key": "wk_x",
        "nested": [{"password": "p", "smtp_password": None, "ok": 1}],
        "dkim_private_key": "PEM",
        "token": "fst_x",
    }
    assert redact(value) == {
        "name": "web",
        "write_key": "[redacted]",
        "nested": [{"password": "[redacted]", "smtp_password": None, "ok": 1}],
        "dkim_private_key": "[redacted]",
        "token": "[redacted]",
    }


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/console/leads?stage=mql", "/console/leads?stage=mql"),
        ("/dashboard", "/dashboard"),
        ("//evil.example/console", "/console"),
        ("https://evil.example/console", "/console"),
        ("/console//evil.example", "/console"),
        ("/console\\\\evil.example", "/console"),
        (None, "/console"),
    ],
)
def test_after_sign_in_only_the_console_or_the_dashboard(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
