"""Pure scoring decisions, property-tested."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.scoring.service import (
    Link,
    email_of,
    fold_direction,
    plan_batch,
    plan_event,
    primary_identity,
)
from shared.events import TrackedEvent, decode

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def tracked(
    user: str | None,
    anon: str | None,
    n: int,
    traits: dict[str, str] | None = None,
    *,
    at: datetime = NOW,
    bot: str | None = None,
) -> TrackedEvent:
    return TrackedEvent(
        event_id=uuid.uuid4(),
        source_id=uuid.UUID(int=1),
        message_id=str(n),
        type="identify" if traits else "track",
        event=None if traits else "E",
        user_id=user,
        anonymous_id=anon,
        traits=traits or {},
        timestamp=at,
        received_at=at,
        bot=bot,
    )


people = st.tuples(st.sampled_from(["u1", "u2", None]), st.sampled_from(["a1", "a2"]), st.booleans())


@given(st.lists(people, max_size=50))
def test_every_event_belongs_to_its_user_id_else_its_anonymous_id(who: list[tuple[str | None, str, bool]]) -> None:
    events = [tracked(u, a, i, bot="bot-user-agent" if is_bot else None) for i, (u, a, is_bot) in enumerate(who)]
    plans = plan_batch(events)
    assert [p.primary for p in plans] == [primary_identity(e) for e in events]


def test_identify_links_the_anonymous_id_and_the_email() -> None:
    plan = plan_event(tracked("u1", "a1", 0, {"email": " Ann@Example.com"}))
    assert [link.identity for link in plan.links] == [("anonymous", "a1"), ("email", "ann@example.com")]
    assert plan.email == "ann@example.com"


def test_an_email_needs_an_at_sign() -> None:
    assert email_of(tracked("u", None, 0, {"email": "not-an-email"})) is None


leads = st.sampled_from([uuid.UUID(int=1), uuid.UUID(int=2)])
users = st.sampled_from([None, "u1", "u2"])


@given(leads, users, leads, users, st.booleans())
def test_folding_never_loses_a_known_user_without_an_alias(
    a: uuid.UUID, a_user: str | None, b: uuid.UUID, b_user: str | None, alias: bool
) -> None:
    link = Link(("anonymous", "x"), "alias" if alias else "identify", may_fold_known=alias)
    direction = fold_direction(a, a_user, b, b_user, link)
    if a == b:
        assert direction is None
    elif direction is not None:
        source, _target = direction
        source_user = a_user if source == a else b_user
        target_user = b_user if source == a else a_user
        # A known lead only folds away on an explicit alias, and never into an anonymous lead.
        assert source_user is None or (alias and target_user is not None)
    else:
        assert a_user and b_user


@given(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=5))
def test_events_survive_the_wire(traits: dict[str, str]) -> None:
    event = tracked("u", "a", 1, traits or None)
    assert decode(TrackedEvent, event.to_bytes()) == event
