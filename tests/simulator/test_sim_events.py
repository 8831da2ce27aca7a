"""The simulator's events on the real RabbitMQ: envelope, properties and event faults."""

from __future__ import annotations

import time

import pytest
from sim_helpers import Queues

from rental_fsm.config import Secret
from rental_fsm.errors import OutcomeUnknown
from rental_fsm.oneapi import Command, OneAPIClient
from rental_fsm.simulator import Fault, Simulator

pytestmark = pytest.mark.rabbitmq
SimQ = tuple[Simulator, Queues]


def client_for(sim: Simulator, read_timeout: float = 5.0) -> OneAPIClient:
    return OneAPIClient(sim.url, sim.client_id, Secret(sim.client_secret.reveal()),
                        read_timeout=read_timeout)


def types(events: list[dict[str, object]]) -> list[object]:
    return [e["metadata"]["type"] for e in events]  # type: ignore[index]


def test_command_events_carry_the_flow_id_in_body_and_properties(amqp_sim: SimQ) -> None:
    sim, queues = amqp_sim
    result = client_for(sim).command("CAR1", Command.UNLOCK_AND_ENABLE_DRIVING)
    messages = queues.raw_state(2)
    recorded, lock_changed = (m.payload for m in messages)
    assert types([recorded, lock_changed]) == ["VehicleStateRecorded", "CentralLockChanged"]
    for message, body in zip(messages, (recorded, lock_changed), strict=True):
        meta = body["metadata"]
        assert set(meta) == {"id", "type", "schema_major_version", "occurred_at", "flow_id"}
        assert meta["flow_id"] == result.flow_id
        assert message.content_type == "application/json"
        assert message.properties["message_id"] == meta["id"] and len(meta["id"]) == 26
        assert message.properties["type"] == meta["type"]
        assert message.properties["correlation_id"] == result.flow_id
        assert message.properties["timestamp"]
        assert message.headers["schema_major_version"] == meta["schema_major_version"]
    assert recorded["data"]["vehicle_id"] == "CAR1"
    assert recorded["data"]["vehicle_state"]["central_lock"]["value"] == "UNLOCKED"
    assert recorded["data"]["vehicle_state"]["driving_enabled"]["value"] is True
    assert lock_changed["data"]["central_lock"]["value"] == "UNLOCKED"
    assert recorded["metadata"]["id"] != lock_changed["metadata"]["id"]


def test_rental_status_change_goes_to_the_vehicle_topic(amqp_sim: SimQ) -> None:
    sim, queues = amqp_sim
    result = client_for(sim).set_rental_status("KEY1", "IN_RENTAL")
    (changed,) = queues.vehicle(1)
    assert changed["metadata"]["type"] == "VehicleChanged"
    assert changed["metadata"]["flow_id"] == result.flow_id
    assert changed["data"]["reasons"] == ["RENTAL_STATUS_CHANGED"]
    assert changed["data"]["vehicle"]["rental_status"]["value"] == "IN_RENTAL"
    (recorded,) = queues.state(1)  # the requested fresh state
    assert recorded["metadata"]["flow_id"] == result.flow_id


def test_scripted_changes_publish_vehicle_state(amqp_sim: SimQ) -> None:
    sim, queues = amqp_sim
    sim.open_doors("KEY1")
    sim.take_key("KEY1")
    first, second = queues.state(2)
    assert first["data"]["vehicle_state"]["doors_status"]["value"] == "OPEN"
    assert second["data"]["vehicle_state"]["vehicle_key"]["value"] == "NOT_PRESENT"
    assert first["metadata"]["flow_id"] != second["metadata"]["flow_id"]


def test_lose_events_drops_exactly_the_next_ones(amqp_sim: SimQ) -> None:
    sim, queues = amqp_sim
    sim.faults("CAR1").lose_events = 1
    sim.open_doors("CAR1")
    sim.close_doors("CAR1")
    (only,) = queues.state(1)
    assert only["data"]["vehicle_state"]["doors_status"]["value"] == "CLOSED"
    queues.assert_quiet()
    assert len(sim.fleet.lost) == 1


def test_duplicate_events_repeats_the_same_event_id(amqp_sim: SimQ) -> None:
    sim, queues = amqp_sim
    sim.faults("CAR1").duplicate_events = 1
    sim.open_windows("CAR1")
    first, second = queues.state(2)
    assert first == second
    queues.assert_quiet()


def test_reorder_events_delivers_the_next_event_after_the_following_one(amqp_sim: SimQ) -> None:
    sim, queues = amqp_sim
    sim.faults("CAR1").reorder_events = 1
    sim.headlights("CAR1", on=True)
    sim.headlights("CAR1", on=False)
    first, second = queues.state(2)
    assert first["data"]["vehicle_state"]["headlights"]["value"] == "OFF"
    assert second["data"]["vehicle_state"]["headlights"]["value"] == "ON"
    assert first["metadata"]["occurred_at"] >= second["metadata"]["occurred_at"]


def test_central_lock_confirmation_is_delayed(amqp_sim: SimQ) -> None:
    sim, queues = amqp_sim
    sim.faults("CAR1").central_lock_delay = 0.4
    result = client_for(sim).command("CAR1", Command.UNLOCK_AND_ENABLE_DRIVING)
    assert "central_lock" not in result.value  # not confirmed yet
    assert result.value.driving_enabled is True
    assert sim.value("CAR1", "central_lock") == "LOCKED"
    now, later, lock_changed = queues.state(3, timeout=5)
    assert now["data"]["vehicle_state"]["central_lock"]["value"] == "LOCKED"
    assert later["data"]["vehicle_state"]["central_lock"]["value"] == "UNLOCKED"
    assert lock_changed["metadata"]["type"] == "CentralLockChanged"
    assert {e["metadata"]["flow_id"] for e in (now, later, lock_changed)} == {result.flow_id}
    assert sim.value("CAR1", "central_lock") == "UNLOCKED"


def test_doors_reopened_right_after_the_end_lock(amqp_sim: SimQ) -> None:
    sim, queues = amqp_sim
    client = client_for(sim)
    client.command("CAR1", Command.UNLOCK_AND_ENABLE_DRIVING)
    queues.state(2)
    sim.faults("CAR1").reopen_doors_after_lock = 0.1
    result = client.command("CAR1", Command.LOCK_AND_DISABLE_DRIVING)
    assert result.value.central_lock == "LOCKED"
    locked, lock_event, reopened, unlock_event = queues.state(4)
    assert locked["metadata"]["flow_id"] == result.flow_id
    assert reopened["data"]["vehicle_state"]["doors_status"]["value"] == "OPEN"
    assert unlock_event["data"]["central_lock"]["value"] == "UNLOCKED"
    assert reopened["metadata"]["flow_id"] != result.flow_id  # caused by the customer
    assert sim.faults("CAR1").reopen_doors_after_lock is None  # one-shot


def test_a_timed_out_command_runs_later_and_its_events_arrive(amqp_sim: SimQ) -> None:
    sim, queues = amqp_sim
    faults = sim.faults("CAR1")
    faults.every_command, faults.hang_seconds, faults.execute_after = Fault.TIMEOUT, 3.0, 0.3
    with pytest.raises(OutcomeUnknown):
        client_for(sim, read_timeout=0.2).command("CAR1", Command.UNLOCK_AND_ENABLE_DRIVING)
    started = time.monotonic()
    recorded, lock_changed = queues.state(2, timeout=5)
    assert time.monotonic() - started < 3
    assert recorded["data"]["vehicle_state"]["central_lock"]["value"] == "UNLOCKED"
    assert lock_changed["metadata"]["type"] == "CentralLockChanged"
