"""Rules 3, 4, 5 and 10: auto-cancel, ignition, stopovers, customer service."""

from __future__ import annotations

import time

import pytest
from flow_helpers import wait

from rental_fsm.errors import GuardRejected
from rental_fsm.model import EndReason, RentalState

S = RentalState
pytestmark = [pytest.mark.rabbitmq]


def test_no_interaction_in_the_first_seconds_auto_cancels_unbilled(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 002: 'We initiate an end rental if the user does not interact within the
    vehicle in the first 60 seconds after successfully starting it (status RUNNING). In
    this case, the rental will not be billed.' (3 s here.)"""
    stack.start("a1", "CAR1")
    stack.wait_for("a1", S.RUNNING)
    ended = stack.wait_for("a1", S.ENDED, timeout=15)
    assert ended.end_reason is EndReason.AUTO_CANCELLED and ended.billable is False
    assert stack.transitions("a1") == ["start", "start_confirmed", "auto_cancel",
                                       "end_confirmed"]
    assert stack.sim.value("CAR1", "central_lock") == "LOCKED"


def test_an_interaction_keeps_the_rental_running(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 002: auto-cancel only when the user does not interact (a door opened)."""
    stack.running("a2", "CAR1")
    time.sleep(3.5)  # past the auto-cancel delay
    assert stack.orch.status("a2").state is S.RUNNING
    assert "customer_interacted" in stack.transitions("a2")


def test_no_stopover_and_no_end_while_the_ignition_is_on(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 000: 'you should not execute any commands while the customer is driving (if
    the vehicle's ignition is on)'."""
    stack.running("i1", "CAR1")
    stack.sim.ignition("CAR1", True)
    wait(lambda: stack.orch.store.vehicle_state("CAR1").get("ignition", {}).get("value")
         == "ON")
    sent = list(stack.commands("CAR1"))
    for call in (stack.orch.begin_stopover, stack.orch.end_rental):
        with pytest.raises(GuardRejected, match="ignition is on"):
            call("i1")
    time.sleep(0.3)
    assert stack.commands("CAR1") == sent
    assert stack.orch.status("i1").state is S.RUNNING


def test_a_keyless_stopover_locks_and_resumes_through_commands(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 000 'Stopovers': without a physical key 'your customers need to use your app to
    secure the vehicle during stopovers ... lock and immobilize the vehicle at the
    beginning of a break and ... unlock and enable driving again at the end'."""
    stack.running("s1", "CAR1")
    assert stack.orch.begin_stopover("s1").state is S.PAUSING
    stack.wait_for("s1", S.STOPOVER)
    assert stack.sim.value("CAR1", "central_lock") == "LOCKED"
    assert stack.orch.end_stopover("s1").state is S.RESUMING
    stack.wait_for("s1", S.RUNNING)
    assert stack.sim.value("CAR1", "central_lock") == "UNLOCKED"
    assert stack.transitions("s1")[-4:] == ["begin_stopover", "stopover_confirmed",
                                            "end_stopover", "resume_confirmed"]


def test_a_stopover_whose_lock_is_not_confirmed_returns_to_running(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 000: 'If the customer initiates a stopover at a location with bad signal
    quality, vehicle commands might not work.'"""
    stack.running("s2", "CAR1")
    stack.sim.set_faults("CAR1", next_command="TIMEOUT", execute_after=None)
    stack.orch.begin_stopover("s2")
    status = stack.wait_for("s2", S.RUNNING, timeout=10)
    assert status.last_reason == "stopover_timeout"


def test_vehicles_with_a_key_enter_and_leave_stopovers_from_their_events(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 000: 'If the vehicle key is present ... you can identify stopovers by looking
    at the ignition value, and also by checking the vehicle's central lock value.'"""
    stack.running("s3", "KEY1")
    with pytest.raises(GuardRejected, match="physical key"):
        stack.orch.begin_stopover("s3")
    stack.sim.ignition("KEY1", False)
    stack.sim.manual_lock("KEY1", True)
    stack.wait_for("s3", S.STOPOVER)
    stack.sim.manual_lock("KEY1", False)
    stack.wait_for("s3", S.RUNNING)
    assert "vehicle_parked" in stack.transitions("s3")
    assert "vehicle_resumed" in stack.transitions("s3")


@pytest.mark.parametrize("before", ["STARTING", "RUNNING", "STOPOVER", "ENDING"])
def test_customer_service_ends_any_rental_at_once(stack, before) -> None:  # type: ignore[no-untyped-def]
    """Seed 002: 'Keep in mind that the rental might be ended any time by our Customer
    Service or Security.' The vehicle is secured best-effort afterwards."""
    rid = f"f-{before.lower()}"
    if before == "STARTING":
        stack.sim.set_faults("CAR1", next_command="TIMEOUT", execute_after=None)
        stack.start(rid, "CAR1")
    else:
        stack.running(rid, "CAR1")
        if before == "STOPOVER":
            stack.orch.begin_stopover(rid)
            stack.wait_for(rid, S.STOPOVER)
        elif before == "ENDING":
            stack.sim.set_faults("CAR1", central_lock_delay=1.5)
            stack.orch.end_rental(rid)
    status = stack.orch.force_end(rid, reason="fraud_suspected")
    assert status.state is S.ENDED and status.end_reason is EndReason.FORCE_ENDED
    assert status.pending is None
    wait(lambda: stack.sim.value("CAR1", "central_lock") == "LOCKED", timeout=10)
    wait(lambda: any(c["dest"] == "ENDED" for c in stack.changes if c["rental_id"] == rid))


def test_a_failure_to_secure_after_a_force_end_is_reported_not_raised(stack) -> None:  # type: ignore[no-untyped-def]
    stack.running("f9", "CAR1")
    stack.sim.set_faults("CAR1", every_command="TELEMATICS_UNIT_ERROR")
    status = stack.orch.force_end("f9")
    assert status.state is S.ENDED
    wait(lambda: stack.orch.status("f9").last_failure is not None, timeout=15)
    assert "telematics-unit" in stack.orch.status("f9").last_failure
    stack.sim.set_faults("CAR1", every_command=None)
