"""Every endpoint of the client against the simulator over real HTTP."""

from __future__ import annotations

import pytest

from rental_fsm.errors import CommandNotSupported, ResourceConflict, ValidationFailed
from rental_fsm.oneapi import (
    IN_RENTAL,
    NOT_IN_RENTAL,
    CentralLock,
    Command,
    OneAPIClient,
    Position,
)
from rental_fsm.simulator import CLOUDBOXX_WITH_KEY, MOPED, Simulator

EXPECTED = {
    Command.UNLOCK_AND_ENABLE_DRIVING: ("UNLOCKED", True),
    Command.UNLOCK_CENTRAL_LOCK: ("UNLOCKED", False),
    Command.ENABLE_DRIVING: ("LOCKED", True),
    Command.LOCK_AND_DISABLE_DRIVING: ("LOCKED", False),
    Command.LOCK_CENTRAL_LOCK: ("LOCKED", False),
    Command.DISABLE_DRIVING: ("LOCKED", False),
    Command.REQUEST_VEHICLE_STATE: ("LOCKED", False),
}


@pytest.mark.parametrize("command", list(Command))
def test_every_command_returns_the_new_state_and_its_flow_id(
    sim: Simulator, client: OneAPIClient, command: Command
) -> None:
    result = client.command("CAR1", command)
    lock, driving = EXPECTED[command]
    assert (result.value.central_lock, result.value.driving_enabled) == (lock, driving)
    assert result.status == 200
    assert result.flow_id
    # The event the command caused carries the same flow id (oneapi.md §3.1).
    recorded = [e for e in sim.published if e["metadata"]["type"] == "VehicleStateRecorded"]
    assert recorded[-1]["metadata"]["flow_id"] == result.flow_id


def test_separate_commands_on_a_car_without_combined_ones(
    sim: Simulator, client: OneAPIClient
) -> None:
    with pytest.raises(CommandNotSupported) as info:
        client.command("SEP1", Command.UNLOCK_AND_ENABLE_DRIVING)
    assert info.value.vehicle_id == "SEP1"
    client.command("SEP1", Command.UNLOCK_CENTRAL_LOCK)
    state = client.command("SEP1", Command.ENABLE_DRIVING).value
    assert (state.central_lock, state.driving_enabled) == (CentralLock.UNLOCKED, True)


def test_moped_has_no_central_lock(client: OneAPIClient) -> None:
    vehicle = client.get_vehicle("MOP1").value
    assert vehicle.capabilities.supports(Command.ENABLE_DRIVING)
    assert not vehicle.capabilities.supports("LOCK_CENTRAL_LOCK")
    assert not vehicle.capabilities.can_read("DOORS_STATUS")
    with pytest.raises(CommandNotSupported):
        client.command("MOP1", Command.LOCK_CENTRAL_LOCK)
    state = client.command("MOP1", Command.ENABLE_DRIVING).value
    assert state.driving_enabled is True
    assert "central_lock" not in state and "doors_status" not in state


def test_rental_status_with_and_without_a_fresh_state(
    sim: Simulator, client: OneAPIClient
) -> None:
    result = client.set_rental_status("KEY1", IN_RENTAL)
    assert result.value is not None and result.value.vehicle_key == "PRESENT"
    assert client.get_vehicle("KEY1").value.rental_status == IN_RENTAL
    quiet = client.set_rental_status("KEY1", NOT_IN_RENTAL, request_new_vehicle_state=False)
    assert quiet.value is None and quiet.status == 204 and quiet.flow_id
    changed = [e for e in sim.published if e["metadata"]["type"] == "VehicleChanged"]
    assert [e["data"]["vehicle"]["rental_status"]["value"] for e in changed] == [
        IN_RENTAL,
        NOT_IN_RENTAL,
    ]
    assert changed[0]["metadata"]["flow_id"] == result.flow_id
    with pytest.raises(ValidationFailed):
        client.set_rental_status("KEY1", "PARKED")


def test_get_vehicle_and_latest_state(sim: Simulator, client: OneAPIClient) -> None:
    vehicle = client.get_vehicle("KEY1").value
    assert vehicle.id == "KEY1" and vehicle.life_status == "ONLINE"
    assert vehicle.rental_status == NOT_IN_RENTAL
    assert vehicle.capabilities.can_read("vehicle_key")
    assert vehicle.capabilities.can_read("CLOUDBOXX_CARDHOLDER_CARDS")
    state = client.latest_vehicle_state("KEY1").value
    assert isinstance(state.position, Position)
    assert state.ignition == "OFF" and state.parking_brake_engaged is True
    assert state.fuel_level is not None and state.fuel_level.value == 80


def test_vehicle_list_follows_the_cursor_over_every_page(
    sim: Simulator, client: OneAPIClient
) -> None:
    for _ in range(3):
        sim.add_vehicle("keyless")
    ids = [vehicle.id for vehicle in client.iter_vehicles(limit=3)]
    assert ids == list(sim.fleet.vehicles)
    assert len(ids) == 7
    assert sum(1 for _, path, _ in sim.requests if path == "/vehicles") == 3


def test_add_vehicle_setup_and_brand_listings(sim: Simulator, client: OneAPIClient) -> None:
    models = client.available_vehicle_models("CLOUDBOXX").value
    assert CLOUDBOXX_WITH_KEY.id in {m["id"] for m in models}
    units = client.available_telematics_units("CLOUDBOXX").value
    credentials = client.available_credentials("NIU")
    assert credentials.value and credentials.flow_id
    body = {
        "telematics_unit": {
            "id": units[0]["id"],
            "brand": "CLOUDBOXX",
            "setup": {"vehicle_model_id": CLOUDBOXX_WITH_KEY.id},
        },
        "master_data": {"license_plate": "SIM-1"},
    }
    added = client.add_vehicle(body)
    assert added.status == 201
    assert added.value.capabilities.supports("UNLOCK_AND_ENABLE_DRIVING")
    with pytest.raises(ResourceConflict):
        client.add_vehicle(body)  # that unit is in the fleet now
    setup = client.setup_telematics_unit(added.value.id, MOPED.id).value
    assert (setup.vehicle_model_id, setup.status) == (MOPED.id, "SUCCEEDED")
    assert not client.get_vehicle(added.value.id).value.capabilities.supports("LOCK_CENTRAL_LOCK")
    with pytest.raises(ValidationFailed) as info:
        client.setup_telematics_unit(added.value.id, "01UNKNOWNMODEL000000000000")
    assert info.value.problem_type == "/problems/referenced-resource-not-found"
