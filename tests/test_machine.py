"""The rental machine decides every path the seed documents describe."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import transitions

from rental_fsm.errors import GuardRejected, InvalidTransition, UnknownTrigger
from rental_fsm.machine import MACHINE, TRANSITIONS, RentalMachine, decide
from rental_fsm.model import (
    CustomerStatus,
    Effect,
    EndReason,
    Facts,
    Rental,
    RentalState,
    Timer,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
S = RentalState


def run(rental: Rental, *steps: str | tuple[str, Facts], at: datetime = NOW) -> Rental:
    """Apply triggers in order (each optionally with facts), as the orchestrator would."""
    for step in steps:
        trigger, facts = (step, None) if isinstance(step, str) else step
        rental = decide(rental, trigger, now=at, facts=facts).apply(rental, at)
    return rental


def fresh(**kw: object) -> Rental:
    return Rental("r-1", "JQ7RP", "c-9", created_at=NOW, **kw)  # type: ignore[arg-type]


def test_start_goes_to_starting_arms_the_45s_timeout_and_sends_the_unlock() -> None:
    """Seed 002: 'a successful response to rental/start does not mean that the rental has
    been started ... the rental status is STARTING'; 'maximum timeout of 45 seconds'."""
    decision = decide(fresh(), "start", now=NOW)
    assert decision.dest is S.STARTING
    assert Effect.UNLOCK_VEHICLE in decision.effects
    armed = {c.timer: c.due_at for c in decision.armed}
    assert armed[Timer.START_TIMEOUT] == NOW + timedelta(seconds=45)
    assert decision.apply(fresh(), NOW).customer_status is CustomerStatus.IN_RENTAL


def test_confirmed_start_runs_sets_in_rental_and_arms_the_60s_auto_cancel() -> None:
    """Seed 002: 'Once we have the confirmation, the rental status changes to RUNNING';
    seed 000: set the rental status IN_RENTAL once the customer got access."""
    rental = run(fresh(), "start")
    decision = decide(rental, "start_confirmed", now=NOW)
    after = decision.apply(rental, NOW)
    assert after.state is S.RUNNING
    assert Effect.SET_IN_RENTAL in decision.effects
    assert set(after.timers) == {Timer.AUTO_CANCEL}
    assert after.timers[Timer.AUTO_CANCEL].due_at == NOW + timedelta(seconds=60)


@pytest.mark.parametrize("before", [CustomerStatus.IDLE, CustomerStatus.IN_RESERVATION])
@pytest.mark.parametrize("failure", ["start_failed", "start_timeout"])
def test_failed_or_timed_out_start_returns_to_idle_and_the_previous_status(
    before: CustomerStatus, failure: str
) -> None:
    """Seed 002: 'In case the rental failed to start, the customer status transitions back
    to previous status (either IDLE or IN_RESERVATION).'"""
    rental = run(fresh(customer_status_before=before), "start", failure)
    assert rental.state is S.IDLE
    assert rental.customer_status is before
    assert rental.timers == {}
    assert rental.last_reason == failure


def test_timed_out_start_secures_the_vehicle_because_the_unlock_may_still_run() -> None:
    """Seed 000 'Command responses': a timed-out command might still be executed."""
    rental = run(fresh(), "start")
    assert Effect.SECURE_VEHICLE in decide(rental, "start_timeout", now=NOW).effects


def test_auto_cancel_ends_the_rental_unbilled() -> None:
    """Seed 002: 'We initiate an end rental if the user does not interact ... in the first
    60 seconds ... In this case, the rental will not be billed.'"""
    rental = run(fresh(), "start", "start_confirmed", "auto_cancel")
    assert rental.state is S.ENDING
    assert rental.end_reason is EndReason.AUTO_CANCELLED and rental.billable is False
    ended = run(rental, "end_confirmed")
    assert ended.state is S.ENDED and ended.billable is False
    assert ended.end_reason is EndReason.AUTO_CANCELLED


def test_customer_interaction_disarms_auto_cancel_once() -> None:
    rental = run(fresh(), "start", "start_confirmed", "customer_interacted")
    assert Timer.AUTO_CANCEL not in rental.timers
    with pytest.raises(GuardRejected, match="no auto-cancel pending"):
        decide(rental, "customer_interacted", now=NOW)


def test_end_with_criteria_met_secures_and_completes_billed() -> None:
    """Seed 000 'Securing the vehicle'; seed 002 'The status is then ENDING'."""
    running = run(fresh(), "start", "start_confirmed")
    decision = decide(running, "end", now=NOW, facts=Facts(ignition_on=False))
    assert decision.dest is S.ENDING and Effect.SECURE_VEHICLE in decision.effects
    ended = run(decision.apply(running, NOW), "end_confirmed")
    assert ended.state is S.ENDED
    assert ended.end_reason is EndReason.COMPLETED and ended.billable is True
    assert ended.timers == {}


def test_unmet_end_criteria_reject_the_end_and_keep_running() -> None:
    """Seed 000 'End rental conditions': if conditions are not met, ask the customer."""
    running = run(fresh(), "start", "start_confirmed")
    with pytest.raises(GuardRejected) as info:
        decide(running, "end", now=NOW, facts=Facts(unmet=("DOORS_STATUS",)))
    assert info.value.rental_id == "r-1"
    assert info.value.state == "RUNNING"
    assert info.value.trigger == "end"
    assert "DOORS_STATUS" in info.value.reasons[0]


def test_no_end_and_no_stopover_command_while_the_ignition_is_on() -> None:
    """Seed 000: 'you should not execute any commands while the customer is driving'."""
    running = run(fresh(), "start", "start_confirmed")
    for trigger in ("end", "begin_stopover"):
        with pytest.raises(GuardRejected, match="ignition is on"):
            decide(running, trigger, now=NOW, facts=Facts(ignition_on=True))


@pytest.mark.parametrize("failure", ["end_failed", "end_timeout"])
def test_failed_or_timed_out_end_returns_to_running_in_rental_again(failure: str) -> None:
    """Seed 002: 'door is opened right after triggering end rental'; 45 s to rental/end."""
    ending = run(fresh(), "start", "start_confirmed", "end")
    decision = decide(ending, failure, now=NOW)
    after = decision.apply(ending, NOW)
    assert after.state is S.RUNNING
    assert Effect.SET_IN_RENTAL in decision.effects
    assert after.end_reason is None and after.billable is False
    assert after.last_reason == failure
    assert after.timers == {}


def test_keyless_stopover_locks_waits_for_confirmation_and_resumes_with_unlock() -> None:
    """Seed 000 'Stopovers': keyless vehicles are locked and immobilised through the app."""
    running = run(fresh(), "start", "start_confirmed")
    pausing = run(running, "begin_stopover")
    assert pausing.state is S.PAUSING and Timer.STOPOVER_TIMEOUT in pausing.timers
    stopover = run(pausing, "stopover_confirmed")
    assert stopover.state is S.STOPOVER and stopover.timers == {}
    resuming_decision = decide(stopover, "end_stopover", now=NOW)
    assert Effect.UNLOCK_VEHICLE in resuming_decision.effects
    assert run(stopover, "end_stopover", "resume_confirmed").state is S.RUNNING
    assert run(stopover, "end_stopover", "resume_timeout").state is S.STOPOVER
    assert run(pausing, "stopover_timeout").state is S.RUNNING


def test_stopovers_of_vehicles_with_a_key_follow_events_not_commands() -> None:
    """Seed 000: 'If the vehicle key is present ... identify stopovers by looking at the
    ignition value, and also by checking the vehicle's central lock value.'"""
    keyed = Facts(has_key=True)
    running = run(fresh(), "start", "start_confirmed")
    with pytest.raises(GuardRejected, match="physical key"):
        decide(running, "begin_stopover", now=NOW, facts=keyed)
    stopover = run(running, ("vehicle_parked", keyed))
    assert stopover.state is S.STOPOVER
    assert run(stopover, ("vehicle_resumed", keyed)).state is S.RUNNING
    with pytest.raises(GuardRejected, match="keyless"):
        decide(running, "vehicle_parked", now=NOW, facts=Facts(has_key=False))


@pytest.mark.parametrize("state", [s for s in RentalState if s is not S.ENDED])
def test_force_end_ends_every_non_terminal_state_and_clears_its_timers(
    state: RentalState,
) -> None:
    """Seed 002: 'the rental might be ended any time by our Customer Service or Security'."""
    rental = fresh(state=state, timers={})
    rental = replace(rental, timers=run(fresh(), "start").timers)
    after = run(rental, "force_end")
    assert after.state is S.ENDED
    assert after.end_reason is EndReason.FORCE_ENDED
    assert after.timers == {}


@pytest.mark.parametrize("trigger", sorted(MACHINE.triggers))
def test_ended_is_terminal_for_every_trigger(trigger: str) -> None:
    with pytest.raises(InvalidTransition) as info:
        decide(fresh(state=S.ENDED), trigger, now=NOW)
    assert (info.value.state, info.value.trigger) == ("ENDED", trigger)


def test_unknown_and_invalid_triggers_raise_our_errors_with_context() -> None:
    rental = fresh()
    with pytest.raises(UnknownTrigger) as unknown:
        decide(rental, "teleport", now=NOW)
    assert (unknown.value.rental_id, unknown.value.state) == ("r-1", "IDLE")
    with pytest.raises(InvalidTransition, match="'end' is not allowed in IDLE"):
        decide(rental, "end", now=NOW)


def test_a_vehicle_without_unlock_capability_cannot_start() -> None:
    """Seed 000: 'Before sending a command to your vehicle, use the vehicle's capabilities'."""
    with pytest.raises(GuardRejected, match="no capability to unlock"):
        decide(fresh(), "start", now=NOW, facts=Facts(can_unlock=False))


def test_timer_tokens_fence_a_timer_that_was_re_armed() -> None:
    """A timer armed again gets a new token, so the old firing can be recognised as stale."""
    first = run(fresh(), "start")
    old_token = first.timers[Timer.START_TIMEOUT].token
    again = run(first, "start_failed", "start")
    assert again.timers[Timer.START_TIMEOUT].token != old_token


def test_a_fired_timer_is_spent_and_another_keeps_running() -> None:
    rental = run(fresh(), "start", "state_check")
    assert Timer.STATE_CHECK not in rental.timers
    assert Timer.START_TIMEOUT in rental.timers


def test_durations_come_from_the_caller() -> None:
    durations = {t: timedelta(seconds=1) for t in Timer}
    decision = decide(fresh(), "start", now=NOW, durations=durations)
    assert {c.due_at for c in decision.armed} == {NOW + timedelta(seconds=1)}


def test_decide_never_builds_a_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """One shared transitions.Machine for every rental, not one per rental per event."""
    built: list[object] = []
    original = transitions.Machine.__init__

    def counting(self: object, *args: object, **kwargs: object) -> None:
        built.append(self)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(transitions.Machine, "__init__", counting)
    for _ in range(50):
        run(fresh(), "start", "start_confirmed")
    assert built == []


def test_the_shared_machine_decides_the_same_from_many_threads() -> None:
    steps = ["start", "start_confirmed", "customer_interacted", "begin_stopover",
             "stopover_confirmed", "end_stopover", "resume_confirmed", "end",
             "end_confirmed"]
    expected = run(fresh(), *steps)
    results: list[Rental] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(200):
                results.append(run(fresh(), *steps))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(results) == 1600
    assert all(r == expected for r in results)


def test_a_machine_can_be_built_from_a_modified_table() -> None:
    """Replay and users' tests can run a changed table next to the standard one."""
    rows = tuple(r for r in TRANSITIONS if r.trigger != "customer_interacted")
    machine = RentalMachine(rows)
    running = run(fresh(), "start", "start_confirmed")
    with pytest.raises(UnknownTrigger):
        machine.decide(running, "customer_interacted", now=NOW)


def test_rental_records_round_trip_through_json() -> None:
    import json

    rental = run(fresh(customer_status_before=CustomerStatus.IN_RESERVATION),
                 "start", "start_confirmed", "end")
    assert Rental.from_dict(json.loads(json.dumps(rental.to_dict()))) == rental


def test_a_late_lock_after_an_end_timeout_completes_the_end_and_nothing_else_does() -> None:
    """Seed 000: a lock command that timed out 'might still be executed'; its late
    confirmation ends the rental (billed, NOT_IN_RENTAL set again)."""
    timed_out = run(fresh(), "start", "start_confirmed", "end", "end_timeout")
    decision = decide(timed_out, "late_end_confirmed", now=NOW)
    assert decision.dest is S.ENDED and Effect.SET_NOT_IN_RENTAL in decision.effects
    ended = decision.apply(timed_out, NOW)
    assert ended.end_reason is EndReason.COMPLETED and ended.billable
    never_ended = run(fresh(), "start", "start_confirmed")
    with pytest.raises(GuardRejected, match="no end attempt"):
        decide(never_ended, "late_end_confirmed", now=NOW)
