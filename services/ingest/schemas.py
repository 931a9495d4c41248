"""Request models of the Segment HTTP Tracking API, with Segment's field names."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_ID = 512


class SegmentMessage(BaseModel):
    """One identify/track/page/screen/group/alias call as Segment's libraries send it."""

    # Segment's libraries accept numeric ids and send them as JSON numbers: coerce them to strings.
    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)

    type: Literal["track", "identify", "page", "screen", "group", "alias"] | None = None
    userId: str | None = Field(default=None, max_length=MAX_ID)  # noqa: N815 - Segment's field names
    anonymousId: str | None = Field(default=None, max_length=MAX_ID)  # noqa: N815
    previousId: str | None = Field(default=None, max_length=MAX_ID)  # noqa: N815
    groupId: str | None = Field(default=None, max_length=MAX_ID)  # noqa: N815
    messageId: str | None = Field(default=None, max_length=MAX_ID)  # noqa: N815
    event: str | None = Field(default=None, max_length=MAX_ID)
    name: str | None = Field(default=None, max_length=MAX_ID)
    traits: dict[str, Any] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime | None = None
    sentAt: datetime | None = None  # noqa: N815
    writeKey: str | None = None  # noqa: N815

    @model_validator(mode="after")
    def _check_identity(self) -> SegmentMessage:
        if not self.userId and not self.anonymousId:
            raise ValueError("userId or anonymousId is required")
        if self.type == "track" and not self.event:
            raise ValueError("event is required for track")
        if self.type == "alias" and not self.previousId:
            raise ValueError("previousId is required for alias")
        if self.type == "group" and not self.groupId:
            raise ValueError("groupId is required for group")
        return self


class BatchRequest(BaseModel):
    """`POST /v1/batch`: up to 500 KB of messages, each with its own `type`."""

    model_config = ConfigDict(extra="allow")

    batch: list[dict[str, Any]]
    context: dict[str, Any] = Field(default_factory=dict)
    sentAt: datetime | None = None  # noqa: N815
    writeKey: str | None = None  # noqa: N815


class Accepted(BaseModel):
    success: Literal[True] = True
    rejected: list[int] | None = Field(
        default=None, description="Indexes of batch messages that were invalid and went to the dead-letter topic"
    )


class ErrorBody(BaseModel):
    success: Literal[False] = False
    error: str
    field: str | None = None
