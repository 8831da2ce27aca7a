"""Apply one trigger to one stored rental: load, decide, commit atomically.

The single path every input takes (bus events, timers, booking-backend requests), so all
of them get the same dedupe, compare-and-set retry, rental log and notification. Nothing
here talks to a vehicle: the decision's effects go to the outbox inside the commit, and
the effect runner executes them afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from .clock import Clock
from .errors import VersionConflict
from .machine import MACHINE, MACHINE_VERSION, WAITING_STATES, RentalMachine
from .model import (
    DEFAULT_DURATIONS,
    Decision,
    Effect,
    Facts,
    Rental,
    Timer,
    format_time,
    parse_time,
)
from .store.base import Commit, CommitOutcome, RentalStore

log = structlog.get_logger(__name__)

#: How often a lost compare-and-set is retried with fresh state before giving up.
DEFAULT_MAX_ATTEMPTS = 16
#: How long after a start gave up a late unlock of its vehicle is still secured.
ABORT_WATCH = timedelta(minutes=15)
_ABORTS = frozenset({"start_timeout", "start_failed"})

Listener = Callable[[Rental, Rental, Decision], None]


@dataclass(frozen=True)
class Applied:
    """The result of ``Engine.apply``."""

    outcome: CommitOutcome
    #: The rental after the transition (or as stored, for a duplicate).
    rental: Rental
    #: None for a duplicate: nothing was decided.
    decision: Decision | None = None
    before: Rental | None = None

    @property
    def duplicate(self) -> bool:
        return self.outcome is CommitOutcome.DUPLICATE


@dataclass(frozen=True)
class Planned:
    """A decided transition and the commit that would store it (``Engine.plan``)."""

    commit: Commit
    decision: Decision
    #: The rental it was decided on.
    before: Rental


class Engine:
    """Applies triggers to rentals held in a ``RentalStore``."""

    def __init__(
        self,
        store: RentalStore,
        *,
        clock: Clock,
        machine: RentalMachine = MACHINE,
        durations: Mapping[Timer, timedelta] = DEFAULT_DURATIONS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        listeners: Sequence[Listener] = (),
        notify: bool = False,
    ) -> None:
        #: Add ``Effect.NOTIFY_BOOKING`` to every transition's effects (a notifier is set).
        self.notify = notify
        self.store = store
        self.clock = clock
        self.machine = machine
        self.durations = dict(durations)
        self.max_attempts = max_attempts
        self.listeners = list(listeners)

    def apply(
        self,
        rental_id: str,
        trigger: str,
        *,
        event_id: str | None = None,
        facts: Facts | None = None,
        inputs: Sequence[Mapping[str, Any]] = (),
        extra: Mapping[str, Any] | None = None,
        loaded: Rental | None = None,
    ) -> Applied:
        """Decide ``trigger`` for the rental and commit the result with its log entries.

        Args:
            event_id: the id that makes the input idempotent (event id, timer token id,
                request id); a second apply with it returns a duplicate and writes nothing.
            facts: what the guards know, recorded in the transition's log entry.
            inputs: rental-log entries of the input that caused it (event, request, timer).
            extra: fields to merge into ``rental.extra`` with the transition.
            loaded: the rental as the caller has just loaded it, after checking the
                event id itself: the first attempt decides on it, which saves the dedupe
                check and a load (the commit still checks both atomically).

        Raises:
            RentalNotFound, UnknownTrigger, InvalidTransition, GuardRejected, and
            VersionConflict when every attempt lost the race.
        """
        if loaded is None and event_id is not None and \
                self.store.was_applied(rental_id, event_id):
            return Applied(CommitOutcome.DUPLICATE, self.store.get(rental_id))
        for attempt in range(self.max_attempts):
            rental = loaded if attempt == 0 and loaded is not None else \
                self.store.get(rental_id)
            planned = self.plan(rental, trigger, event_id=event_id, facts=facts,
                                inputs=inputs, extra=extra)
            try:
                outcome = self.store.commit(planned.commit)
            except VersionConflict:
                continue
            if outcome is CommitOutcome.DUPLICATE:
                return Applied(outcome, self.store.get(rental_id))
            return self.committed(planned)
        raise VersionConflict(rental_id)

    def plan(
        self,
        rental: Rental,
        trigger: str,
        *,
        event_id: str | None = None,
        facts: Facts | None = None,
        inputs: Sequence[Mapping[str, Any]] = (),
        extra: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Planned:
        """Decide ``trigger`` for ``rental`` as loaded and build the commit, writing
        nothing: ``apply`` commits it alone, the event batch path with others. After an
        APPLIED commit, ``committed`` must be called. Raises what ``decide`` raises.

        ``now`` (default: the clock) is when the transition happens: the timer runner
        decides a timer ahead of time at its due time (``TimerRunner``, prepared timers).
        """
        now = self.clock.now() if now is None else now
        decision = self.machine.decide(
            rental, trigger, now=now, facts=facts, durations=self.durations
        )
        after = decision.apply(rental, now)
        updates = dict(extra or {})
        if decision.dest in WAITING_STATES and decision.dest is not decision.source:
            # What the interpreter compares confirmations against (a fresh wait).
            updates["waiting_since"] = format_time(now)
        if updates:
            after = replace(after, extra={**after.extra, **updates})
        entries = [*inputs, *overtaken_entries(rental, after, trigger, inputs, now),
                   transition_entry(decision, facts, now, after.version)]
        effects = decision.effects + ((Effect.NOTIFY_BOOKING,) if self.notify else ())
        # seed 000: a start that gave up may still unlock the vehicle; watch it
        watch = ABORT_WATCH if decision.trigger in _ABORTS else None
        commit = Commit(after, rental.version, event_id, effects, tuple(entries), watch)
        return Planned(commit, decision, rental)

    def committed(self, planned: Planned) -> Applied:
        """What follows a planned transition that was committed: the log line and the
        listeners (the abort watch is part of the commit)."""
        rental, after, decision = planned.before, planned.commit.rental, planned.decision
        log.info("rental.transitioned", **transition_fields(planned))
        self._notify(rental, after, decision)
        return Applied(CommitOutcome.APPLIED, after, decision, rental)

    def note(
        self, rental_id: str, extra: Mapping[str, Any], *,
        inputs: Sequence[Mapping[str, Any]] = (),
    ) -> Rental:
        """Update ``rental.extra`` and append log entries without a state change.

        For what the status must show between transitions: the criteria that failed, an
        unreachable vehicle, a best-effort command that failed. Versioned like a
        transition, so a concurrent transition is never overwritten.
        """
        for _ in range(self.max_attempts):
            commit = self.plan_note(self.store.get(rental_id), extra, inputs=inputs)
            try:
                self.store.commit(commit)
            except VersionConflict:
                continue
            return commit.rental
        raise VersionConflict(rental_id)

    def plan_note(
        self, rental: Rental, extra: Mapping[str, Any], *,
        inputs: Sequence[Mapping[str, Any]] = (),
    ) -> Commit:
        """The commit ``note`` makes on ``rental`` as loaded, written by the caller."""
        after = replace(rental, version=rental.version + 1, updated_at=self.clock.now(),
                        extra={**rental.extra, **extra})
        return Commit(after, rental.version, None, (), tuple(inputs))

    def _notify(self, before: Rental, after: Rental, decision: Decision) -> None:
        for listener in self.listeners:
            try:
                listener(before, after, decision)
            except Exception:  # a listener must never undo or block a committed transition
                log.exception("listener.failed", rental_id=after.rental_id,
                              listener=getattr(listener, "__name__", repr(listener)))


def transition_fields(planned: Planned) -> dict[str, Any]:
    """The fields of the ``rental.transitioned`` log line of a committed transition."""
    rental, decision = planned.before, planned.decision
    return {"rental_id": rental.rental_id, "vehicle_id": rental.vehicle_id,
            "trigger": decision.trigger, "source": decision.source.value,
            "dest": decision.dest.value, "version": planned.commit.rental.version,
            "effects": [e.value for e in decision.effects],
            "event_id": planned.commit.event_id}


def overtaken_entries(
    before: Rental, after: Rental, trigger: str, inputs: Sequence[Mapping[str, Any]],
    now: datetime,
) -> list[dict[str, Any]]:
    """``timer`` entries with ``"outcome": "overtaken"`` for the timers that were due
    when the input arrived (its entry's ``at``) but that this transition disarms.

    Live, such a timer lost the race to the input (the timer runner had not reached it
    yet) and never fires. Replay fires every timer due before an entry, so without this
    record it would fire this one and diverge (docs/replay.rst).
    """
    late = [(timer, armed) for timer, armed in before.timers.items()
            if armed.due_at <= now and timer.value != trigger
            and after.timers.get(timer) != armed]
    if not late:
        return []
    arrived = now
    if inputs and isinstance(inputs[-1].get("at"), str):
        arrived = min(now, parse_time(inputs[-1]["at"]))
    return [{"kind": "timer", "at": format_time(arrived), "timer": timer.value,
             "due": format_time(armed.due_at), "outcome": "overtaken"}
            for timer, armed in sorted(late, key=lambda item: item[1].due_at)
            if armed.due_at <= arrived]


def transition_entry(
    decision: Decision, facts: Facts | None, now: Any, version: int
) -> dict[str, Any]:
    """The rental-log ``transition`` entry, with the facts replay needs to decide again."""
    return {
        "kind": "transition",
        "at": format_time(now),
        "trigger": decision.trigger,
        "source": decision.source.value,
        "dest": decision.dest.value,
        "version": version,
        "machine_version": MACHINE_VERSION,
        "facts": (facts or Facts()).to_dict(),
        "effects": [e.value for e in decision.effects],
    }
