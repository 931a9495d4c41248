"""Signed email tokens: they round-trip, any altered character or another purpose or key is refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.tokens import (
    EMAIL_SOURCE_ID,
    InvalidToken,
    make_click_token,
    make_open_token,
    read_click_token,
    read_open_token,
)

KEY = "test-secret"
SENT = datetime(2025, 3, 30, 1, 59, 58, tzinfo=UTC)
ids = st.text(min_size=1, max_size=80)
# hypothesis takes naive bounds and attaches the time zone itself.
EARLIEST, LATEST = datetime(2000, 1, 1), datetime(2100, 1, 1)  # noqa: DTZ001
times = st.datetimes(EARLIEST, LATEST, timezones=st.just(UTC)).map(lambda t: t.replace(microsecond=0))
urls = st.builds(
    "{}://{}/{}".format,
    st.sampled_from(["http", "https"]),
    st.from_regex(r"[a-z0-9]{1,20}(\.[a-z]{2,6}){1,2}", fullmatch=True),
    st.text(max_size=200),
)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."


@given(message_id=ids, user_id=ids, anonymous_id=st.none() | ids, sent_at=times, url=urls)
def test_click_token_round_trips(
    message_id: str, user_id: str, anonymous_id: str | None, sent_at: datetime, url: str
) -> None:
    token = make_click_token(
        KEY, url=url, message_id=message_id, sent_at=sent_at, user_id=user_id, anonymous_id=anonymous_id
    )
    read = read_click_token(KEY, token)
    assert (read.url, read.message_id, read.sent_at) == (url, message_id, sent_at)
    assert (read.user_id, read.anonymous_id, read.source_id) == (user_id, anonymous_id, EMAIL_SOURCE_ID)


@given(message_id=ids, anonymous_id=ids, sent_at=times, source_id=st.uuids())
def test_open_token_round_trips(message_id: str, anonymous_id: str, sent_at: datetime, source_id: uuid.UUID) -> None:
    token = make_open_token(KEY, message_id=message_id, sent_at=sent_at, anonymous_id=anonymous_id, source_id=source_id)
    read = read_open_token(KEY, token)
    assert (read.message_id, read.sent_at, read.anonymous_id, read.user_id) == (message_id, sent_at, anonymous_id, None)
    assert read.source_id == source_id


@given(data=st.data(), url=urls, purpose=st.sampled_from(["open", "click"]))
def test_any_single_changed_character_is_rejected(data: st.DataObject, url: str, purpose: str) -> None:
    if purpose == "open":
        token, read = make_open_token(KEY, message_id="m1", sent_at=SENT, user_id="u1"), read_open_token
    else:
        token = make_click_token(KEY, url=url, message_id="m1", sent_at=SENT, user_id="u1")
        read = read_click_token
    # Tokens carry a random nonce, so their length varies between runs: draw positions independently
    # of the token, or hypothesis sees a different amount of data drawn when it replays an example.
    index = data.draw(st.integers(0, 10**6), label="index") % len(token)
    shift = data.draw(st.integers(1, len(ALPHABET) - 1), label="shift")
    position = ALPHABET.index(token[index]) if token[index] in ALPHABET else 0
    char = ALPHABET[(position + shift) % len(ALPHABET)]
    assert char != token[index]
    with pytest.raises(InvalidToken):
        read(KEY, token[:index] + char + token[index + 1 :])


def test_a_token_for_one_purpose_is_rejected_for_the_other() -> None:
    opened = make_open_token(KEY, message_id="m1", sent_at=SENT, user_id="u1")
    clicked = make_click_token(KEY, url="https://example.com/", message_id="m1", sent_at=SENT, user_id="u1")
    with pytest.raises(InvalidToken):
        read_click_token(KEY, opened)
    with pytest.raises(InvalidToken):
        read_open_token(KEY, clicked)


def test_a_token_made_with_another_key_is_rejected() -> None:
    token = make_click_token("other-secret", url="https://evil.example/", message_id="m1", sent_at=SENT, user_id="u")
    with pytest.raises(InvalidToken, match="bad token signature"):
        read_click_token(KEY, token)


def test_tokens_for_the_same_email_differ_so_they_cannot_be_guessed() -> None:
    made = {make_open_token(KEY, message_id="m1", sent_at=SENT, user_id="u1") for _ in range(50)}
    assert len(made) == 50


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "data:text/html,hi", "//evil.example/", "/relative", "ftp://x.example/"]
)
def test_click_tokens_bind_only_absolute_http_urls(url: str) -> None:
    with pytest.raises(ValueError, match="http or https"):
        make_click_token(KEY, url=url, message_id="m1", sent_at=SENT, user_id="u1")


def test_a_token_needs_a_lead_identity_and_an_aware_send_time() -> None:
    with pytest.raises(ValueError, match="user_id or anonymous_id"):
        make_open_token(KEY, message_id="m1", sent_at=SENT)
    with pytest.raises(ValueError, match="timezone-aware"):
        make_open_token(KEY, message_id="m1", sent_at=datetime(2025, 1, 1), user_id="u1")  # noqa: DTZ001
    assert read_open_token(KEY, make_open_token(KEY, message_id="m", sent_at=SENT, user_id="u")).user_id
