"""Pure scoring decisions, property-tested."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.scoring.service import email_of, plan_batch, primary_identity
from shared.events import TrackedEvent, decode

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def tracked(user: str | None, anon: str | None, n: int, traits: dict[str, str] | None = None) -> TrackedEvent:
    return TrackedEvent(
        event_id=uuid.uuid4(),
        source_id=uuid.UUID(int=1),
        message_id=str(n),
        type="identify" if traits else "track",
        event=None if traits else "E",
        user_id=user,
        anonymous_id=anon,
        traits=traits or {},
        timestamp=NOW,
        received_at=NOW,
    )


people = st.tuples(st.sampled_from(["u1", "u2", None]), st.sampled_from(["a1", "a2"]))


@given(st.lists(people, max_size=50))
def test_every_event_scores_exactly_one_point_on_exactly_one_lead(who: list[tuple[str | None, str]]) -> None:
    events = [tracked(u, a, i) for i, (u, a) in enumerate(who)]
    deltas = plan_batch(events)
    assert sum(d.points for d in deltas.values()) == len(events)
    assert set(deltas) == {primary_identity(e) for e in events}


def test_known_user_links_its_anonymous_id_and_email() -> None:
    delta = plan_batch([tracked("u1", "a1", 0, {"email": " Ann@Example.com"})])[("user", "u1")]
    assert delta.secondary == {("anonymous", "a1"), ("email", "ann@example.com")}
    assert delta.email == "ann@example.com"


def test_an_email_needs_an_at_sign() -> None:
    assert email_of(tracked("u", None, 0, {"email": "not-an-email"})) is None


@given(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=5))
def test_events_survive_the_wire(traits: dict[str, str]) -> None:
    event = tracked("u", "a", 1, traits or None)
    assert decode(TrackedEvent, event.to_bytes()) == event
