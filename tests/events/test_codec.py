"""Every inbound message is classified: a vehicle event, ignored, or malformed."""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rental_fsm.errors import MalformedEvent
from rental_fsm.events.codec import (
    MAX_BODY_BYTES,
    EventKind,
    IgnoredEvent,
    VehicleEvent,
    decode,
)


def envelope(type_: str = "VehicleStateRecorded", data: Any = None, **meta: Any) -> dict[str, Any]:
    metadata = {
        "id": "01F1FHJ7SHQK5MGF69B8K2346E",
        "type": type_,
        "schema_major_version": 2,
        "occurred_at": "2020-01-30T13:22:05Z",
        "flow_id": "804f2161-a15c-420f-8f21-61a15c320f68",
    }
    metadata.update(meta)
    if data is None:
        data = {"vehicle_id": "JQ7RP", "vehicle_state": {
            "ignition": {"timestamp": "2024-02-19T13:22:05Z", "value": "OFF"},
            "doors_status": {"timestamp": "2024-02-19T13:22:05.000Z", "value": "OPEN"},
        }}
    return {"metadata": metadata, "data": data}


def test_vehicle_state_recorded_is_decoded_with_its_properties() -> None:
    """Seed 000 shows each state value as {timestamp, value}."""
    event = decode(json.dumps(envelope()).encode())
    assert isinstance(event, VehicleEvent)
    assert event.kind is EventKind.STATE_RECORDED and event.vehicle_id == "JQ7RP"
    assert event.event_id == "01F1FHJ7SHQK5MGF69B8K2346E"
    assert event.envelope.flow_id == "804f2161-a15c-420f-8f21-61a15c320f68"
    assert event.envelope.occurred_at == datetime(2020, 1, 30, 13, 22, 5, tzinfo=timezone.utc)
    assert event.properties == {
        "ignition": {"timestamp": "2024-02-19T13:22:05.000Z", "value": "OFF"},
        "doors_status": {"timestamp": "2024-02-19T13:22:05.000Z", "value": "OPEN"},
    }


def test_flat_vehicle_state_is_accepted_too() -> None:
    data = {"vehicle_id": "JQ7RP", "central_lock": {"timestamp": "2024-02-19T13:22:05Z",
                                                   "value": "LOCKED"}}
    event = decode(envelope(data=data))
    assert isinstance(event, VehicleEvent)
    assert event.properties["central_lock"]["value"] == "LOCKED"


@pytest.mark.parametrize("name", ["CentralLockChanged", "CentralLockStatusChanged"])
def test_both_lock_event_names_become_a_central_lock_property(name: str) -> None:
    """Seed 000 names CentralLockChanged; the public docs show CentralLockStatusChanged."""
    data = {"vehicle_id": "JQ7RP",
            "central_lock": {"timestamp": "2024-02-19T13:22:07+01:00", "value": "LOCKED"}}
    event = decode(envelope(name, data))
    assert isinstance(event, VehicleEvent) and event.kind is EventKind.LOCK_CHANGED
    assert event.properties == {
        "central_lock": {"timestamp": "2024-02-19T12:22:07.000Z", "value": "LOCKED"}}


def test_vehicle_changed_carries_reasons_and_the_vehicle() -> None:
    data = {"vehicle_id": "JQ7RP", "reasons": ["RENTAL_STATUS_CHANGED"],
            "vehicle": {"rental_status": {"value": "IN_RENTAL"}}}
    event = decode(envelope("VehicleChanged", data))
    assert isinstance(event, VehicleEvent)
    assert event.reasons == ("RENTAL_STATUS_CHANGED",)
    assert event.vehicle == {"rental_status": {"value": "IN_RENTAL"}}


def test_unknown_types_and_newer_schema_versions_are_ignored_not_rejected() -> None:
    """Spec §8.6: a topic may gain event types; breaking changes come as a new major."""
    unknown = decode(envelope("TripStarted", {"vehicle_id": "JQ7RP"}))
    assert isinstance(unknown, IgnoredEvent) and "unknown event type" in unknown.reason
    newer = decode(envelope(schema_major_version=3))
    assert isinstance(newer, IgnoredEvent) and "newer" in newer.reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (json.dumps({"data": {}}).encode(), "missing 'metadata'"),
        (json.dumps(envelope(occurred_at="yesterday")).encode(), "bad occurred_at"),
        (json.dumps(envelope(occurred_at="2020-01-30T13:22:05")).encode(), "time zone"),
        (json.dumps(envelope(schema_major_version="2")).encode(), "positive int"),
        (json.dumps(envelope(id="")).encode(), "metadata.id"),
        (json.dumps(envelope(data={"vehicle_state": {}})).encode(), "vehicle_id"),
        (json.dumps(envelope(data={"vehicle_id": "../admin"})).encode(), "vehicle_id"),
        (json.dumps(envelope(data={"vehicle_id": "V1", "vehicle_state": {
            "ignition": {"timestamp": "nope", "value": "ON"}}})).encode(), "bad timestamp"),
        (json.dumps(envelope(data={"vehicle_id": "V1", "vehicle_state": {
            "ignition": "ON"}})).encode(), "needs 'timestamp' and 'value'"),
        (json.dumps(envelope("CentralLockChanged", {"vehicle_id": "V1"})).encode(),
         "no 'central_lock'"),
        (b"[" * 100000 + b"]" * 100000, "nested"),
    ],
)
def test_malformed_messages_raise_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        decode(body)


def test_huge_bodies_are_refused_before_parsing() -> None:
    body = json.dumps(envelope(data={"vehicle_id": "V1", "pad": "x" * MAX_BODY_BYTES}))
    with pytest.raises(MalformedEvent, match="exceeds"):
        decode(body)


def test_deep_nesting_inside_limits_of_the_parser_is_still_refused() -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = {"k": deep}
    body = envelope(data={"vehicle_id": "V1", "vehicle_state": deep})
    with pytest.raises(MalformedEvent, match="deeper than"):
        decode(body)
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    for form in (raw, raw.encode() if isinstance(raw, str) else raw):
        with pytest.raises(MalformedEvent, match="deeper than"):
            decode(form)
    nested: Any = []
    for _ in range(40):
        nested = [nested]
    with pytest.raises(MalformedEvent, match="deeper than"):
        decode(json.dumps(envelope(data={"vehicle_id": "V1", "x": nested})).encode())


@pytest.mark.parametrize("content_type", ["application/x-python-serialize",
                                          "application/x-yaml", "application/x-msgpack"])
def test_non_json_content_is_never_decoded(content_type: str) -> None:
    """No pickle anywhere: a pickle body is refused by its content type, never loaded."""
    body = pickle.dumps({"metadata": {}})
    with pytest.raises(MalformedEvent, match="not JSON; not decoded"):
        decode(body, content_type=content_type)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode()),
                 st.builds(lambda meta, data: json.dumps({"metadata": meta, "data": data}),
                           st.dictionaries(st.sampled_from(
                               ["id", "type", "schema_major_version", "occurred_at",
                                "flow_id"]), json_values), json_values)))
def test_any_input_is_classified_or_rejected_with_our_error(body: bytes | str) -> None:
    try:
        result = decode(body)
    except MalformedEvent:
        return
    assert isinstance(result, (VehicleEvent, IgnoredEvent))


def test_nan_in_an_event_is_malformed_not_stored() -> None:
    """NaN is not JSON (RFC 8259 §6): storing it would make the vehicle state unreadable
    to any other JSON reader, so the event is dead-lettered with the reason."""
    body = json.dumps(envelope(data={"vehicle_id": "V1", "vehicle_state": {
        "fuel_level": {"timestamp": "2024-02-19T13:22:05Z", "value": float("nan")}}}))
    assert "NaN" in body
    with pytest.raises(MalformedEvent, match="not JSON"):
        decode(body.encode())
