"""The pure consent decision, property-tested: who may get which email."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.nurture.consent.service import (
    GLOBAL,
    STATUSES,
    Consent,
    ConsentState,
    Kind,
    fold_rows,
    identity_hash,
    masked,
    may_send,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TOPICS = ["news", "product", "offers"]

times = st.integers(min_value=0, max_value=1000).map(lambda s: T0 + timedelta(seconds=s))
consents = st.builds(Consent, status=st.sampled_from(STATUSES), at=times)
states = st.builds(
    ConsentState,
    everything=st.none() | consents,
    topics=st.dictionaries(st.sampled_from(TOPICS), consents, max_size=3),
    suppression=st.sampled_from([None, "bounced", "complained", "unsubscribed", "manual"]),
    erased=st.booleans(),
)
topics = st.sampled_from([None, *TOPICS])


def decide(state: ConsentState | None, kind: Any, topic: str | None, regime: bool, has_email: bool = True) -> bool:
    return may_send(state, kind=kind, topic=topic, opt_out_regime=regime, has_email=has_email).allowed


def all_consents(state: ConsentState) -> list[Consent]:
    return [c for c in (state.everything, *state.topics.values()) if c is not None]


@given(states, topics, st.booleans())
def test_transactional_mail_goes_unless_erased_bounced_or_complained(
    state: ConsentState, topic: str | None, regime: bool
) -> None:
    dead = {c.status for c in all_consents(state)} & {"bounced", "complained"} or state.suppression in (
        "bounced",
        "complained",
    )
    assert decide(state, "transactional", topic, regime) == (not state.erased and not dead)


@given(states, topics, st.booleans(), st.booleans())
def test_marketing_is_allowed_only_where_transactional_is(
    state: ConsentState, topic: str | None, regime: bool, has_email: bool
) -> None:
    if decide(state, "marketing", topic, regime, has_email):
        assert decide(state, "transactional", topic, regime, has_email)


@given(states, topics, st.booleans(), st.sampled_from(["marketing", "transactional"]))
def test_no_email_address_no_mail(state: ConsentState, topic: str | None, regime: bool, kind: Kind) -> None:
    decision = may_send(state, kind=kind, topic=topic, opt_out_regime=regime, has_email=False)
    assert not decision.allowed


@given(states, topics, st.booleans())
def test_a_pending_double_opt_in_counts_as_no_subscription(
    state: ConsentState, topic: str | None, regime: bool
) -> None:
    without_pending = ConsentState(
        None if state.everything and state.everything.status == "pending" else state.everything,
        {t: c for t, c in state.topics.items() if c.status != "pending"},
        state.suppression,
        state.erased,
    )
    for kind in ("marketing", "transactional"):
        assert decide(state, kind, topic, regime) == decide(without_pending, kind, topic, regime)


@given(states, st.sampled_from(TOPICS), st.booleans(), times)
def test_unsubscribing_from_a_topic_stops_its_marketing(
    state: ConsentState, topic: str, regime: bool, at: datetime
) -> None:
    after = replace(state, topics={**state.topics, topic: Consent("unsubscribed", at)})
    assert not decide(after, "marketing", topic, regime)


@given(states, topics, st.booleans())
def test_leaving_everything_stops_marketing_except_topics_chosen_again_later(
    state: ConsentState, topic: str | None, regime: bool
) -> None:
    left_at = T0 + timedelta(seconds=500)
    after = replace(state, everything=Consent("unsubscribed", left_at))
    chosen_later = (
        topic is not None
        and topic in after.topics
        and after.topics[topic].status == "subscribed"
        and after.topics[topic].at >= left_at
    )
    if decide(after, "marketing", topic, regime):
        assert chosen_later


@given(states, topics, st.booleans(), st.sampled_from(["marketing", "transactional"]))
def test_erased_people_get_nothing(state: ConsentState, topic: str | None, regime: bool, kind: str) -> None:
    assert not decide(replace(state, erased=True), kind, topic, regime)


@given(topics)
def test_without_a_consent_record_marketing_needs_the_opt_out_regime(topic: str | None) -> None:
    assert not decide(None, "marketing", topic, regime=False)
    assert decide(None, "marketing", topic, regime=True)
    assert may_send(None, kind="marketing", topic=topic, opt_out_regime=False, has_email=True).reason == "no-consent"
    assert decide(None, "transactional", topic, regime=False)


@given(topics, st.booleans())
def test_a_global_subscription_allows_marketing_on_topics_not_left(topic: str | None, regime: bool) -> None:
    state = ConsentState(Consent("subscribed", T0), {"offers": Consent("unsubscribed", T0)})
    assert decide(state, "marketing", topic, regime) == (topic != "offers")


def test_a_topic_subscription_counts_for_that_topic_only() -> None:
    state = ConsentState(None, {"news": Consent("subscribed", T0, "double", "form", "Weekly news")})
    assert may_send(state, kind="marketing", topic="news", opt_out_regime=False, has_email=True).reason == (
        "topic-subscribed"
    )
    assert not decide(state, "marketing", "offers", regime=False)
    assert not decide(state, "marketing", None, regime=False)


def test_a_hard_bounce_stops_even_transactional_mail() -> None:
    for state in (
        ConsentState(Consent("bounced", T0)),
        ConsentState(None, {}, "bounced"),
        ConsentState(Consent("subscribed", T0), {"news": Consent("complained", T0)}),
    ):
        assert not decide(state, "transactional", None, regime=True)


@given(st.lists(st.tuples(st.sampled_from([GLOBAL, *TOPICS]), consents), max_size=12))
def test_folding_rows_keeps_the_latest_statement_per_topic(rows: list[tuple[str, Consent]]) -> None:
    everything, per_topic = fold_rows(rows)
    folded = dict(per_topic)
    if everything is not None:
        folded[GLOBAL] = everything
    assert set(folded) == {topic for topic, _ in rows}
    for topic, consent in rows:
        assert folded[topic].at >= consent.at


def test_identity_hashes_ignore_email_case_and_differ_by_kind() -> None:
    assert identity_hash("email", " Ann@Example.com ") == identity_hash("email", "ann@example.com")
    assert identity_hash("user", "x") != identity_hash("anonymous", "x")
    assert len(identity_hash("user", "u-1")) == 64


def test_masked_addresses_keep_the_first_letter_and_the_domain() -> None:
    assert masked("Ann@Example.com") == "a***@example.com"
