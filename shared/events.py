"""Versioned event models for every topic, shared by producers and consumers.

Compatibility rule: a consumer accepts the current `schema_version` of a model and the one before it.
Adding an optional field keeps the version; removing or changing a field bumps it, and the previous
version is upcast in `decode()` until every producer has moved on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Namespace for ids derived from the sender's own ids, so that a retried message maps to the same id.
EVENT_NAMESPACE = uuid.UUID("5b0e6f1c-3f52-4c59-9a54-4f1d2a8e6c11")

EventType = Literal["track", "identify", "page", "screen", "group", "alias"]


class InvalidMessage(Exception):
    """A message that can never be processed; it goes to the dead-letter topic with this reason."""


class EventModel(BaseModel):
    """Base of every message on a FunnelStream topic."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    topic: ClassVar[str]
    schema_version: int
    event_id: uuid.UUID

    def to_bytes(self) -> bytes:
        """JSON bytes, serialized by pydantic-core directly (no intermediate dict)."""
        return self.__pydantic_serializer__.to_json(self)


class TrackedEvent(EventModel):
    """One Segment-style call (track, identify, page, ...) accepted by ingest. Topic `events`."""

    topic: ClassVar[str] = "events"
    schema_version: Literal[1] = 1
    source_id: uuid.UUID
    message_id: str
    type: EventType
    event: str | None = None
    name: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = None
    group_id: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime
    received_at: datetime
    sent_at: datetime | None = None
    bot: str | None = Field(default=None, description="Why ingest thinks a bot sent this; scores ignore it")

    @property
    def lead_key(self) -> str:
        """The partition key: one lead's events stay on one partition, in order."""
        return self.user_id or self.anonymous_id or self.message_id


class LeadScoreChanged(EventModel):
    """A lead's score or grade changed (`lead.score_changed`). Topic `lead-changes`, emitted by scoring."""

    topic: ClassVar[str] = "lead-changes"
    schema_version: Literal[1] = 1
    type: Literal["lead.score_changed"] = "lead.score_changed"
    lead_id: uuid.UUID
    user_id: str | None = None
    score: Decimal
    fit: Decimal
    engagement: Decimal
    grade: str
    previous_score: Decimal | None = None
    previous_grade: str | None = None
    stages: dict[str, str] = Field(default_factory=dict)
    predictions: dict[str, float] = Field(default_factory=dict, description="Funnel model -> predicted probability")
    previous_predictions: dict[str, float] = Field(default_factory=dict)
    rule_set_version: int
    cause_event_id: uuid.UUID | None = None
    occurred_at: datetime = Field(description="Event time of the change")


class LeadStageChanged(EventModel):
    """A lead moved between stages of a funnel model (`lead.stage_changed`). Topic `lead-changes`."""

    topic: ClassVar[str] = "lead-changes"
    schema_version: Literal[1] = 1
    type: Literal["lead.stage_changed"] = "lead.stage_changed"
    lead_id: uuid.UUID
    user_id: str | None = None
    model: str
    stage: str
    previous_stage: str | None = None
    kind: str = Field(description="entry, exit, sales, merge or rescore")
    reason: str | None = None
    rule_set_version: int
    cause_event_id: uuid.UUID | None = None
    occurred_at: datetime = Field(description="Event time of the change")


class LeadActivity(EventModel):
    """A human track event, resolved to its lead by scoring (`lead.activity`). Topic `lead-changes`.

    Nurture reacts to events (triggers, waits, exits) through these: scoring owns identity, so nurture
    never sees an event before the lead it belongs to exists, and sees it in the lead's order.
    """

    topic: ClassVar[str] = "lead-changes"
    schema_version: Literal[1] = 1
    type: Literal["lead.activity"] = "lead.activity"
    lead_id: uuid.UUID
    user_id: str | None = None
    name: str
    properties: dict[str, Any] = Field(default_factory=dict)
    source_id: uuid.UUID
    cause_event_id: uuid.UUID
    occurred_at: datetime


LeadChange = LeadScoreChanged | LeadStageChanged | LeadActivity


class ScoringTick(EventModel):
    """The passing of time, as an event on the `events` topic: scoring makes due time-driven changes."""

    topic: ClassVar[str] = "events"
    schema_version: Literal[1] = 1
    kind: Literal["tick"] = "tick"
    tick_at: datetime


M = TypeVar("M", bound=EventModel)


def decode(model: type[M], raw: bytes | None) -> M:
    """Parse one message of `model`'s topic; raise InvalidMessage naming what is wrong."""
    return decode_data(model, load(raw))


def load(raw: bytes | None) -> dict[str, Any]:
    """A message's JSON object, or InvalidMessage."""
    if raw is None:
        raise InvalidMessage("empty message value")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidMessage("message is not a JSON object")
    return data


def decode_data(model: type[M], data: dict[str, Any]) -> M:
    """Validate an already parsed message of `model`'s topic, upcasting the previous version."""
    version = data.get("schema_version")
    current = model.model_fields["schema_version"].default
    if version != current:
        upcast = _UPCASTERS.get((model.topic, version)) if version == current - 1 else None
        if upcast is None:
            accepted = f"{current - 1} or {current}" if (model.topic, current - 1) in _UPCASTERS else str(current)
            raise InvalidMessage(f"unsupported schema_version {version!r} for {model.topic} (accepts {accepted})")
        data = upcast(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise InvalidMessage(f"{where}: {first['msg']}") from None


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (topic, previous version) -> function lifting a message of that version to the current one.
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register_upcaster(topic: str, from_version: int, upcast: Upcaster) -> None:
    """Declare how a message of `from_version` becomes the current version, when a version is bumped."""
    _UPCASTERS[(topic, from_version)] = upcast


def derived_id(*parts: object) -> uuid.UUID:
    """A stable id derived from other ids, so that reprocessing yields the same id."""
    return uuid.uuid5(EVENT_NAMESPACE, "\x1f".join(str(p) for p in parts))


def decode_lead_change(raw: bytes | None) -> LeadChange:
    """A message of the `lead-changes` topic, by its `type`."""
    data = load(raw)
    kind = data.get("type")
    if kind == "lead.score_changed":
        return decode_data(LeadScoreChanged, data)
    if kind == "lead.stage_changed":
        return decode_data(LeadStageChanged, data)
    if kind == "lead.activity":
        return decode_data(LeadActivity, data)
    raise InvalidMessage(f"type: unknown lead change {kind!r}")


def decode_scoring_input(raw: bytes | None) -> TrackedEvent | ScoringTick:
    """A message of the `events` topic: a tracked event or a scoring tick."""
    data = load(raw)
    if data.get("kind") == "tick":
        return decode_data(ScoringTick, data)
    return decode_data(TrackedEvent, data)
