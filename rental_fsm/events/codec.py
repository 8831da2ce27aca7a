"""Decode and validate OneAPI event envelopes (../shared/spec/oneapi.md §8.4, §8.5).

Every inbound message passes through :func:`decode` before anything else looks at it. It
either returns a :class:`VehicleEvent`, returns an :class:`IgnoredEvent` (a type we do not
handle, or a newer schema major version: the versioning rules let topics gain types), or
raises ``MalformedEvent`` with the reason, which the worker dead-letters. Only JSON is
ever decoded: a message declared as anything else is malformed, whatever its body.

Payload shapes the spec marks as assumptions are kept here, each in one place: the
``vehicle_state`` wrapper (readers also accept the properties flat beside ``vehicle_id``),
the ``central_lock`` field of CentralLockChanged, and the accepted event type names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import Any, NamedTuple

from .. import jsonfast
from ..errors import InvalidInput, MalformedEvent
from ..ids import check_id
from ..model import normalize_time, parse_time


class EventKind(str, Enum):
    STATE_RECORDED = "state_recorded"
    LOCK_CHANGED = "lock_changed"
    VEHICLE_CHANGED = "vehicle_changed"


#: Bus message types we handle, and what they mean. Seed 000 names CentralLockChanged;
#: the public docs show CentralLockStatusChanged: accept both (spec §"Facts").
EVENT_TYPES: Mapping[str, EventKind] = {
    "VehicleStateRecorded": EventKind.STATE_RECORDED,
    "CentralLockChanged": EventKind.LOCK_CHANGED,
    "CentralLockStatusChanged": EventKind.LOCK_CHANGED,
    "VehicleChanged": EventKind.VEHICLE_CHANGED,
    "VehicleChange": EventKind.VEHICLE_CHANGED,
}

#: Highest schema major version we understand; a newer one is a new topic (spec §8.6).
MAX_SCHEMA_MAJOR_VERSION = 2
#: Largest body we decode; OneAPI events are a few KB.
MAX_BODY_BYTES = 256 * 1024
#: Deepest JSON nesting we accept (a vehicle state is 3-4 levels deep).
MAX_DEPTH = 32
JSON_CONTENT_TYPES = frozenset({"application/json", "application/json; charset=utf-8"})
_REQUIRED_METADATA = ("id", "type", "schema_major_version", "occurred_at")


class Envelope(NamedTuple):
    """The validated ``metadata`` of an event plus the envelope exactly as received.

    NamedTuples here (``VehicleEvent`` too): immutable values, built for every event at
    a third of a frozen dataclass's cost."""

    event_id: str
    type: str
    schema_major_version: int
    occurred_at: datetime
    flow_id: str | None
    raw: Mapping[str, Any]

    def __repr__(self) -> str:  # without the raw envelope, as long as the event
        return (f"Envelope(event_id={self.event_id!r}, type={self.type!r}, "
                f"schema_major_version={self.schema_major_version!r}, "
                f"occurred_at={self.occurred_at!r}, flow_id={self.flow_id!r})")


class VehicleEvent(NamedTuple):
    """An event about one vehicle, with its state properties normalised.

    ``properties`` maps a vehicle state property name to ``{"timestamp", "value"}`` with
    the timestamp in canonical RFC 3339 form, whatever the event type: a CentralLockChanged
    becomes ``{"central_lock": {...}}`` so one merge path serves every event.
    """

    envelope: Envelope
    kind: EventKind
    vehicle_id: str
    properties: Mapping[str, Mapping[str, Any]] = MappingProxyType({})
    reasons: tuple[str, ...] = ()
    vehicle: Mapping[str, Any] | None = None

    @property
    def event_id(self) -> str:
        return self.envelope.event_id


@dataclass(frozen=True)
class IgnoredEvent:
    """A well-formed event we do not act on; counted and logged once per type."""

    envelope: Envelope
    reason: str


def decode(
    body: bytes | str | Mapping[str, Any], *, content_type: str | None = "application/json"
) -> VehicleEvent | IgnoredEvent:
    """Validate one inbound message.

    Args:
        body: the raw message body, or an already parsed JSON object.
        content_type: the AMQP content type; anything but JSON is refused undecoded.

    Raises:
        MalformedEvent: with a reason naming what is wrong.
    """
    envelope_dict = _parse(body, content_type)
    envelope = _envelope(envelope_dict)
    kind = EVENT_TYPES.get(envelope.type)
    if kind is None:
        return IgnoredEvent(envelope, f"unknown event type {envelope.type!r}")
    if envelope.schema_major_version > MAX_SCHEMA_MAJOR_VERSION:
        return IgnoredEvent(
            envelope,
            f"schema major version {envelope.schema_major_version} of {envelope.type} is "
            f"newer than {MAX_SCHEMA_MAJOR_VERSION}",
        )
    data = envelope_dict.get("data")
    # (dict, Mapping) on the event path: a parsed body is made of dicts, and the exact
    # type check answers before the Mapping ABC's, which is several times slower.
    if not isinstance(data, (dict, Mapping)):
        raise MalformedEvent(f"{envelope.type} {envelope.event_id}: 'data' must be an object")
    vehicle_id = _vehicle_id(data, envelope)
    if kind is EventKind.STATE_RECORDED:
        state = data.get("vehicle_state", None)
        if state is None:  # flat form: properties beside vehicle_id
            state = {k: v for k, v in data.items() if k != "vehicle_id"}
        return VehicleEvent(envelope, kind, vehicle_id, _properties(state, envelope))
    if kind is EventKind.LOCK_CHANGED:
        lock = data.get("central_lock")
        if lock is None:
            raise MalformedEvent(f"{envelope.type} {envelope.event_id}: no 'central_lock'")
        return VehicleEvent(
            envelope, kind, vehicle_id, _properties({"central_lock": lock}, envelope)
        )
    reasons = data.get("reasons", [])
    vehicle = data.get("vehicle")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise MalformedEvent(f"VehicleChanged {envelope.event_id}: 'reasons' must be strings")
    if vehicle is not None and not isinstance(vehicle, Mapping):
        raise MalformedEvent(f"VehicleChanged {envelope.event_id}: 'vehicle' must be an object")
    return VehicleEvent(envelope, kind, vehicle_id, {}, tuple(reasons), vehicle)


def _parse(body: bytes | str | Mapping[str, Any], content_type: str | None) -> Mapping[str, Any]:
    if content_type is not None and content_type.strip().lower() not in JSON_CONTENT_TYPES:
        raise MalformedEvent(f"content type {content_type!r} is not JSON; not decoded")
    if isinstance(body, Mapping):
        parsed: Any = body
    else:
        size = len(body.encode() if isinstance(body, str) else body)
        if size > MAX_BODY_BYTES:
            raise MalformedEvent(f"body of {size} bytes exceeds {MAX_BODY_BYTES}")
        try:
            parsed = jsonfast.loads(body)
        except RecursionError:
            raise MalformedEvent("JSON nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedEvent(f"not JSON: {exc}") from None
    if not isinstance(parsed, (dict, Mapping)):
        raise MalformedEvent(f"envelope must be a JSON object, got {type(parsed).__name__}")
    if _may_nest_deeper(body) and _depth(parsed) > MAX_DEPTH:
        raise MalformedEvent(f"JSON nested deeper than {MAX_DEPTH} levels")
    return parsed


def _may_nest_deeper(body: bytes | str | Mapping[str, Any]) -> bool:
    """False when the body has too few brackets to nest deeper than MAX_DEPTH: counting
    them is cheap, walking the parsed value is not (it is skipped for every usual event)."""
    if isinstance(body, Mapping):
        return True
    if isinstance(body, str):
        return body.count("{") + body.count("[") > MAX_DEPTH
    return body.count(b"{") + body.count(b"[") > MAX_DEPTH


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level
        if isinstance(item, Mapping):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _envelope(envelope: Mapping[str, Any]) -> Envelope:
    metadata = envelope.get("metadata")
    if not isinstance(metadata, (dict, Mapping)):
        raise MalformedEvent("missing 'metadata' object")
    missing = [name for name in _REQUIRED_METADATA if name not in metadata]
    if missing:
        raise MalformedEvent(f"metadata lacks {', '.join(missing)}")
    event_id, event_type = metadata["id"], metadata["type"]
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 128:
        raise MalformedEvent("metadata.id must be a non-empty string of at most 128 chars")
    if not isinstance(event_type, str) or not 0 < len(event_type) <= 128:
        raise MalformedEvent(f"event {event_id}: metadata.type must be a short string")
    version = metadata["schema_major_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise MalformedEvent(f"event {event_id}: schema_major_version must be a positive int")
    try:
        occurred_at = parse_time(metadata["occurred_at"])
    except (ValueError, TypeError) as exc:
        raise MalformedEvent(f"event {event_id}: bad occurred_at: {exc}") from None
    flow_id = metadata.get("flow_id")
    if flow_id is not None and not isinstance(flow_id, str):
        raise MalformedEvent(f"event {event_id}: flow_id must be a string")
    return Envelope(event_id, event_type, version, occurred_at, flow_id, envelope)


def _vehicle_id(data: Mapping[str, Any], envelope: Envelope) -> str:
    try:
        return check_id("vehicle_id", data.get("vehicle_id"))
    except InvalidInput as exc:
        raise MalformedEvent(f"{envelope.type} {envelope.event_id}: {exc}") from None


def _properties(state: Any, envelope: Envelope) -> dict[str, dict[str, Any]]:
    where = f"{envelope.type} {envelope.event_id}"
    if not isinstance(state, (dict, Mapping)):
        raise MalformedEvent(f"{where}: vehicle state must be an object")
    properties: dict[str, dict[str, Any]] = {}
    for name, prop in state.items():
        if not isinstance(name, str) or not name.replace("_", "").isalnum() or len(name) > 64:
            raise MalformedEvent(f"{where}: bad property name {str(name)[:40]!r}")
        if not isinstance(prop, (dict, Mapping)) or "timestamp" not in prop or "value" not in prop:
            raise MalformedEvent(f"{where}: property {name!r} needs 'timestamp' and 'value'")
        try:
            stamp = normalize_time(prop["timestamp"])
        except (ValueError, TypeError) as exc:
            raise MalformedEvent(f"{where}: property {name!r} has a bad timestamp: {exc}") from None
        properties[name] = {"timestamp": stamp, "value": prop["value"]}
    return properties
