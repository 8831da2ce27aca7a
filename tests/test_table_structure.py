"""Structural rules of the transition table, each shown to catch a broken table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rental_fsm import guards
from rental_fsm.errors import DefinitionError
from rental_fsm.machine import (
    INITIAL,
    TRANSITIONS,
    RentalMachine,
    Row,
    table_problems,
    validate_table,
)
from rental_fsm.model import RentalState, Timer

S = RentalState


def without(*triggers: str) -> tuple[Row, ...]:
    return tuple(r for r in TRANSITIONS if r.trigger not in triggers)


def edited(trigger: str, source: RentalState, **changes: object) -> tuple[Row, ...]:
    return tuple(
        replace(r, **changes) if r.trigger == trigger and source in r.source else r  # type: ignore[arg-type]
        for r in TRANSITIONS
    )


def problems(rows: tuple[Row, ...]) -> str:
    return "\n".join(table_problems(rows))


def test_the_shipped_table_passes_every_check() -> None:
    assert list(table_problems(TRANSITIONS)) == []
    validate_table(TRANSITIONS)


def test_every_state_is_reachable_from_idle_and_a_broken_table_says_which_is_not() -> None:
    rows = without("end_stopover")  # RESUMING can no longer be entered
    assert "state RESUMING is not reachable from IDLE" in problems(rows)


def test_ended_must_be_reachable_from_every_state() -> None:
    # Take every way out of STOPOVER that eventually ends: force_end, end, resuming.
    rows = tuple(
        replace(r, source=tuple(s for s in r.source if s is not S.STOPOVER))
        for r in TRANSITIONS
        if r.trigger not in ("end_stopover", "vehicle_resumed")
    )
    rows = tuple(r for r in rows if r.source)
    assert "ENDED is not reachable from STOPOVER" in problems(rows)


def test_ended_must_be_terminal() -> None:
    rows = TRANSITIONS + (Row("reopen", (S.ENDED,), S.RUNNING),)
    assert "terminal state ENDED has an exit (reopen)" in problems(rows)


def test_a_timer_must_have_a_row_that_fires_on_it() -> None:
    rows = without("stopover_timeout")
    text = problems(rows)
    assert "timer stopover_timeout is armed but no row fires on it" in text
    assert "timer stopover_timeout may fire in PAUSING, which has no row for it" in text


def test_a_timer_must_be_cancelled_somewhere() -> None:
    rows = tuple(
        replace(r, cancels=tuple(t for t in r.cancels if t is not Timer.RESUME_TIMEOUT))
        for r in TRANSITIONS
    )
    assert "timer resume_timeout is armed but never cancelled" in problems(rows)


def test_a_timer_must_not_survive_into_a_state_that_cannot_handle_it() -> None:
    # start_confirmed forgets to cancel the 45 s start timeout: it would fire in RUNNING.
    rows = edited("start_confirmed", S.STARTING, cancels=(Timer.STATE_CHECK,))
    assert "timer start_timeout may fire in RUNNING, which has no row for it" in problems(rows)


def test_no_timer_may_stay_armed_in_ended() -> None:
    rows = edited("end_confirmed", S.ENDING, cancels=(Timer.END_TIMEOUT,))
    assert "may stay armed in ENDED" in problems(rows)


def test_every_waiting_state_always_holds_a_timeout() -> None:
    """Invariant of the flow issue: every rental in STARTING or ENDING has an armed timer."""
    rows = edited("end", S.RUNNING, arms=(Timer.STATE_CHECK,))
    assert "ENDING waits for a confirmation but no timeout is always armed" in problems(rows)


def test_a_row_shadowed_by_an_unguarded_row_is_reported() -> None:
    rows = TRANSITIONS + (Row("cancel", (S.IDLE,), S.STARTING),)
    assert "cancel from IDLE can never fire" in problems(rows)


def test_trigger_names_are_snake_case() -> None:
    rows = TRANSITIONS + (Row("Start-Now", (S.IDLE,), S.STARTING, guards=(guards.keyless,)),)
    assert "trigger 'Start-Now' is not lowercase snake_case" in problems(rows)


def test_rows_may_only_set_known_fields() -> None:
    rows = edited("cancel", S.IDLE, sets={"state": "ENDED"})
    assert "cancel: sets unknown fields ['state']" in problems(rows)


def test_a_broken_table_cannot_become_a_machine() -> None:
    with pytest.raises(DefinitionError, match="not reachable"):
        RentalMachine(without("start"))


def test_every_trigger_of_the_table_can_fire_from_a_reachable_state() -> None:
    """Every trigger is used: each has a row whose source is reachable from IDLE."""
    from rental_fsm.machine import _reachable

    reachable = _reachable(TRANSITIONS)
    for row in TRANSITIONS:
        assert set(row.source) & reachable, row.trigger
    assert INITIAL in reachable


def test_every_timer_is_armed_by_some_row_and_fires_a_trigger_of_the_table() -> None:
    armed = {t for r in TRANSITIONS for t in r.arms}
    assert armed == set(Timer)
    assert {t.value for t in Timer} <= {r.trigger for r in TRANSITIONS}
