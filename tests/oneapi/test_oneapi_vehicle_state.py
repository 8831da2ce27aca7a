"""The typed vehicle state, capabilities and command names (pure, no HTTP)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rental_fsm.oneapi import Capabilities, CentralLock, Command, Position, VehicleState

TS = "2024-02-19T13:22:05Z"
TS_MS = "2024-02-19T13:22:06.000Z"


def prop(value: object, ts: str = TS) -> dict[str, object]:
    return {"timestamp": ts, "value": value}


def test_seed_000_state_parses_with_its_own_timestamp_per_property() -> None:
    state = VehicleState.from_json(
        {
            "ignition": prop("OFF"),
            "windows_status": prop("CLOSED"),
            "doors_status": prop("OPEN", TS_MS),
            "central_lock": prop("LOCKED"),
            "position": prop({"lat": 50.834, "lon": 8.0219}),
            "driving_enabled": prop(False),
        }
    )
    assert state.ignition == "OFF" and state.windows_status == "CLOSED"
    assert state.doors_status == "OPEN"
    assert state["doors_status"].timestamp == datetime(2024, 2, 19, 13, 22, 6, tzinfo=timezone.utc)
    assert state.central_lock == CentralLock.LOCKED
    assert state.position == Position(50.834, 8.0219)
    assert state.driving_enabled is False
    assert state.vehicle_key is None  # absent, not an error
    assert VehicleState.from_json(state.to_json()) == state


def test_unknown_enum_values_and_unknown_properties_are_kept() -> None:
    state = VehicleState.from_json(
        {"central_lock": prop("JAMMED"), "top_case_lid": prop("OPEN"), "cellular": prop(3)}
    )
    assert state.central_lock == "JAMMED"
    assert state.value("top_case_lid") == "OPEN" and state.value("cellular") == 3


def test_both_fuel_level_names_are_accepted_and_the_newer_wins() -> None:
    old = VehicleState.from_json({"fuel_level_in_percent": prop(40)})
    assert old.fuel_level is not None and old.fuel_level.value == 40
    both = VehicleState.from_json(
        {
            "fuel_level_in_percent": prop(40),
            "state_of_charge_or_fuel_level_in_percent": prop(55, TS_MS),
        }
    )
    assert both.fuel_level is not None and both.fuel_level.value == 55


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ignition": prop("OFF", "19.02.2024")}, "ignition: bad timestamp"),
        ({"ignition": prop("OFF", "2024-02-19T13:22:05")}, "without a time zone"),
        ({"ignition": {"value": "OFF"}}, "ignition: expected"),
        ({"ignition": prop(True)}, "ignition: expected a string"),
        ({"driving_enabled": prop("yes")}, "driving_enabled: expected a boolean"),
        ({"fuel_level_in_percent": prop("full")}, "expected a number"),
        ({"position": prop({"lat": 1})}, "position: needs numeric lat and lon"),
        ([], "expected an object"),
    ],
)
def test_bad_states_raise_a_clear_value_error(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VehicleState.from_json(data)


def test_capabilities_helpers() -> None:
    caps = Capabilities.from_json(
        {
            "commands": ["UNLOCK_AND_ENABLE_DRIVING", "REQUEST_VEHICLE_STATE"],
            "vehicle_state": ["DOORS_STATUS", "FUEL_LEVEL_IN_PERCENT"],
        }
    )
    assert caps.supports("UNLOCK_AND_ENABLE_DRIVING")
    assert caps.supports(Command.UNLOCK_AND_ENABLE_DRIVING)
    assert caps.supports("request-vehicle-state")
    assert not caps.supports(Command.LOCK_CENTRAL_LOCK)
    assert caps.can_read("DOORS_STATUS") and caps.can_read("doors_status")
    assert not caps.can_read("WINDOWS_STATUS")
    assert caps.can_read("STATE_OF_CHARGE_OR_FUEL_LEVEL_IN_PERCENT")  # either name
    with pytest.raises(ValueError):
        Capabilities.from_json({"commands": "ALL"})


def test_command_values_and_capability_names() -> None:
    assert Command.UNLOCK_AND_ENABLE_DRIVING.value == "unlock-and-enable-driving"
    assert Command.LOCK_AND_DISABLE_DRIVING.capability == "LOCK_AND_DISABLE_DRIVING"
    assert Command.from_capability("REQUEST_VEHICLE_STATE") is Command.REQUEST_VEHICLE_STATE
    assert len(Command) == 7

_values = {
    "central_lock": st.sampled_from(["LOCKED", "UNLOCKED"]) | st.text(min_size=1),
    "ignition": st.sampled_from(["ON", "OFF"]),
    "driving_enabled": st.booleans(),
    "state_of_charge_or_fuel_level_in_percent": st.integers(0, 100),
    "position": st.builds(
        lambda lat, lon: {"lat": lat, "lon": lon},
        st.floats(-90, 90, allow_nan=False),
        st.floats(-180, 180, allow_nan=False),
    ),
}


@given(
    st.fixed_dictionaries({}, optional=_values),
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.just(timezone.utc),
    ),
)
def test_any_valid_state_round_trips(values: dict[str, object], when: datetime) -> None:
    when = when.replace(microsecond=when.microsecond // 1000 * 1000)  # wire has ms
    wire = {name: {"timestamp": when.isoformat().replace("+00:00", "Z"), "value": value}
            for name, value in values.items()}
    state = VehicleState.from_json(wire)
    assert VehicleState.from_json(state.to_json()) == state
    assert all(prop.timestamp == when for prop in state.values())


def test_parsed_capabilities_are_remembered_by_content_and_bad_ones_still_refused() -> None:
    from rental_fsm.oneapi import vehicle_state

    data = {"commands": ["LOCK_CENTRAL_LOCK"], "vehicle_state": ["DOORS_STATUS", "IGNITION"]}
    first = Capabilities.from_json(data)
    again = Capabilities.from_json({k: list(v) for k, v in data.items()})
    assert again is first  # the same content, parsed once
    assert again.can_read("doors_status") and again.supports("LOCK_CENTRAL_LOCK")
    assert Capabilities.from_json({"commands": [], "vehicle_state": []}) != first
    # a string is not the list of its letters, even once that list is known
    Capabilities.from_json({"commands": ["A", "B"], "vehicle_state": []})
    for bad in ({"commands": "AB", "vehicle_state": []},
                {"commands": ["A", 1], "vehicle_state": []},
                {"commands": [["A"]], "vehicle_state": []},
                {"commands": ["A"], "vehicle_state": [{"x": 1}]}):
        with pytest.raises(ValueError, match="must be lists"):
            Capabilities.from_json(bad)
    # bounded: a flood of distinct sets restarts the cache rather than growing it
    for i in range(vehicle_state._KNOWN_CAPABILITIES_MAX + 10):
        Capabilities.from_json({"commands": [f"C{i}"], "vehicle_state": []})
    assert len(vehicle_state._KNOWN_CAPABILITIES) <= vehicle_state._KNOWN_CAPABILITIES_MAX
    assert Capabilities.from_json(data) == first
