"""Event schema versions: the current and the previous version are accepted, nothing else."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Literal

import orjson
import pytest

from shared.events import EventModel, InvalidMessage, LeadScoreChanged, decode, register_upcaster


class Renamed(EventModel):
    """Version 2 of a test topic renamed `name` to `full_name`."""

    topic: ClassVar[str] = "test-renamed"
    schema_version: Literal[2] = 2
    full_name: str


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in data.items() if k != "name"}, "schema_version": 2, "full_name": data["name"]}


register_upcaster(Renamed.topic, 1, _v1_to_v2)


def test_previous_version_is_upcast_and_current_passes() -> None:
    event_id = uuid.uuid4()
    old = orjson.dumps({"schema_version": 1, "event_id": str(event_id), "name": "Ann"})
    new = orjson.dumps({"schema_version": 2, "event_id": str(event_id), "full_name": "Ann"})
    assert decode(Renamed, old) == decode(Renamed, new) == Renamed(event_id=event_id, full_name="Ann")


@pytest.mark.parametrize("version", [0, 3, None, "2"])
def test_other_versions_are_invalid_with_a_reason(version: object) -> None:
    raw = orjson.dumps({"schema_version": version, "event_id": str(uuid.uuid4()), "full_name": "x"})
    with pytest.raises(InvalidMessage, match=r"unsupported schema_version .* \(accepts 1 or 2\)"):
        decode(Renamed, raw)


def test_a_topic_without_upcaster_accepts_only_its_version() -> None:
    with pytest.raises(InvalidMessage, match=r"accepts 1\)"):
        decode(LeadScoreChanged, orjson.dumps({"schema_version": 0}))


@pytest.mark.parametrize("raw", [None, b"", b"[]", b"{bad"])
def test_garbage_is_invalid_not_a_crash(raw: bytes | None) -> None:
    with pytest.raises(InvalidMessage):
        decode(LeadScoreChanged, raw)
