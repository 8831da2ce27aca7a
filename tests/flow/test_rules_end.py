"""Rules 6 to 9 and 11: ending a rental (seed 000 "End rental", seed 002 "Ending")."""

from __future__ import annotations

import json
import time

import pytest
from flow_helpers import wait

from rental_fsm.errors import EndRentalCriteriaNotMet
from rental_fsm.model import EndReason, RentalState

S = RentalState
pytestmark = [pytest.mark.rabbitmq]


def test_unmet_criteria_keep_the_rental_running_until_the_customer_fixes_them(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 000: 'one or more doors are still open (doors_status is OPEN). In a case like
    this you should ask your customer to close all doors.' Seed 002: 'You receive all end
    rental criteria (if any) synchronously in the error response to rental/end.'"""
    stack.running("e1", "CAR1")
    stack.sim.open_doors("CAR1")
    wait(lambda: stack.orch.store.vehicle_state("CAR1")["doors_status"]["value"] == "OPEN")
    with pytest.raises(EndRentalCriteriaNotMet) as info:
        stack.orch.end_rental("e1")
    assert info.value.unmet == [{"criterion": "DOORS_STATUS", "actual": "OPEN",
                                 "expected": "CLOSED"}]
    status = stack.orch.status("e1")
    assert status.state is S.RUNNING and status.unmet == tuple(info.value.unmet)
    # seed 000: NOT_IN_RENTAL first, for a fresh state; then IN_RENTAL again
    assert stack.commands("CAR1")[-2:] == ["rental-status 200", "rental-status 204"]
    assert stack.sim.vehicle("CAR1").rental_status == "IN_RENTAL"

    stack.sim.close_doors("CAR1")
    assert stack.orch.end_rental("e1").state is S.ENDING
    ended = stack.wait_for("e1", S.ENDED)
    assert ended.end_reason is EndReason.COMPLETED and ended.billable is True
    assert ended.unmet == ()
    assert stack.sim.value("CAR1", "central_lock") == "LOCKED"
    assert stack.sim.value("CAR1", "driving_enabled") is False
    assert stack.sim.vehicle("CAR1").rental_status == "NOT_IN_RENTAL"


def test_outside_the_business_area_the_end_is_refused(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 000: 'vehicle is parked within a designated business area, or close to its
    home location (POSITION)'."""
    stack.running("e2", "CAR1")
    stack.sim.leave_business_area("CAR1")
    with pytest.raises(EndRentalCriteriaNotMet) as info:
        stack.orch.end_rental("e2")
    assert [u["criterion"] for u in info.value.unmet] == ["POSITION"]


def test_a_vehicle_with_a_key_needs_its_key_back(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 000: 'the vehicle key and cardholder cards are present (VEHICLE_KEY and
    CLOUDBOXX_CARDHOLDER_CARDS) - not applicable for keyless go vehicles'."""
    stack.running("e3", "KEY1")
    stack.sim.take_key("KEY1")
    with pytest.raises(EndRentalCriteriaNotMet) as info:
        stack.orch.end_rental("e3")
    assert "VEHICLE_KEY" in [u["criterion"] for u in info.value.unmet]
    criteria = {c["criterion"]: c["status"]
                for c in stack.orch.store.get("e3").extra["criteria"]}
    assert criteria["VEHICLE_KEY"] == "unmet"
    stack.sim.return_key("KEY1")
    stack.orch.end_rental("e3")
    stack.wait_for("e3", S.ENDED)


def test_a_moped_is_checked_only_on_what_it_can_report(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 000: 'The conditions you can check depend on the capabilities of the vehicle':
    no doors, no central lock; securing it is disabling driving."""
    stack.running("e4", "MOP1")
    stack.orch.end_rental("e4")
    stack.wait_for("e4", S.ENDED)
    criteria = {c["criterion"]: c["status"]
                for c in stack.orch.store.get("e4").extra["criteria"]}
    assert criteria["DOORS_STATUS"] == "not_checkable"
    assert criteria["VEHICLE_KEY"] == "not_checkable"
    assert "commands/disable-driving 200" in stack.commands("MOP1")


def test_a_door_opened_right_after_the_end_returns_to_running(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 002: 'If an error in the communication to the vehicle occurs earlier than the
    timeout, the status will change earlier as well. Examples are: ... door is opened right
    after triggering end rental.'"""
    stack.running("e5", "CAR1")
    # the lock takes a second to show (seed 000: "central lock changes might be delayed")
    stack.sim.set_faults("CAR1", reopen_doors_after_lock=0.2, central_lock_delay=1.0)
    stack.orch.end_rental("e5")
    status = stack.wait_for("e5", S.RUNNING)
    assert status.last_reason == "end_failed" and status.end_reason is None
    wait(lambda: stack.sim.vehicle("CAR1").rental_status == "IN_RENTAL")


def test_an_end_never_confirmed_times_out_back_to_running(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 002: 'We apply a maximum timeout of 45 seconds to rental/start and rental/end'
    (2 s here)."""
    stack.running("e6", "CAR1")
    stack.sim.set_faults("CAR1", every_command="TIMEOUT", execute_after=None)
    status = stack.orch.end_rental("e6")
    assert status.state is S.ENDING
    back = stack.wait_for("e6", S.RUNNING, timeout=10)
    assert back.last_reason == "end_timeout" and back.billable is False
    stack.sim.set_faults("CAR1", every_command=None)


def test_a_lock_that_timed_out_but_ran_completes_the_end_from_its_events(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 000 'Command responses': 'the request may time out ... but ultimately the
    command might still be executed ... wait for the corresponding change event
    CentralLockChanged'."""
    stack.running("e7", "CAR1")
    stack.sim.set_faults("CAR1", every_command="TIMEOUT", execute_after=1.0)
    stack.orch.end_rental("e7")
    ended = stack.wait_for("e7", S.ENDED, timeout=10)
    stack.sim.set_faults("CAR1", every_command=None)
    assert ended.end_reason is EndReason.COMPLETED
    calls = [e for e in stack.orch.store.log("e7") if e["kind"] == "call"]
    assert any(c["error"] == "timeout" and "lock-and-disable" in c["path"] for c in calls)


def test_an_unreachable_vehicle_is_asked_once_flagged_and_completes_when_back(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 000 'Connectivity issues when ending the rental': 'If no new vehicle states
    have arrived ... try to actively request a new vehicle state. If the vehicle has no
    cellular connection ... use Bluetooth as a fallback.'"""
    stack.running("e8", "CAR1")
    stack.sim.set_faults("CAR1", central_lock_delay=2.5)  # the lock shows only later
    stack.orch.end_rental("e8")
    wait(lambda: any("lock-and-disable" in c for c in stack.commands("CAR1")))
    stack.sim.set_faults("CAR1", next_command="GATEWAY_TIMEOUT", execute_after=None)
    wait(lambda: stack.orch.status("e8").vehicle_unreachable, timeout=10)
    # the lock shows after the 2 s end timeout: the late confirmation completes the end
    ended = stack.wait_for("e8", S.ENDED, timeout=10)
    assert not ended.vehicle_unreachable and ended.end_reason is EndReason.COMPLETED
    assert stack.transitions("e8")[-2:] == ["end_timeout", "late_end_confirmed"]
    requests = [c for c in stack.commands("CAR1") if "request-vehicle-state" in c]
    assert len(requests) == 1  # once, not in a loop


def test_old_events_never_move_a_newer_rental_of_the_same_vehicle(stack) -> None:  # type: ignore[no-untyped-def]
    """Rule 11: events that arrive while no command is pending, or belong to another
    rental of the same vehicle, never move the wrong rental."""
    stack.running("o1", "CAR2")
    stack.orch.end_rental("o1")
    stack.wait_for("o1", S.ENDED)
    before = time.time()
    stack.sim.set_faults("CAR2", next_command="TIMEOUT", execute_after=None)
    stack.start("o2", "CAR2")
    old = {"metadata": {"id": "old-unlock", "type": "VehicleStateRecorded",
                        "schema_major_version": 2, "occurred_at": "2026-01-01T00:00:00Z",
                        "flow_id": "f"},
           "data": {"vehicle_id": "CAR2", "vehicle_state": {
               "central_lock": {"timestamp": "2026-01-01T00:00:00Z", "value": "UNLOCKED"},
               "driving_enabled": {"timestamp": "2026-01-01T00:00:00Z", "value": True}}}}
    queue = stack.worker.parts.queues[0]
    with stack.worker.parts.connection.clone() as conn, conn.Producer() as producer:
        producer.publish(json.dumps(old), exchange="", routing_key=queue,
                         content_type="application/json")
    status = stack.wait_for("o2", S.IDLE, timeout=10)
    assert status.last_reason == "start_timeout"
    assert "start_confirmed" not in stack.transitions("o2")
    assert stack.orch.status("o1").state is S.ENDED
    assert time.time() - before < 10
