"""The scoring engine: a lead's state plus one activity (or the passing of time) → new state and effects.

Pure: no I/O and no clock; every time is an event time. Engagement decays exponentially with the
rule set's half-life, which is linear, so a score is the sum of each point decayed from its own event
time and does not depend on when the consumer saw it. Time-driven changes (inactivity points, decay
crossing a grade or stage threshold) happen at times computed from the data; a tick or the next event
only makes them visible, so live scoring and a replay under the same rules agree.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.scoring.conditions import all_hold, holds
from services.scoring.rules import BehaviourRule, Criteria, Criterion, FunnelModel, RuleSet

SALES_DECISION = "funnelstream.sales_decision"
MAX_TIME_STEPS = 200
DAY_KEEP = 3  # per-day cap counters are kept for this many recent days


@dataclass(frozen=True)
class Activity:
    """What the engine needs of one event."""

    event_id: uuid.UUID | None
    type: str
    name: str | None
    at: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    email: str | None = None
    user_id: str | None = None
    bot: bool = False


@dataclass(frozen=True)
class LedgerEntry:
    rule_id: str
    kind: str  # behaviour, fit, inactivity, decay
    points: float
    at: datetime
    event_id: uuid.UUID | None


@dataclass(frozen=True)
class StageChange:
    model: str
    from_stage: str | None
    to_stage: str
    at: datetime
    kind: str  # entry, exit, sales, merge
    cause_event_id: uuid.UUID | None
    reason: str | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class Alert:
    rule_id: str
    at: datetime
    cause_event_id: uuid.UUID | None


@dataclass
class Effects:
    ledger: list[LedgerEntry] = field(default_factory=list)
    stage_changes: list[StageChange] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    sales_stages: list[StageChange] = field(default_factory=list)  # stages entered with notify_sales


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class LeadState:
    """Everything scoring knows of a lead. Stored as columns plus one JSON document."""

    stages: dict[str, str]
    traits: dict[str, Any] = field(default_factory=dict)
    trait_times: dict[str, str] = field(default_factory=dict)
    email: str | None = None
    user_id: str | None = None
    fit: float = 0.0
    engagement: float = 0.0  # as of `as_of`
    as_of: datetime | None = None
    checked_at: datetime | None = None  # the latest time stages and grades were evaluated at
    last_activity: datetime | None = None
    inactive_applied: list[str] = field(default_factory=list)
    counts: dict[str, list[Any]] = field(default_factory=dict)  # rule id → [lifetime, {day: count}]
    fit_matched: dict[str, float] = field(default_factory=dict)
    milestones: dict[str, int] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)
    blocked: dict[str, list[str]] = field(default_factory=dict)  # model → [stage, until] after a rejection
    grade: str = "D4"
    predictions: dict[str, float] = field(default_factory=dict)  # funnel model → predicted probability

    @property
    def known(self) -> bool:
        return bool(self.user_id or self.email)

    def to_json(self) -> dict[str, Any]:
        """The parts without a column of their own."""
        return {
            "as_of": _iso(self.as_of),
            "checked_at": _iso(self.checked_at),
            "last_activity": _iso(self.last_activity),
            "inactive_applied": self.inactive_applied,
            "counts": self.counts,
            "fit_matched": self.fit_matched,
            "milestones": self.milestones,
            "alerts": self.alerts,
            "blocked": self.blocked,
        } | ({"predictions": self.predictions} if self.predictions else {})

    @classmethod
    def from_parts(
        cls,
        doc: dict[str, Any],
        *,
        stages: dict[str, str],
        traits: dict[str, Any],
        trait_times: dict[str, str],
        email: str | None,
        user_id: str | None,
        fit: float,
        engagement: float,
        grade: str,
    ) -> LeadState:
        return cls(
            stages=dict(stages),
            traits=dict(traits),
            trait_times=dict(trait_times),
            email=email,
            user_id=user_id,
            fit=fit,
            engagement=engagement,
            as_of=_dt(doc.get("as_of")),
            checked_at=_dt(doc.get("checked_at")),
            last_activity=_dt(doc.get("last_activity")),
            inactive_applied=list(doc.get("inactive_applied", [])),
            # The document was just decoded for this state alone: its containers are used, not copied.
            counts=doc.get("counts", {}),
            fit_matched=doc.get("fit_matched", {}),
            milestones=doc.get("milestones", {}),
            alerts=doc.get("alerts", []),
            blocked=doc.get("blocked", {}),
            grade=grade,
            predictions=dict(doc.get("predictions", {})),  # a copy: the row keeps what was stored
        )


Check = Callable[[LeadState, float, float], bool]  # (state, score, engagement) -> holds


def compile_criterion(c: Criterion, primary: str = "b2b") -> Check:
    """One criterion as a closure: rules are evaluated on every scored event, so no dispatch per call."""
    if c.kind == "known":
        return lambda state, score, engagement: bool(state.user_id or state.email)
    if c.kind == "event":
        names, count = tuple(c.names), c.count
        if len(names) == 1:
            name = names[0]
            return lambda state, score, engagement: state.milestones.get(name, 0) >= count
        return lambda state, score, engagement: sum(state.milestones.get(n, 0) for n in names) >= count
    if c.kind == "grade":
        grades = frozenset(c.in_)
        return lambda state, score, engagement: state.grade in grades
    if c.kind == "trait":
        condition = c.condition
        return lambda state, score, engagement: holds(condition, {"traits": state.traits, "email": state.email})
    low = c.gte if c.gte is not None else -math.inf
    high = c.lt if c.lt is not None else math.inf
    if c.kind == "prediction":
        model = c.model or primary

        def predicted(state: LeadState, score: float, engagement: float) -> bool:
            p = state.predictions.get(model)
            return p is not None and low <= p < high

        return predicted
    if c.kind == "score":
        return lambda state, score, engagement: low <= score < high
    if c.kind == "engagement":
        return lambda state, score, engagement: low <= engagement < high
    return lambda state, score, engagement: low <= state.fit < high


def compile_criteria(criteria: Criteria, primary: str = "b2b") -> Check:
    every = [compile_criterion(c, primary) for c in criteria.all]
    some = [compile_criterion(c, primary) for c in criteria.any]

    def check(state: LeadState, score: float, engagement: float) -> bool:
        for f in every:
            if not f(state, score, engagement):
                return False
        if not some:
            return True
        for f in some:
            if f(state, score, engagement):
                return True
        return False

    return check


def letter(value: float, thresholds: tuple[float, float, float], labels: str) -> str:
    for threshold, label in zip(thresholds, labels, strict=False):
        if value >= threshold:
            return label
    return labels[3]


class Scorer:
    """One rule set, prepared for fast matching."""

    def __init__(self, rules: RuleSet, version: int = 0) -> None:
        self.rules = rules
        self.version = version
        self.half_life_s = rules.half_life_days * 86400 if rules.half_life_days else None
        self._by_name: dict[tuple[str | None, str | None], list[BehaviourRule]] = {}
        for rule in rules.behaviour:
            self._by_name.setdefault((rule.type, rule.event.casefold() if rule.event else None), []).append(rule)
        self._compiled: dict[int, Check] = {}
        self._quiet = [(r.id, timedelta(days=r.days)) for r in rules.inactivity]
        self.milestone_names: set[str] = set()
        self.uses_prediction = False  # a criterion reads predictions: stages are re-checked when one changes
        self._score_thresholds: set[float] = set()
        self._engagement_thresholds: set[float] = set(rules.grades.engagement)
        for criteria in self._all_criteria():
            for c in (*criteria.all, *criteria.any):
                if c.kind == "event":
                    self.milestone_names.update(c.names)
                elif c.kind == "prediction":
                    self.uses_prediction = True
                elif c.kind in {"score", "engagement"}:
                    bounds = {b for b in (c.gte, c.lt) if b is not None}
                    (self._score_thresholds if c.kind == "score" else self._engagement_thresholds).update(bounds)

    def _all_criteria(self) -> list[Criteria]:
        found = [a.when for a in self.rules.attention]
        for model in self.rules.models:
            found += [c for s in model.stages for c in (s.entry, s.exit) if c is not None]
        return found

    # -- state ----------------------------------------------------------------------------------
    def new_state(self, *, user_id: str | None = None, email: str | None = None) -> LeadState:
        return LeadState(stages={m.name: m.stages[0].name for m in self.rules.models}, user_id=user_id, email=email)

    def engagement_at(self, state: LeadState, at: datetime) -> float:
        """Engagement decayed to `at` (never un-decayed to a time before the last point)."""
        if self.half_life_s is None or state.as_of is None or at <= state.as_of or state.engagement == 0:
            return state.engagement
        return state.engagement * self._factor((at - state.as_of).total_seconds())

    def _factor(self, seconds: float) -> float:
        return float(2.0 ** (-seconds / self.half_life_s)) if self.half_life_s else 1.0

    def grade(self, fit: float, engagement: float) -> str:
        g = self.rules.grades
        return letter(fit, g.fit, "ABCD") + letter(engagement, g.engagement, "1234")

    # -- applying -------------------------------------------------------------------------------
    def apply(self, state: LeadState, act: Activity, fx: Effects) -> None:
        """One event, in the lead's order. Bot-flagged events change nothing."""
        if act.bot:
            return
        self.advance(state, act.at, fx)
        changed = False
        if act.type == "identify" and act.traits:
            changed |= self._merge_traits(state, act.traits, act.at)
        if act.email and act.email != state.email:
            stated = str(state.traits.get("email", "")).strip().lower()
            if state.email is None or stated == act.email:  # a later identify's email wins by event time
                state.email, changed = act.email, True
        if act.user_id and not state.user_id:
            state.user_id, changed = act.user_id, True
        if changed:
            self.refit(state, act.at, act.event_id, fx)
        if act.name == SALES_DECISION:
            self._sales_decision(state, act, fx)
            return
        for rule in self._matching(act):
            if self._count(state, rule, act.at):
                self._add_engagement(state, float(rule.points), act.at, rule.id, "behaviour", act.event_id, fx)
                changed = True
        if state.last_activity is None or act.at > state.last_activity:
            state.last_activity = act.at
            state.inactive_applied = []
        if act.type == "track" and act.name in self.milestone_names:
            state.milestones[act.name] = state.milestones.get(act.name, 0) + 1
            changed = True
        if changed or state.checked_at is None:
            self.evaluate(state, act.at, act.event_id, fx)

    def advance(self, state: LeadState, until: datetime, fx: Effects) -> None:
        """Make every time-driven change due at or before `until`, each at its own time."""
        for _ in range(MAX_TIME_STEPS):
            due = self.next_change(state)
            if due is None or due > until:
                return
            for rule in self.rules.inactivity:
                if rule.id in state.inactive_applied or state.last_activity is None:
                    continue
                if state.last_activity + timedelta(days=rule.days) <= due:
                    state.inactive_applied.append(rule.id)
                    self._add_engagement(state, float(rule.points), due, rule.id, "inactivity", None, fx)
            self.evaluate(state, due, None, fx)

    def next_change(self, state: LeadState) -> datetime | None:
        """The earliest time after the last evaluation when something changes without an event."""
        times: list[datetime] = []
        if state.last_activity is not None:
            times += [
                state.last_activity + after for rule_id, after in self._quiet if rule_id not in state.inactive_applied
            ]
        if self.half_life_s is not None and state.as_of is not None and state.engagement != 0:
            e0 = state.engagement
            thresholds = self._engagement_thresholds | {s - state.fit for s in self._score_thresholds}
            for theta in thresholds:
                if 0 < theta < e0 or e0 < theta < 0:
                    seconds = self.half_life_s * math.log2(e0 / theta) + 1
                    crossing = state.as_of + timedelta(seconds=seconds)
                    if state.checked_at is None or crossing > state.checked_at:
                        times.append(crossing)
        return min(times, default=None)

    def _matching(self, act: Activity) -> list[BehaviourRule]:
        name = act.name.casefold() if act.name else None
        keys: list[tuple[str | None, str | None]] = [(act.type, None), (None, None)]
        if name:
            keys += [(act.type, name), (None, name)]
        candidates = [rule for key in keys for rule in self._by_name.get(key, ())]
        if not candidates:
            return []
        data = {"properties": act.properties, "event": act.name, "name": act.name, "type": act.type}
        return [r for r in candidates if all_hold(r.conditions, data)]

    def _count(self, state: LeadState, rule: BehaviourRule, at: datetime) -> bool:
        """Whether the rule may count once more (caps per UTC day and lifetime), and count it."""
        if rule.cap_per_day is None and rule.cap_lifetime is None:
            return True
        day = at.astimezone(UTC).date().isoformat()
        total, days = state.counts.setdefault(rule.id, [0, {}])
        if rule.cap_lifetime is not None and total >= rule.cap_lifetime:
            return False
        if rule.cap_per_day is not None and days.get(day, 0) >= rule.cap_per_day:
            return False
        days[day] = days.get(day, 0) + 1
        if len(days) > DAY_KEEP:
            for old in sorted(days)[:-DAY_KEEP]:
                del days[old]
        state.counts[rule.id][0] = total + 1
        return True

    def _add_engagement(
        self, state: LeadState, points: float, at: datetime, rule_id: str, kind: str, event_id: uuid.UUID | None,
        fx: Effects,
    ) -> None:  # fmt: skip
        if self.half_life_s is None:
            fx.ledger.append(LedgerEntry(rule_id, kind, points, at, event_id))
            state.engagement += points
            state.as_of = max(state.as_of or at, at)
            return
        if state.as_of is None or at >= state.as_of:
            if state.as_of is not None and state.engagement != 0 and at > state.as_of:
                now = state.engagement * self._factor((at - state.as_of).total_seconds())
                fx.ledger.append(LedgerEntry("decay", "decay", now - state.engagement, at, None))
                state.engagement = now
            fx.ledger.append(LedgerEntry(rule_id, kind, points, at, event_id))
            state.engagement += points
            state.as_of = at
            return
        # A late event: its points count decayed from their own time to the current reference time.
        kept = points * self._factor((state.as_of - at).total_seconds())
        fx.ledger.append(LedgerEntry(rule_id, kind, points, at, event_id))
        fx.ledger.append(LedgerEntry("decay", "decay", kept - points, state.as_of, event_id))
        state.engagement += kept

    def _merge_traits(self, state: LeadState, traits: dict[str, Any], at: datetime) -> bool:
        changed = False
        stamp = at.isoformat()
        for key, value in traits.items():
            current = state.trait_times.get(key)
            if current is None or datetime.fromisoformat(current) <= at:
                if state.traits.get(key) != value:
                    changed = True
                state.traits[key] = value
                state.trait_times[key] = stamp
        return changed

    def refit(self, state: LeadState, at: datetime, event_id: uuid.UUID | None, fx: Effects) -> None:
        """Fit from the current traits; the ledger records each rule that starts or stops matching."""
        data = {"traits": state.traits, "email": state.email}
        matched = {r.id: float(r.points) for r in self.rules.fit if all_hold(r.conditions, data)}
        for rule_id in matched.keys() | state.fit_matched.keys():
            delta = matched.get(rule_id, 0.0) - state.fit_matched.get(rule_id, 0.0)
            if delta:
                fx.ledger.append(LedgerEntry(rule_id, "fit", delta, at, event_id))
        state.fit_matched = matched
        state.fit = sum(matched.values())

    # -- stages ---------------------------------------------------------------------------------
    def _criteria(self, criteria: Criteria, state: LeadState, score: float, engagement: float) -> bool:
        check = self._compiled.get(id(criteria))
        if check is None:
            check = self._compiled[id(criteria)] = compile_criteria(criteria, self.rules.primary_model)
        return check(state, score, engagement)

    def evaluate(self, state: LeadState, at: datetime, cause: uuid.UUID | None, fx: Effects) -> None:
        """Grade, stages and alerts as of `at`."""
        at = max(t for t in (at, state.as_of, state.checked_at) if t is not None)
        engagement = self.engagement_at(state, at)
        score = state.fit + engagement
        state.grade = self.grade(state.fit, engagement)
        for model in self.rules.models:
            self._move(model, state, at, cause, score, engagement, fx)
        for rule in self.rules.attention:
            on = self._criteria(rule.when, state, score, engagement)
            if on and rule.id not in state.alerts:
                state.alerts.append(rule.id)
                fx.alerts.append(Alert(rule.id, at, cause))
            elif not on and rule.id in state.alerts:
                state.alerts.remove(rule.id)
        state.checked_at = at

    def _move(
        self, model: FunnelModel, state: LeadState, at: datetime, cause: uuid.UUID | None, score: float,
        engagement: float, fx: Effects,
    ) -> None:  # fmt: skip
        current = state.stages.get(model.name, model.stages[0].name)
        index = model.index(current)
        stage = model.stages[index]
        if stage.exit is not None and self._criteria(stage.exit, state, score, engagement):
            target = 0
            for j in range(index - 1, 0, -1):
                entry = model.stages[j].entry
                if entry is not None and self._criteria(entry, state, score, engagement):
                    target = j
                    break
            self._change(model, state, model.stages[target].name, at, "exit", cause, fx, "exit criteria met")
            return
        blocked = state.blocked.get(model.name)
        if blocked and datetime.fromisoformat(blocked[1]) <= at:
            del state.blocked[model.name]
            blocked = None
        best = None
        for j in range(index + 1, len(model.stages)):
            candidate = model.stages[j]
            if blocked and j >= model.index(blocked[0]):
                break
            if candidate.entry is not None and self._criteria(candidate.entry, state, score, engagement):
                best = j
        if best is not None:
            self._change(model, state, model.stages[best].name, at, "entry", cause, fx)

    def _change(
        self, model: FunnelModel, state: LeadState, to: str, at: datetime, kind: str, cause: uuid.UUID | None,
        fx: Effects, reason: str | None = None, details: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        before = state.stages.get(model.name)
        if before == to:
            return
        state.stages[model.name] = to
        change = StageChange(model.name, before, to, at, kind, cause, reason, details)
        fx.stage_changes.append(change)
        if model.stages[model.index(to)].notify_sales and model.index(to) > model.index(before or ""):
            fx.sales_stages.append(change)

    def _sales_decision(self, state: LeadState, act: Activity, fx: Effects) -> None:
        """Accept, reject or set a stage from the admin API or a CRM; recorded with reason and BANT."""
        props = act.properties
        model = self.rules.model(str(props.get("model") or self.rules.primary_model))
        if model is None:
            return
        names = [s.name for s in model.stages]
        decision = str(props.get("decision") or "set")
        current = state.stages.get(model.name, names[0])
        target = props.get("stage")
        if decision == "reject":
            if target not in names:
                target = names[max(model.index(current) - 1, 0)]
            until = act.at + timedelta(days=self.rules.recycle_days)
            state.blocked[model.name] = [current, until.isoformat()]
        elif target not in names:
            return
        else:
            state.blocked.pop(model.name, None)
        details = {k: props[k] for k in ("decision", "actor", "bant") if props.get(k) is not None}
        reason = props.get("reason")
        self._change(
            model, state, str(target), act.at, "sales", act.event_id, fx, str(reason) if reason else None, details
        )
        state.checked_at = max(state.checked_at or act.at, act.at)

    # -- merging --------------------------------------------------------------------------------
    def merge(self, into: LeadState, other: LeadState, at: datetime, cause: uuid.UUID | None, fx: Effects) -> None:
        """Fold `other` (the same person, found later) into `into`."""
        refs = [t for t in (into.as_of, other.as_of) if t is not None]
        if refs:
            ref = max(refs)
            parts = [(s.engagement, self.engagement_at(s, ref)) for s in (into, other)]
            for before, after in parts:
                if after != before:
                    fx.ledger.append(LedgerEntry("decay", "decay", after - before, ref, cause))
            into.engagement = parts[0][1] + parts[1][1]
            into.as_of = ref
        for key in other.traits:
            other_at = _dt(other.trait_times.get(key)) or datetime(1970, 1, 1, tzinfo=UTC)
            self._merge_traits(into, {key: other.traits[key]}, other_at)
        into.email = into.email or other.email
        into.user_id = into.user_id or other.user_id
        for rule_id, (total, days) in other.counts.items():
            mine = into.counts.setdefault(rule_id, [0, {}])
            mine[0] += total
            for day, n in days.items():
                mine[1][day] = mine[1].get(day, 0) + n
        for name, n in other.milestones.items():
            into.milestones[name] = into.milestones.get(name, 0) + n
        if other.last_activity and (into.last_activity is None or other.last_activity > into.last_activity):
            into.last_activity, into.inactive_applied = other.last_activity, list(other.inactive_applied)
        into.alerts = sorted(set(into.alerts) | set(other.alerts))
        for model in self.rules.models:
            mine_stage, theirs = into.stages.get(model.name), other.stages.get(model.name)
            if theirs and model.index(theirs) > model.index(mine_stage or ""):
                self._change(model, into, theirs, at, "merge", cause, fx, "merged with another lead of this person")
        into.fit += other.fit  # the other lead's fit points moved with its ledger; refit corrects both
        into.fit_matched = {k: into.fit_matched.get(k, 0.0) + other.fit_matched.get(k, 0.0)
                            for k in into.fit_matched.keys() | other.fit_matched.keys()}  # fmt: skip
        self.refit(into, max(at, into.as_of or at), cause, fx)
        self.evaluate(into, at, cause, fx)


def score_of(scorer: Scorer, state: LeadState, at: datetime) -> tuple[Decimal, Decimal, Decimal]:
    """(score, fit, engagement) decayed to `at`, rounded as stored."""
    engagement = scorer.engagement_at(state, at)
    q = Decimal("0.0001")
    return (
        Decimal(state.fit + engagement).quantize(q),
        Decimal(state.fit).quantize(q),
        Decimal(engagement).quantize(q),
    )
