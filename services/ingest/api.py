"""HTTP routes of the collection edge: the Segment HTTP Tracking API."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import gc
import logging
import math
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import prometheus_client
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.ingest.ratelimit import RateLimiter
from services.ingest.repository import SourceCache
from services.ingest.schemas import Accepted, BatchRequest, ErrorBody, SegmentMessage
from services.ingest.service import encode_event
from shared.deadletter import DeadLetter, send_dead_letters
from shared.events import EventType, TrackedEvent
from shared.kafka import Topics
from shared.metrics import EVENTS_PUBLISHED, PUBLISH_FAILURES, RATE_LIMITED
from shared.settings import IngestSettings

log = logging.getLogger(__name__)

SUCCESS = b'{"success":true}'
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
EVENT_TYPES: tuple[EventType, ...] = ("identify", "track", "page", "screen", "group", "alias")


class IngestError(Exception):
    """A request ingest refuses; rendered as `{"success": false, "error": ..., "field": ...}`."""

    def __init__(self, status: int, error: str, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(error)
        self.status, self.error, self.field, self.headers = status, error, field, headers


def error_response(exc: IngestError) -> JSONResponse:
    body = ErrorBody(error=exc.error, field=exc.field).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def ingest_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, IngestError):
        raise exc
    return error_response(exc)


@dataclass
class IngestState:
    settings: IngestSettings
    producer: AIOKafkaProducer
    sources: SourceCache
    topics: Topics
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.settings.rate_limit_per_second, self.settings.rate_limit_burst)


async def get_state(request: Request) -> IngestState:
    state: IngestState = request.app.state.ingest
    return state


StateDep = Annotated[IngestState, Depends(get_state)]


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, exactly as sent; 413 past `limit` bytes without reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise IngestError(413, f"body exceeds {limit // 1024} KB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise IngestError(413, f"body exceeds {limit // 1024} KB")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> tuple[dict[str, Any], int]:
    """The request body as a JSON object and its decompressed size; gunzipped if sent so. 413 past `limit`
    bytes, sent or decompressed: the inflater stops there, so a gzip bomb costs at most `limit` bytes."""
    raw = await read_body(request, limit)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        try:
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error:
            raise IngestError(400, "body is not valid gzip") from None
    if len(raw) > limit:
        raise IngestError(413, f"body exceeds {limit // 1024} KB")
    return json_object(raw), len(raw)


def json_object(raw: bytes) -> dict[str, Any]:
    """A body that must be one JSON object; 400 naming what is wrong otherwise."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise IngestError(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise IngestError(400, "body must be a JSON object")
    return data


def write_key_from(request: Request, body: dict[str, Any]) -> str:
    """HTTP Basic with the write key as user name (Segment's libraries), else `writeKey` in the body."""
    header = request.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        try:
            user = base64.b64decode(header[6:], validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            raise IngestError(401, "malformed Basic authorization header") from None
        if user:
            return user
    key = body.get("writeKey")
    if isinstance(key, str) and key:
        return key
    raise IngestError(401, "missing write key (HTTP Basic user name or writeKey)", "writeKey")


async def authenticate(state: IngestState, request: Request, body: dict[str, Any]) -> uuid.UUID:
    key = write_key_from(request, body)
    try:
        source_id = await state.sources.source_for(key)
    except (SQLAlchemyError, OSError) as exc:
        # Unknown keys are looked up in PostgreSQL; while it is unreachable the client must retry.
        log.warning("write key lookup failed: %s: %s", type(exc).__name__, exc)
        raise IngestError(503, "temporarily unavailable, retry later", headers={"Retry-After": "5"}) from None
    if source_id is None:
        raise IngestError(401, "unknown or revoked write key", "writeKey")
    return source_id


def check_rate(state: IngestState, source_id: uuid.UUID, events: int) -> None:
    """429 with Retry-After when the source sent more than its rate allows (per worker)."""
    wait = state.limiter.retry_after(source_id, events, time.monotonic())
    if wait > 0:
        RATE_LIMITED.inc(events)
        raise IngestError(429, "rate limit exceeded for this write key", headers={"Retry-After": str(math.ceil(wait))})


RESERVED_PREFIX = "funnelstream."


def parse_message(
    data: dict[str, Any], event_type: EventType, where: str = "", *, signed: bool = False
) -> SegmentMessage:
    """Validate one Segment message. Event names starting with `funnelstream.` (sales decisions) change
    funnel stages, so only signed webhooks may send them, never a browser's public write key."""
    try:
        typed = data if data.get("type") == event_type else {**data, "type": event_type}
        message = SegmentMessage.model_validate(typed)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise IngestError(400, f"{where}{field + ': ' if field else ''}{msg}", where + field or None) from None
    if not signed and message.event and message.event.startswith(RESERVED_PREFIX):
        error = f"{where}event: names starting with {RESERVED_PREFIX!r} are accepted only through signed webhooks"
        raise IngestError(400, error, f"{where}event")
    return message


Record = tuple[bytes, bytes]  # an encoded event: partition key, JSON value


def encode(
    message: SegmentMessage,
    event_type: EventType,
    source_id: uuid.UUID,
    received_at: datetime,
    sent_at: datetime | None,
    where: str = "",
) -> Record:
    """`encode_event`, with a 400 for times the clock-skew correction cannot represent."""
    try:
        return encode_event(message, event_type, source_id, received_at, sent_at)
    except OverflowError:
        error = f"{where}timestamp: out of range once corrected by sentAt"
        raise IngestError(400, error, f"{where}timestamp") from None


@functools.lru_cache(maxsize=1 << 16)
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


async def publish(state: IngestState, events: list[TrackedEvent], endpoint: str) -> None:
    """Send and wait for the broker's acknowledgement of every event, or answer 503 after the deadline."""
    records = [(e.lead_key.encode(), e.to_bytes()) for e in events]
    await publish_records(state, records, Counter(e.type for e in events), endpoint)


async def publish_records(state: IngestState, records: list[Record], types: Mapping[str, int], endpoint: str) -> None:
    """`publish` for encoded events; `types` counts them by event type for the metrics."""
    futures: list[asyncio.Future[Any]] = []
    try:
        # asyncio.timeout, not wait_for: no extra task per request on the hot path.
        async with asyncio.timeout(state.settings.produce_timeout_seconds):
            topic, send = state.topics.events, state.producer.send
            # The partition the producer's default partitioner would choose (murmur2 of the key), so one
            # lead stays on one partition whoever publishes it; computed here because leads repeat and
            # aiokafka's pure-Python hash and partition lists cost a few µs per event.
            partitions = sorted(await state.producer.partitions_for(topic))
            count = len(partitions)
            for key, value in records:
                futures.append(await send(topic, value, key, partitions[_key_hash(key) % count]))
            # One by one rather than gather: the first wait usually covers all (one produce request),
            # and a gather would add a callback per event.
            for future in futures:
                await future
    except BaseException as exc:
        for future in futures:  # nobody awaits the rest now: drop them, mark their errors as seen
            if not future.cancel() and not future.cancelled():
                future.exception()
        if not isinstance(exc, Exception):
            raise  # the request was cancelled
        # Any failure means "not in Kafka": the client must retry.
        PUBLISH_FAILURES.labels(endpoint).inc(len(records))
        log.warning("publish of %d events failed: %s: %s", len(records), type(exc).__name__, exc)
        raise IngestError(503, "event store unavailable, retry later", headers={"Retry-After": "5"}) from None
    for event_type, count in types.items():
        _published(event_type).inc(count)


@functools.cache
def _published(event_type: str) -> prometheus_client.Counter:
    """The counter child of one type: `labels()` costs more than the increment, on every request."""
    return EVENTS_PUBLISHED.labels(event_type)


def _schema(model: type[Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Invalid input; `field` names it"},
    401: {"model": ErrorBody, "description": "Missing, unknown or revoked write key"},
    413: {"model": ErrorBody, "description": "Body over the limit, as sent or decompressed"},
    429: {"model": ErrorBody, "description": "Rate limit of the write key exceeded; see Retry-After"},
    503: {"model": ErrorBody, "description": "The broker did not acknowledge in time; retry"},
}


async def track_single(request: Request, event_type: EventType) -> Response:
    """One identify/track/page/screen/group/alias call: 200 only once the broker acknowledged it."""
    state: IngestState = request.app.state.ingest
    received_at = datetime.now(UTC)
    data, _ = await read_json(request, MAX_EVENT_BYTES)
    source_id = await authenticate(state, request, data)
    message = parse_message(data, event_type)
    check_rate(state, source_id, 1)
    record = encode(message, event_type, source_id, received_at, None)
    await publish_records(state, [record], {event_type: 1}, event_type)
    return Response(SUCCESS, media_type="application/json")


async def track_batch(request: Request) -> Response:
    """A batch: valid messages are published, invalid ones dead-lettered and listed by index."""
    state: IngestState = request.app.state.ingest
    received_at = datetime.now(UTC)
    data, size = await read_json(request, MAX_BATCH_BYTES)
    source_id = await authenticate(state, request, data)
    items = data.get("batch")
    if not isinstance(items, list):
        raise IngestError(400, "batch: must be a list of messages", "batch")
    check_rate(state, source_id, len(items))  # before any per-event work
    try:  # the envelope only: every item is validated on its own below
        envelope = BatchRequest.model_validate({**data, "batch": []})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise IngestError(400, first["msg"], ".".join(str(p) for p in first["loc"])) from None
    records: list[Record] = []
    types: dict[str, int] = {}
    rejected: list[DeadLetter] = []
    indexes: list[int] = []
    context, sent_at = envelope.context, envelope.sentAt
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise IngestError(400, f"batch.{index}: must be a JSON object")
            event_type = item.get("type")
            if event_type not in EVENT_TYPES:
                raise IngestError(400, f"batch.{index}.type: must be one of {', '.join(EVENT_TYPES)}")
            # Only a body over the event limit can hold an event over it: skip the re-encoding otherwise.
            if size > MAX_EVENT_BYTES and len(orjson.dumps(item)) > MAX_EVENT_BYTES:
                raise IngestError(400, f"batch.{index}: event exceeds {MAX_EVENT_BYTES // 1024} KB")
            if context:
                own = item.get("context")
                if own is not None and not isinstance(own, dict):
                    raise IngestError(400, f"batch.{index}.context: must be an object")
                item = {**item, "context": {**context, **(own or {})}}
            where = f"batch.{index}."
            message = parse_message(item, event_type, where=where)
            records.append(encode(message, event_type, source_id, received_at, sent_at, where))
            types[event_type] = types.get(event_type, 0) + 1
        except IngestError as exc:
            indexes.append(index)
            rejected.append(
                DeadLetter(key=None, value=orjson.dumps(item), reason=exc.error, original_topic=state.topics.events)
            )
    await publish_records(state, records, types, "batch")
    if rejected:
        try:
            await asyncio.wait_for(
                send_dead_letters(state.producer, state.topics.dead_letter, "ingest", rejected),
                timeout=state.settings.produce_timeout_seconds,
            )
        except Exception as exc:  # noqa: BLE001 - the client must know these were not kept either
            raise IngestError(503, f"could not record rejected events: {exc}", headers={"Retry-After": "5"}) from None
    if not indexes:
        return Response(SUCCESS, media_type="application/json")
    return Response(Accepted(rejected=indexes).model_dump_json(), media_type="application/json")


HOT_PATHS: dict[str, EventType | None] = {**{f"/v1/{t}": t for t in EVENT_TYPES}, "/v1/batch": None}


GC_GEN0_THRESHOLD = 10_000


@functools.cache  # once per process
def tune_gc() -> None:
    """Freeze what start-up loaded and collect the young generation less often.

    A batch allocates a few thousand dicts and lists that die with the request. With the defaults
    (700, 10, 10) a worker under `/v1/batch` load collected 2,400 times and spent a third of its CPU
    in the collector, mostly rescanning the ~150,000 objects of its imported modules in full
    collections (~180 ms each); frozen, and with a gen-0 threshold of 10,000, 1-2 % (bench/ingest.py).
    """
    gc.collect()  # garbage from start-up must not be frozen along with the rest
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


class TrackingFastPath:
    """Serves `POST /v1/*` straight from the ASGI scope with the same handlers as the documented routes.

    FastAPI's routing and dependency machinery cost about half the CPU of a single-event request
    (measured with py-spy under wrk); the routes below stay for the OpenAPI spec and as the fallback.
    Once the app has started it also tunes the garbage collector for this traffic (`tune_gc`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, _tune_gc_after_startup(send))
            return
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST" or path not in HOT_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        event_type = HOT_PATHS[path]
        try:
            response = await (track_single(request, event_type) if event_type else track_batch(request))
        except IngestError as exc:
            response = error_response(exc)
        await response(scope, receive, send)


def _tune_gc_after_startup(send: Send) -> Send:
    async def send_and_tune(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            tune_gc()  # before answering: the server takes no request until start-up completes
        await send(message)

    return send_and_tune


def tracking_router() -> APIRouter:
    """The documented routes (OpenAPI); TrackingFastPath answers the same paths first in the apps."""
    router = APIRouter(tags=["tracking"])

    def add_single(event_type: EventType) -> None:
        async def endpoint(request: Request) -> Response:
            return await track_single(request, event_type)

        router.add_api_route(
            f"/v1/{event_type}",
            endpoint,
            methods=["POST"],
            response_model=Accepted,
            response_model_exclude_none=True,
            responses=RESPONSES,
            openapi_extra=_schema(SegmentMessage),
            summary=f"Segment {event_type} call",
            name=f"v1_{event_type}",
        )

    for event_type in EVENT_TYPES:
        add_single(event_type)

    @router.post(
        "/v1/batch",
        response_model=Accepted,
        response_model_exclude_none=True,
        responses=RESPONSES,
        openapi_extra=_schema(BatchRequest),
        summary="Segment batch call; invalid messages are dead-lettered, the rest accepted",
    )
    async def batch(request: Request) -> Response:
        return await track_batch(request)

    return router
