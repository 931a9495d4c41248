"""Property tests of the pure aggregation: whatever the order and timing of stage changes, the funnel
summary conserves leads, time-in-stage samples match exits, and cutting the stream into batches
anywhere (the state carried between them, as the database does) gives the same summaries."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.analytics.summaries import CYCLE, Delta, Funnels, LeadInfo, StageState, summarize
from shared.events import LeadChange, LeadStageChanged

STAGES = ["visitor", "lead", "mql", "customer"]
FUNNELS = Funnels.from_rules([("b2b", STAGES)], ["customer"])
START = datetime(2026, 1, 5, tzinfo=UTC)

Plan = list[list[tuple[str, int]]]
plans = st.lists(
    st.lists(st.tuples(st.sampled_from(STAGES), st.integers(0, 30 * 24)), max_size=12), min_size=1, max_size=6
)


def changes_of(plan: Plan) -> list[LeadChange]:
    changes: list[LeadChange] = []
    for i, steps in enumerate(plan):
        lead = uuid.UUID(int=i + 1)
        at, previous = START, None
        for stage, hours in steps:
            at = at + timedelta(hours=hours)
            changes.append(LeadStageChanged(event_id=uuid.uuid4(), lead_id=lead, model="b2b", stage=stage,
                                            previous_stage=previous, kind="entry", rule_set_version=1,
                                            occurred_at=at))  # fmt: skip
            previous = stage
    return changes


def merged(deltas: list[Delta]) -> tuple[Counter[Any], Counter[Any], Counter[Any]]:
    funnel: Counter[Any] = Counter()
    durations: Counter[Any] = Counter()
    cohorts: Counter[Any] = Counter()
    for d in deltas:
        funnel.update(d.funnel)
        durations.update(d.durations)
        cohorts.update(d.cohorts)
    return funnel, durations, cohorts


def by_stage(counter: Counter[Any], position: int, what: str | None = None) -> Counter[str]:
    out: Counter[str] = Counter()
    for key, n in counter.items():
        if what is None or key[-1] == what:
            out[key[position]] += n
    return out


@settings(max_examples=150, deadline=None)
@given(plans)
def test_funnel_conserves_leads_and_time_in_stage_matches_exits(plan: Plan) -> None:
    leads = {uuid.UUID(int=i + 1): LeadInfo(uuid.UUID(int=i + 1), START, new=True) for i in range(len(plan))}
    stages: dict[tuple[uuid.UUID, str], StageState] = {}
    funnel, durations, cohorts = merged([summarize(changes_of(plan), leads, stages, FUNNELS, "USD")])
    entered, exited = by_stage(funnel, 2, "entered"), by_stage(funnel, 2, "exited")
    assert sum(entered.values()) - sum(exited.values()) == len(plan)  # every lead is in exactly one stage
    now_in = Counter(state.stage for state in stages.values())
    assert all(entered[s] - exited[s] == now_in[s] for s in STAGES)
    samples = by_stage(durations, 2)
    assert {s: n for s, n in samples.items() if s != CYCLE} == {s: n for s, n in exited.items() if n}
    assert samples[CYCLE] == sum(1 for steps in plan if any(s == "customer" for s, _ in steps))
    assert by_stage(cohorts, 2)["visitor"] == len(plan)  # everyone enters the first stage once
    assert all(state.stage in state.reached for state in stages.values())


@settings(max_examples=100, deadline=None)
@given(plans, st.integers(1, 5))
def test_batches_cut_anywhere_give_the_same_summaries(plan: Plan, size: int) -> None:
    changes = changes_of(plan)
    ids = {c.lead_id for c in changes}
    whole = summarize(changes, {i: LeadInfo(i, START, new=True) for i in ids}, {}, FUNNELS, "USD")
    stages: dict[tuple[uuid.UUID, str], StageState] = {}
    seen: set[uuid.UUID] = set()
    parts = []
    for start in range(0, len(changes), size):
        batch = changes[start : start + size]
        infos = {c.lead_id: LeadInfo(c.lead_id, START, new=c.lead_id not in seen) for c in batch}
        seen.update(infos)
        parts.append(summarize(batch, infos, stages, FUNNELS, "USD"))
    assert merged([whole]) == merged(parts)


def test_cohort_conversion_over_time_is_cumulative_by_week_after_entry() -> None:
    from services.analytics.service import cohort_table

    week = "2026-01-05"
    rows = [(week, "visitor", 0, 10), (week, "lead", 0, 6), (week, "customer", 0, 1), (week, "customer", 2, 3)]
    (cohort,) = cohort_table(rows, STAGES, "customer", weeks=4)
    assert (cohort["leads"], cohort["lead"], cohort["lead_share"], cohort["customer"]) == (10, 6, 0.6, 4)
    assert cohort["won_by_week"] == [0.1, 0.1, 0.4, 0.4]
