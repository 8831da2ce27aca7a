"""The rental machine: the transition table (the single source of truth) and ``decide``.

The table below is plain data. Diagrams, structural checks, docs and replay all read it.
``RentalMachine`` builds one ``transitions.Machine`` per table and shares it between every
rental and thread: each call hands it a throwaway cursor as the model, so nothing is built
per event and nothing is attached to our ``Rental`` objects. ``decide`` is pure: it returns
a :class:`~rental_fsm.model.Decision` and executes nothing, because transitions does not
roll back a state change when a callback raises (its README, "Callback execution order").

This is the only module that imports ``transitions``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from transitions import EventData, Machine, MachineError

from . import guards as g
from .errors import DefinitionError, GuardRejected, InvalidTransition, UnknownTrigger
from .guards import Guard, GuardContext
from .model import (
    DEFAULT_DURATIONS,
    Decision,
    Effect,
    EndReason,
    Facts,
    Rental,
    RentalState,
    Timer,
    TimerChange,
)

S = RentalState
T = Timer
E = Effect

#: Version of the machine's behaviour, stored with every transition record.
MACHINE_VERSION = 1

#: Fields of ``Rental`` a row may set.
SETTABLE_FIELDS = frozenset({"end_reason", "billable", "last_reason"})


@dataclass(frozen=True)
class Row:
    """One transition: ``trigger`` moves a rental from any of ``source`` to ``dest``."""

    trigger: str
    source: tuple[RentalState, ...]
    dest: RentalState
    guards: tuple[Guard, ...] = ()
    arms: tuple[Timer, ...] = ()
    cancels: tuple[Timer, ...] = ()
    effects: tuple[Effect, ...] = ()
    sets: Mapping[str, Any] = field(default_factory=dict)
    #: The rule this row implements, quoted from the seed documents.
    rule: str = ""


ALL_TIMERS = tuple(Timer)
NON_TERMINAL = tuple(s for s in RentalState if s is not S.ENDED)
ACTIVE = tuple(s for s in NON_TERMINAL if s is not S.IDLE)
#: States that wait for the vehicle to confirm a command: each must always hold a timeout.
WAITING_STATES = frozenset({S.STARTING, S.PAUSING, S.RESUMING, S.ENDING})
INITIAL = S.IDLE
TERMINAL = frozenset({S.ENDED})

_BACK_TO_RUNNING = {"end_reason": None, "billable": False}

TRANSITIONS: tuple[Row, ...] = (
    # -- start (seed 002 "How to start a rental?", seed 000 "Start rental") ------------
    Row("start", (S.IDLE,), S.STARTING, guards=(g.vehicle_can_unlock,),
        arms=(T.START_TIMEOUT, T.STATE_CHECK), effects=(E.UNLOCK_VEHICLE,),
        sets={"last_reason": None},
        rule="002: rental/start acknowledges; the status is STARTING until the vehicle "
             "confirms the unlock"),
    Row("start_confirmed", (S.STARTING,), S.RUNNING,
        cancels=(T.START_TIMEOUT, T.STATE_CHECK), arms=(T.AUTO_CANCEL,),
        effects=(E.SET_IN_RENTAL,),
        rule="002: once we have the confirmation, the status changes to RUNNING; "
             "000: then set the rental status IN_RENTAL"),
    Row("start_failed", (S.STARTING,), S.IDLE,
        cancels=(T.START_TIMEOUT, T.STATE_CHECK), sets={"last_reason": "start_failed"},
        rule="002: in case the rental failed to start, the customer status transitions "
             "back to the previous status"),
    Row("start_timeout", (S.STARTING,), S.IDLE, cancels=(T.STATE_CHECK,),
        effects=(E.SECURE_VEHICLE,), sets={"last_reason": "start_timeout"},
        rule="002: a maximum timeout of 45 seconds to rental/start"),
    Row("state_check", (S.STARTING,), S.STARTING, effects=(E.REQUEST_VEHICLE_STATE,),
        rule="000: if no new vehicle states have arrived for some time, request one"),
    Row("unlock_after_abort", (S.IDLE,), S.IDLE, effects=(E.SECURE_VEHICLE,),
        rule="000: a timed-out command may still be executed; an unlock confirmed after "
             "the start gave up is secured again"),
    Row("cancel", (S.IDLE,), S.ENDED,
        sets={"end_reason": EndReason.CANCELLED, "billable": False},
        rule="a rental back in IDLE that the customer abandons"),
    # -- running and the 60 s auto-cancel (seed 002 "Start rental auto-cancel") ---------
    Row("customer_interacted", (S.RUNNING,), S.RUNNING, guards=(g.auto_cancel_armed,),
        cancels=(T.AUTO_CANCEL,),
        rule="002: only the absence of interaction in the first 60 s ends the rental"),
    Row("auto_cancel", (S.RUNNING,), S.ENDING, arms=(T.END_TIMEOUT, T.STATE_CHECK),
        effects=(E.SET_NOT_IN_RENTAL, E.SECURE_VEHICLE),
        sets={"end_reason": EndReason.AUTO_CANCELLED, "billable": False},
        rule="002: we initiate an end rental if the user does not interact within the "
             "first 60 seconds; the rental will not be billed"),
    # -- stopovers (seed 000 "Stopovers") -------------------------------------------------
    Row("begin_stopover", (S.RUNNING,), S.PAUSING, guards=(g.keyless, g.ignition_off),
        arms=(T.STOPOVER_TIMEOUT,), cancels=(T.AUTO_CANCEL,), effects=(E.SECURE_VEHICLE,),
        rule="000: keyless vehicles are locked and immobilised through the app's commands"),
    Row("stopover_confirmed", (S.PAUSING,), S.STOPOVER, cancels=(T.STOPOVER_TIMEOUT,),
        rule="000: wait for the lock to be confirmed by events"),
    Row("stopover_failed", (S.PAUSING,), S.RUNNING, cancels=(T.STOPOVER_TIMEOUT,),
        sets={"last_reason": "stopover_failed"},
        rule="000: at a location with bad signal quality, vehicle commands might not work"),
    Row("stopover_timeout", (S.PAUSING,), S.RUNNING, sets={"last_reason": "stopover_timeout"},
        rule="000: a lock that is not confirmed leaves the rental running"),
    Row("vehicle_parked", (S.RUNNING,), S.STOPOVER, guards=(g.has_key,),
        cancels=(T.AUTO_CANCEL,),
        rule="000: with a key, identify stopovers by the ignition and central lock values"),
    Row("end_stopover", (S.STOPOVER,), S.RESUMING, guards=(g.keyless,),
        arms=(T.RESUME_TIMEOUT,), effects=(E.UNLOCK_VEHICLE,),
        rule="000: unlock and enable driving again at the end of the break"),
    Row("resume_confirmed", (S.RESUMING,), S.RUNNING, cancels=(T.RESUME_TIMEOUT,),
        rule="000: confirm commands through events"),
    Row("resume_failed", (S.RESUMING,), S.STOPOVER, cancels=(T.RESUME_TIMEOUT,),
        sets={"last_reason": "resume_failed"},
        rule="000: commands might not work; the vehicle stays secured"),
    Row("resume_timeout", (S.RESUMING,), S.STOPOVER, sets={"last_reason": "resume_timeout"},
        rule="000: an unlock that is not confirmed leaves the vehicle in its stopover"),
    Row("vehicle_resumed", (S.STOPOVER,), S.RUNNING, guards=(g.has_key,),
        rule="000: with a key, the ignition or the central lock shows the trip goes on"),
    # -- end (seed 000 "End rental", seed 002 "Ending rentals") ---------------------------
    Row("end", (S.RUNNING, S.STOPOVER), S.ENDING, guards=(g.ignition_off, g.end_criteria_met),
        arms=(T.END_TIMEOUT, T.STATE_CHECK), cancels=(T.AUTO_CANCEL,),
        effects=(E.SECURE_VEHICLE,),
        sets={"end_reason": EndReason.COMPLETED, "billable": True, "last_reason": None},
        rule="000: check the end rental conditions, then lock and disable driving; "
             "002: the status is then ENDING"),
    Row("end_confirmed", (S.ENDING,), S.ENDED, cancels=(T.END_TIMEOUT, T.STATE_CHECK),
        rule="000: validate the lock by waiting for CentralLockChanged/VehicleStateRecorded"),
    Row("end_failed", (S.ENDING,), S.RUNNING, cancels=(T.END_TIMEOUT, T.STATE_CHECK),
        effects=(E.SET_IN_RENTAL,), sets={**_BACK_TO_RUNNING, "last_reason": "end_failed"},
        rule="002: e.g. a door is opened right after triggering end rental"),
    Row("end_timeout", (S.ENDING,), S.RUNNING, cancels=(T.STATE_CHECK,),
        effects=(E.SET_IN_RENTAL,), sets={**_BACK_TO_RUNNING, "last_reason": "end_timeout"},
        rule="002: a maximum timeout of 45 seconds to rental/end"),
    Row("late_end_confirmed", (S.RUNNING,), S.ENDED, guards=(g.end_timed_out,),
        cancels=(T.AUTO_CANCEL,), effects=(E.SET_NOT_IN_RENTAL,),
        sets={"end_reason": EndReason.COMPLETED, "billable": True, "last_reason": None},
        rule="000: a timed-out command may still run; a late CentralLockChanged showing "
             "the lock completes the end (underground garage)"),
    Row("state_check", (S.ENDING,), S.ENDING, effects=(E.REQUEST_VEHICLE_STATE,),
        rule="000: underground garage: actively request a new vehicle state"),
    # -- customer service (seed 002 "Manual end rental through Customer Service") -------
    Row("force_end", ACTIVE, S.ENDED, cancels=ALL_TIMERS,
        effects=(E.SET_NOT_IN_RENTAL, E.SECURE_VEHICLE),
        sets={"end_reason": EndReason.FORCE_ENDED, "billable": True},
        rule="002: the rental might be ended any time by our Customer Service or Security"),
    Row("force_end", (S.IDLE,), S.ENDED, cancels=ALL_TIMERS,
        sets={"end_reason": EndReason.FORCE_ENDED, "billable": False},
        rule="002: customer service may end a rental that never started"),
)


class _Cursor:
    """The throwaway model transitions moves; never our Rental object."""

    __slots__ = ("state", "ctx", "vetoes", "row")

    def __init__(self, state: RentalState, ctx: GuardContext) -> None:
        self.state = state
        self.ctx = ctx
        self.vetoes: list[str] = []
        self.row: Row | None = None


def _condition(guard: Guard) -> Any:
    def check(event: EventData) -> bool:
        cursor: _Cursor = event.model  # type: ignore[assignment]
        verdict = guard(cursor.ctx)
        if not verdict.ok:
            cursor.vetoes.append(verdict.reason)
        return verdict.ok

    check.__name__ = guard.__name__
    return check


def _mark(row: Row) -> Any:
    def after(event: EventData) -> None:
        event.model.row = row  # type: ignore[attr-defined]

    return after


class RentalMachine:
    """A validated transition table and the one shared ``transitions.Machine`` for it."""

    def __init__(self, rows: Iterable[Row] = TRANSITIONS) -> None:
        self.rows = tuple(rows)
        validate_table(self.rows)
        self._machine = Machine(
            model=None,
            states=RentalState,
            transitions=[
                {
                    "trigger": row.trigger,
                    "source": list(row.source),
                    "dest": row.dest,
                    "conditions": [_condition(guard) for guard in row.guards],
                    "after": [_mark(row)],
                }
                for row in self.rows
            ],
            initial=INITIAL,
            auto_transitions=False,
            send_event=True,
            queued=False,
            ignore_invalid_triggers=False,
        )
        self.triggers = frozenset(row.trigger for row in self.rows)

    def decide(
        self,
        rental: Rental,
        trigger: str,
        *,
        now: datetime,
        facts: Facts | None = None,
        durations: Mapping[Timer, timedelta] = DEFAULT_DURATIONS,
    ) -> Decision:
        """Decide what ``trigger`` does to ``rental``; executes nothing.

        Raises:
            UnknownTrigger: the trigger is not in the table.
            InvalidTransition: the trigger is not allowed in the rental's state.
            GuardRejected: every candidate transition was vetoed; ``reasons`` says why.
        """
        event = self._machine.events.get(trigger)
        if event is None:
            raise UnknownTrigger(rental.rental_id, rental.state.value, trigger)
        cursor = _Cursor(rental.state, GuardContext(rental, facts or Facts(), now))
        try:
            moved = event.trigger(cursor)
        except MachineError:
            raise InvalidTransition(rental.rental_id, rental.state.value, trigger) from None
        if not moved or cursor.row is None:
            raise GuardRejected(
                rental.rental_id, rental.state.value, trigger, tuple(cursor.vetoes)
            )
        row = cursor.row
        cancelled = set(row.cancels)
        if trigger in _TIMER_TRIGGERS:  # a timer that fired is spent
            cancelled.add(Timer(trigger))
        return Decision(
            rental_id=rental.rental_id,
            trigger=trigger,
            source=rental.state,
            dest=row.dest,
            effects=row.effects,
            armed=tuple(TimerChange(t, now + durations[t]) for t in row.arms),
            cancelled=tuple(t for t in Timer if t in cancelled),
            updates=dict(row.sets),
        )


_TIMER_TRIGGERS = frozenset(t.value for t in Timer)


def validate_table(rows: tuple[Row, ...]) -> None:
    """Check the structural rules; raise ``DefinitionError`` listing every violation."""
    problems = list(table_problems(rows))
    if problems:
        raise DefinitionError("invalid transition table:\n  " + "\n  ".join(problems))


def table_problems(rows: tuple[Row, ...]) -> Iterable[str]:
    """Yield every structural problem of ``rows`` (python-statemachine's checks and ours)."""
    if not rows:
        yield "the table is empty"
        return
    yield from _row_problems(rows)
    reachable = _reachable(rows)
    for state in RentalState:
        if state not in reachable:
            yield f"state {state.value} is not reachable from {INITIAL.value}"
    for state in TERMINAL:
        for row in rows:
            if state in row.source:
                yield f"terminal state {state.value} has an exit ({row.trigger})"
    can_end = _can_reach_terminal(rows)
    for state in RentalState:
        if state not in can_end:
            yield f"ENDED is not reachable from {state.value}"
    yield from _timer_problems(rows)


def _row_problems(rows: tuple[Row, ...]) -> Iterable[str]:
    seen_unguarded: set[tuple[str, RentalState]] = set()
    for row in rows:
        if not row.trigger.isidentifier() or row.trigger != row.trigger.lower():
            yield f"trigger {row.trigger!r} is not lowercase snake_case"
        if not row.source:
            yield f"{row.trigger}: no source state"
        unknown = set(row.sets) - SETTABLE_FIELDS
        if unknown:
            yield f"{row.trigger}: sets unknown fields {sorted(unknown)}"
        for src in row.source:
            if (row.trigger, src) in seen_unguarded:
                yield f"{row.trigger} from {src.value} can never fire: an earlier row " \
                      "without guards takes it"
            if not row.guards:
                seen_unguarded.add((row.trigger, src))
        if row.trigger in _TIMER_TRIGGERS and Timer(row.trigger) in row.arms:
            yield f"{row.trigger}: a timer's own row re-arms it"


def _reachable(rows: tuple[Row, ...]) -> set[RentalState]:
    seen = {INITIAL}
    frontier = [INITIAL]
    while frontier:
        state = frontier.pop()
        for row in rows:
            if state in row.source and row.dest not in seen:
                seen.add(row.dest)
                frontier.append(row.dest)
    return seen


def _can_reach_terminal(rows: tuple[Row, ...]) -> set[RentalState]:
    good = set(TERMINAL)
    changed = True
    while changed:
        changed = False
        for row in rows:
            for src in row.source:
                if row.dest in good and src not in good:
                    good.add(src)
                    changed = True
    return good


def _after(row: Row, armed: frozenset[Timer]) -> frozenset[Timer]:
    spent = {Timer(row.trigger)} if row.trigger in _TIMER_TRIGGERS else set()
    return (armed - set(row.cancels) - spent) | set(row.arms)


def _timer_states(rows: tuple[Row, ...], *, must: bool) -> dict[RentalState, frozenset[Timer]]:
    """Timers that may (``must=False``) or must (``must=True``) be armed in each state.

    A fixpoint over the table: the may-sets grow from empty by union, the must-sets shrink
    from "everything" by intersection, starting from an IDLE rental with no timer.
    """
    everything = frozenset(Timer)
    sets: dict[RentalState, frozenset[Timer]] = {
        s: (everything if must else frozenset()) for s in RentalState
    }
    sets[INITIAL] = frozenset()
    reachable = _reachable(rows)
    for _ in range(len(rows) * len(RentalState) + 2):
        changed = False
        for state in RentalState:
            if state not in reachable:
                continue
            incoming = [
                _after(row, sets[src]) for row in rows if row.dest is state
                for src in row.source if src in reachable
            ]
            if state is INITIAL:
                incoming.append(frozenset())
            if not incoming:
                continue
            new = (frozenset.intersection(*incoming) if must
                   else frozenset().union(*incoming))
            if new != sets[state]:
                sets[state] = new
                changed = True
        if not changed:
            break
    return sets


def _timer_problems(rows: tuple[Row, ...]) -> Iterable[str]:
    armed_somewhere = {t for row in rows for t in row.arms}
    fired = {row.trigger for row in rows}
    cancelled_somewhere = {t for row in rows for t in row.cancels}
    for timer in sorted(armed_somewhere, key=lambda t: t.value):
        if timer.value not in fired:
            yield f"timer {timer.value} is armed but no row fires on it"
        if timer not in cancelled_somewhere:
            yield f"timer {timer.value} is armed but never cancelled"
    may = _timer_states(rows, must=False)
    for state, timers in may.items():
        for timer in timers:
            if not any(row.trigger == timer.value and state in row.source for row in rows):
                yield f"timer {timer.value} may fire in {state.value}, which has no row for it"
        if state in TERMINAL and timers:
            yield f"timers {sorted(t.value for t in timers)} may stay armed in {state.value}"
    must = _timer_states(rows, must=True)
    for state in WAITING_STATES:
        leaving = {
            t for t in must[state]
            if any(r.trigger == t.value and state in r.source and r.dest is not state
                   for r in rows)
        }
        if state in _reachable(rows) and not leaving:
            yield f"{state.value} waits for a confirmation but no timeout is always armed"


#: The standard machine, validated at import.
MACHINE = RentalMachine(TRANSITIONS)
decide = MACHINE.decide
