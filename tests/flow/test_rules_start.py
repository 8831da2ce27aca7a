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
    assert [c["dest"] for c in stack.changes if c["rental_id"] == "r1"] == [
        "STARTING", "RUNNING"]
