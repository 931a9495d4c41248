"""Signed unsubscribe and preference links: ids only, unguessable, unforgeable, one purpose each."""

from __future__ import annotations

import base64
import uuid
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.nurture.consent.links import (
    preferences_url,
    read_preferences_token,
    read_unsubscribe_token,
    unsubscribe_url,
)
from services.nurture.consent.service import email_digest
from shared.tokens import InvalidToken

KEY = "k" * 32
LEAD = uuid.UUID("6f1c2a3b-0000-4000-8000-000000000001")


def token_of(url: str) -> str:
    return unquote(url.rpartition("/")[2])


def test_an_unsubscribe_link_names_the_lead_the_address_fingerprint_and_the_topic() -> None:
    url = unsubscribe_url("https://collect.example.com/", KEY, LEAD, "Ann@Example.com", "news")
    assert url.startswith("https://collect.example.com/u/")
    link = read_unsubscribe_token(KEY, token_of(url))
    assert (link.lead_id, link.topic) == (LEAD, "news")
    assert link.email_digest == email_digest("ann@example.com")


def test_links_never_carry_the_address() -> None:
    url = unsubscribe_url("https://c.example", KEY, LEAD, "ann@example.com")
    payload = token_of(url).split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert b"ann" not in decoded and b"@" not in decoded and b"example" not in decoded


def test_the_same_link_twice_differs_so_tokens_cannot_be_enumerated() -> None:
    assert unsubscribe_url("https://c", KEY, LEAD, "a@b.co") != unsubscribe_url("https://c", KEY, LEAD, "a@b.co")


def test_an_unsubscribe_token_is_not_a_preference_token_and_back() -> None:
    unsub = token_of(unsubscribe_url("https://c", KEY, LEAD, "a@b.co"))
    prefs = token_of(preferences_url("https://c", KEY, LEAD, "a@b.co"))
    assert read_preferences_token(KEY, prefs).lead_id == LEAD
    with pytest.raises(InvalidToken):
        read_preferences_token(KEY, unsub)
    with pytest.raises(InvalidToken):
        read_unsubscribe_token(KEY, prefs)


def test_another_key_is_refused() -> None:
    token = token_of(unsubscribe_url("https://c", KEY, LEAD, "a@b.co"))
    with pytest.raises(InvalidToken):
        read_unsubscribe_token("other-key-" * 4, token)


@given(
    st.integers(min_value=0, max_value=10_000),
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
)
def test_any_altered_character_is_refused(position: int, replacement: str) -> None:
    token = token_of(unsubscribe_url("https://c", KEY, LEAD, "a@b.co", "news"))
    index = position % len(token)
    if token[index] == replacement:
        return
    altered = token[:index] + replacement + token[index + 1 :]
    with pytest.raises(InvalidToken):
        read_unsubscribe_token(KEY, altered)


def test_topics_are_checked() -> None:
    with pytest.raises(ValueError, match="topic"):
        unsubscribe_url("https://c", KEY, LEAD, "a@b.co", "*")
    with pytest.raises(ValueError, match="email"):
        unsubscribe_url("https://c", KEY, LEAD, "not-an-address")
