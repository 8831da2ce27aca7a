"""Vehicle states confirm commands and drive transitions, judged by capabilities."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from rental_fsm.interpreter import Reading, interpret, vehicle_facts
from rental_fsm.model import RentalState, Timer
from rental_fsm.oneapi.vehicle_state import Capabilities

S = RentalState
SINCE = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
AFTER = "2026-11-22T10:00:03Z"
BEFORE = "2026-11-22T09:50:00Z"
CAR = Capabilities(frozenset({"UNLOCK_AND_ENABLE_DRIVING", "LOCK_AND_DISABLE_DRIVING"}),
                   frozenset({"CENTRAL_LOCK", "DRIVING_ENABLED", "IGNITION", "DOORS_STATUS"}))
KEYED = Capabilities(CAR.commands, CAR.vehicle_state | {"VEHICLE_KEY"})
MOPED = Capabilities(frozenset({"ENABLE_DRIVING", "DISABLE_DRIVING"}),
                     frozenset({"DRIVING_ENABLED", "POSITION"}))


def reading(caps: Capabilities = CAR, stamp: str = AFTER, state: dict[str, Any] | None = None,
            **touched: Any) -> Reading:
    props = {k: {"timestamp": stamp, "value": v} for k, v in touched.items()}
    merged = dict(state or {})
    merged.update(props)
    return Reading(props, merged, caps)


def test_unlocked_and_driving_enabled_confirm_a_start() -> None:
    """Seed 002: 'Once we have the confirmation, the rental status changes to RUNNING.'"""
    r = reading(central_lock="UNLOCKED", driving_enabled=True)
    assert interpret(S.STARTING, r, waiting_since=SINCE) == "start_confirmed"


def test_half_a_confirmation_is_not_enough() -> None:
    r = reading(central_lock="UNLOCKED", state={"driving_enabled": {
        "timestamp": AFTER, "value": False}})
    assert interpret(S.STARTING, r, waiting_since=SINCE) is None


def test_a_state_captured_before_the_command_never_confirms_it() -> None:
    r = reading(stamp=BEFORE, central_lock="UNLOCKED", driving_enabled=True)
    assert interpret(S.STARTING, r, waiting_since=SINCE) is None


def test_a_moped_without_central_lock_confirms_on_driving_enabled_alone() -> None:
    """Seed 000: the checks depend on the vehicle's capabilities."""
    r = reading(MOPED, driving_enabled=True)
    assert interpret(S.STARTING, r, waiting_since=SINCE) == "start_confirmed"


def test_lock_confirms_the_end_and_an_opened_door_fails_it() -> None:
    """Seed 000: wait for CentralLockChanged; seed 002: 'door is opened right after
    triggering end rental'."""
    locked = reading(central_lock="LOCKED", driving_enabled=False)
    assert interpret(S.ENDING, locked, waiting_since=SINCE) == "end_confirmed"
    door = reading(doors_status="OPEN")
    assert interpret(S.ENDING, door, waiting_since=SINCE) == "end_failed"


def test_keyless_stopover_and_resume_are_confirmed_by_the_lock_state() -> None:
    locked = reading(central_lock="LOCKED", driving_enabled=False)
    assert interpret(S.PAUSING, locked, waiting_since=SINCE) == "stopover_confirmed"
    unlocked = reading(central_lock="UNLOCKED", driving_enabled=True)
    assert interpret(S.RESUMING, unlocked, waiting_since=SINCE) == "resume_confirmed"


def test_keyed_vehicles_enter_and_leave_stopover_from_events() -> None:
    """Seed 000: with a key, identify stopovers by the ignition and central lock values."""
    parked = reading(KEYED, ignition="OFF", central_lock="LOCKED")
    assert interpret(S.RUNNING, parked, waiting_since=None) == "vehicle_parked"
    assert interpret(S.RUNNING, reading(CAR, ignition="OFF", central_lock="LOCKED"),
                     waiting_since=None) is None
    back = reading(KEYED, central_lock="UNLOCKED")
    assert interpret(S.STOPOVER, back, waiting_since=None) == "vehicle_resumed"


@pytest.mark.parametrize("touched", [{"doors_status": "OPEN"}, {"ignition": "ON"},
                                     {"vehicle_key": "NOT_PRESENT"}])
def test_an_interaction_while_auto_cancel_is_armed_disarms_it(touched: dict[str, Any]) -> None:
    """Seed 002: auto-cancel only when the user does not interact in the first 60 s."""
    r = reading(KEYED, **touched)
    assert interpret(S.RUNNING, r, waiting_since=None,
                     timers={Timer.AUTO_CANCEL}) == "customer_interacted"
    assert interpret(S.RUNNING, r, waiting_since=None, timers=()) is None


def test_events_move_nothing_in_states_that_wait_for_nothing() -> None:
    """Rule 11: events that arrive while no command is pending never move the rental."""
    r = reading(central_lock="UNLOCKED", driving_enabled=True)
    for state in (S.ENDED, S.STOPOVER):
        assert interpret(state, r, waiting_since=SINCE) is None
    assert interpret(S.IDLE, r, waiting_since=None) is None  # never started


def test_an_unlock_seen_after_the_start_gave_up_is_recognised() -> None:
    """Rule 2: if the unlock is confirmed after the rental gave up, the vehicle is secured
    again (seed 000: a timed-out command 'might still be executed')."""
    late = reading(central_lock="UNLOCKED")
    assert interpret(S.IDLE, late, waiting_since=SINCE) == "unlock_after_abort"
    old = reading(stamp=BEFORE, central_lock="UNLOCKED")
    assert interpret(S.IDLE, old, waiting_since=SINCE) is None
    locked = reading(central_lock="LOCKED", driving_enabled=False)
    assert interpret(S.IDLE, locked, waiting_since=SINCE) is None


def test_facts_come_from_capabilities_and_state() -> None:
    facts = vehicle_facts(KEYED, {"ignition": {"timestamp": AFTER, "value": "ON"}})
    assert facts.has_key and facts.can_unlock and facts.ignition_on is True
    assert vehicle_facts(MOPED, {}).ignition_on is None
    assert not vehicle_facts(Capabilities(frozenset(), frozenset()), {}).can_unlock


def test_a_lock_seen_after_the_end_timed_out_is_a_late_end_confirmation() -> None:
    locked = reading(central_lock="LOCKED", driving_enabled=False)
    assert interpret(S.RUNNING, locked, waiting_since=SINCE,
                     last_reason="end_timeout") == "late_end_confirmed"
    assert interpret(S.RUNNING, locked, waiting_since=SINCE, last_reason=None) is None
