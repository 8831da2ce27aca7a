"""Rules 1 and 2: starting a rental (seed 000 "Start rental", seed 002)."""

from __future__ import annotations

import pytest
from flow_helpers import wait

from rental_fsm.model import CustomerStatus, RentalState

S = RentalState
pytestmark = [pytest.mark.rabbitmq]


def test_start_uses_the_combined_command_and_is_confirmed_by_events(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 002: 'As long as there was no confirmation by the vehicle being unlocked ...
    the rental status is STARTING. Once we have the confirmation ... RUNNING.'
    Seed 000: use unlock-and-enable-driving when supported, then set IN_RENTAL."""
    status = stack.start("r1", "CAR1")
    assert status.state is S.STARTING
    assert status.customer_status is CustomerStatus.IN_RENTAL
    assert status.pending is not None and status.pending.command == "unlock"
    running = stack.wait_for("r1", S.RUNNING)
    assert running.pending is None
    wait(lambda: len(stack.commands("CAR1")) >= 2)
    assert stack.commands("CAR1") == ["commands/unlock-and-enable-driving 200",
                                          "rental-status 200"]
    assert stack.sim.value("CAR1", "central_lock") == "UNLOCKED"
    assert stack.transitions("r1") == ["start", "start_confirmed"]
    wait(lambda: [c["dest"] for c in stack.changes if c["rental_id"] == "r1"] == [
        "STARTING", "RUNNING"])


def test_the_single_commands_are_used_when_the_combined_one_is_missing(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 000: 'unlock-and-enable-driving is a combined command that is not supported by
    all telematics brands' -> unlock-central-lock, then enable-driving."""
    stack.start("r2", "SEP1")
    stack.wait_for("r2", S.RUNNING)
    wait(lambda: len(stack.commands("SEP1")) >= 3)
    assert stack.commands("SEP1")[:3] == ["commands/unlock-central-lock 200",
                                          "commands/enable-driving 200", "rental-status 200"]


def test_a_refused_start_returns_to_the_previous_customer_status(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 002: 'In case the rental failed to start, the customer status transitions back
    to previous status (either IDLE or IN_RESERVATION).'"""
    stack.sim.set_faults("CAR1", next_command="CONFLICTING_STATE")
    stack.start("r3", "CAR1", customer_status="IN_RESERVATION")
    status = stack.wait_for("r3", S.IDLE)
    assert status.customer_status is CustomerStatus.IN_RESERVATION
    assert status.last_reason == "start_failed"
    assert "conflicting-state" in (status.last_failure or "")


def test_an_unconfirmed_start_times_out_back_to_idle_and_secures(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 002: 'We apply a maximum timeout of 45 seconds to rental/start' (2 s here)."""
    stack.sim.set_faults("CAR1", next_command="TIMEOUT", execute_after=None)
    stack.start("r4", "CAR1")
    status = stack.wait_for("r4", S.IDLE, timeout=10)
    assert status.last_reason == "start_timeout"
    assert stack.transitions("r4") == ["start", "state_check", "start_timeout"]
    wait(lambda: "commands/lock-and-disable-driving 200" in stack.commands("CAR1"))


def test_an_unlock_that_happens_after_the_start_gave_up_is_secured_again(stack) -> None:  # type: ignore[no-untyped-def]
    """Rule 2 / seed 000 'Command responses': the request may time out 'but ultimately the
    command might still be executed' -> the vehicle is locked again."""
    stack.sim.set_faults("CAR1", next_command="TIMEOUT", execute_after=3.0)
    stack.start("r5", "CAR1")
    stack.wait_for("r5", S.IDLE, timeout=10)
    wait(lambda: "unlock_after_abort" in stack.transitions("r5"), timeout=15)
    wait(lambda: stack.sim.value("CAR1", "central_lock") == "LOCKED", timeout=10)
    assert stack.orch.status("r5").state is S.IDLE


def test_a_customer_the_hook_denies_gets_no_command(stack) -> None:  # type: ignore[no-untyped-def]
    """Seed 000: make sure the customer may use the vehicle before sending any command."""
    from rental_fsm.errors import NotAuthorized

    with pytest.raises(NotAuthorized):
        stack.orch.start_rental("r6", vehicle_id="CAR2", customer_id="stranger")
    assert stack.commands("CAR2") == []


def test_start_is_idempotent_and_validated(stack) -> None:  # type: ignore[no-untyped-def]
    """A retried HTTP request in the booking backend must not start two rentals."""
    from rental_fsm.errors import CustomerBusy, InvalidInput, VehicleBusy

    first = stack.start("r7", "CAR2", "c7")
    again = stack.start("r7", "CAR2", "c7")
    assert again.version == first.version
    with pytest.raises(InvalidInput):
        stack.start("r7", "CAR1", "c7")
    with pytest.raises(VehicleBusy):
        stack.start("r8", "CAR2", "c8")
    with pytest.raises(CustomerBusy):
        stack.start("r9", "SEP1", "c7")
    with pytest.raises(InvalidInput):
        stack.start("../r", "CAR1", "c10")
    with pytest.raises(InvalidInput):
        stack.start("r10", "CAR1", "c10", customer_status="IN_RENTAL")
    stack.wait_for("r7", S.RUNNING)
    unlocks = [c for c in stack.commands("CAR2") if "unlock" in c]
    assert unlocks == ["commands/unlock-and-enable-driving 200"]
