"""One explicit policy for every inbound message, independent of the transport.

``EventHandler.handle`` classifies a message and does what its class calls for:

=====================  ==========================================  ======================
outcome                when                                        transport does
=====================  ==========================================  ======================
``applied``            the event moved its rental                  ack
``recorded``           it belongs to an active rental, moved none  ack
``duplicate``          its event id was already applied            ack
``stale``              every property older than what is known     ack (recorded)
``no_active_rental``   its vehicle has no active rental            ack (state cached)
``rejected``           the machine refused the transition          ack (logged)
``ignored``            unknown type / newer schema major version   ack (counted, once)
``dead_lettered``      malformed: not JSON, bad metadata, ...      ack (kept with reason)
=====================  ==========================================  ======================

Transient failures (``err.transient``: Redis down, compare-and-set exhausted) are raised
to the transport, which must not ack and retries with backoff: nothing is lost. The
vehicle's latest state is merged before anything else, so every event feeds the cache the
seeds recommend, whether or not a rental is waiting for it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any, NamedTuple, Protocol, cast

import structlog

from ..clock import Clock
from ..engine import Engine, Planned
from ..errors import MalformedEvent, RentalNotFound, TransitionError, VersionConflict
from ..interpreter import Reading, capabilities, interpret_for, vehicle_facts
from ..model import Facts, format_now
from ..oneapi.vehicle_state import Capabilities
from ..store.base import (
    Commit,
    CommitOutcome,
    LogAppend,
    RentalStore,
    VehicleRead,
    VehicleView,
    WriteResult,
)
from .codec import EventKind, IgnoredEvent, VehicleEvent, decode

log = structlog.get_logger(__name__)


class Outcome(str, Enum):
    APPLIED = "applied"
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    STALE = "stale"
    NO_ACTIVE_RENTAL = "no_active_rental"
    REJECTED = "rejected"
    IGNORED = "ignored"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class Handled:
    outcome: Outcome
    event_id: str | None = None
    event_type: str | None = None
    vehicle_id: str | None = None
    rental_id: str | None = None
    trigger: str | None = None
    source: str | None = None
    dest: str | None = None
    reason: str | None = None


class Inbound(NamedTuple):
    """One message as the transport received it (a NamedTuple: built per message)."""

    body: bytes | str
    content_type: str | None
    queue: str
    headers: Mapping[str, Any] | None = None


class _Step(NamedTuple):
    """One event decided: its outcome if the write succeeds, and that write (a
    NamedTuple: immutable, and cheaper to build than a frozen dataclass)."""

    handled: Handled
    write: Commit | LogAppend | None = None
    #: The transition; None for a commit that only updates ``rental.extra`` (a note).
    planned: Planned | None = None
    #: The event's log entry, its facts and its ``rental.extra`` updates, to decide again
    #: after a lost compare-and-set.
    entry: Mapping[str, Any] | None = None
    facts: Facts | None = None
    extra: Mapping[str, Any] | None = None


class DeadLetters(Protocol):
    """Where malformed messages are kept for inspection, with the reason."""

    def put(self, body: bytes, *, reason: str, queue: str,
            headers: Mapping[str, Any] | None = None) -> str: ...


class EventHandler:
    """Applies decoded OneAPI events to rentals through the engine."""

    def __init__(
        self, store: RentalStore, engine: Engine, dead_letters: DeadLetters, *, clock: Clock
    ) -> None:
        self.store = store
        self.engine = engine
        self.dead_letters = dead_letters
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self._ignored_types: set[str] = set()
        self._lock = threading.Lock()

    def handle(
        self, body: bytes | str, *, content_type: str | None, queue: str,
        headers: Mapping[str, Any] | None = None,
    ) -> Handled:
        """Classify and process one message; raises only transient errors."""
        return self.handle_batch([Inbound(body, content_type, queue, headers)])[0]

    def handle_batch(self, messages: Sequence[Inbound]) -> list[Handled]:
        """Classify and process messages in order, one outcome each.

        The same policy as one at a time, with the store's round trips shared: the events
        go in rounds in which no vehicle appears twice (so each vehicle's events keep
        their order), and a round costs one ``read_vehicles`` and one ``write_batch``.
        Raises transient errors, after which any prefix of the batch may be done: the
        caller retries the messages, which dedupe by event id makes safe.
        """
        results: list[Handled | None] = [None] * len(messages)
        rounds: list[list[tuple[int, VehicleEvent]]] = []
        seen: Counter[str] = Counter()
        for i, message in enumerate(messages):
            try:
                event = decode(message.body, content_type=message.content_type)
            except MalformedEvent as exc:
                results[i] = self._dead_letter(message, exc.reason)
                continue
            if isinstance(event, IgnoredEvent):
                results[i] = self._ignored(event)
                continue
            turn = seen[event.vehicle_id]
            seen[event.vehicle_id] += 1
            if turn == len(rounds):
                rounds.append([])
            rounds[turn].append((i, event))
        for events in rounds:
            queues = [messages[i].queue for i, _ in events]
            for i, handled in zip([i for i, _ in events],
                                  self._round([e for _, e in events], queues), strict=True):
                results[i] = self._count(handled)
        return [r for r in results if r is not None]

    def _dead_letter(self, message: Inbound, reason: str) -> Handled:
        body = message.body
        raw = body.encode() if isinstance(body, str) else body
        letter_id = self.dead_letters.put(raw, reason=reason, queue=message.queue,
                                          headers=message.headers)
        log.error("event.dead_lettered", queue=message.queue, reason=reason,
                  dead_letter_id=letter_id)
        return self._count(Handled(Outcome.DEAD_LETTERED, reason=reason))

    def _ignored(self, event: IgnoredEvent) -> Handled:
        key = f"{event.envelope.type}/v{event.envelope.schema_major_version}"
        with self._lock:
            first = key not in self._ignored_types
            self._ignored_types.add(key)
        if first:
            log.warning("event.ignored", event_type=event.envelope.type,
                        schema_major_version=event.envelope.schema_major_version,
                        reason=event.reason)
        return self._count(Handled(Outcome.IGNORED, event.envelope.event_id,
                                   event.envelope.type, reason=event.reason))

    def _round(self, events: Sequence[VehicleEvent], queues: Sequence[str]) -> list[Handled]:
        """Events of distinct vehicles: read together, decided, written together."""
        for event in events:
            if event.kind is EventKind.VEHICLE_CHANGED:
                self._refresh_capabilities(event)
        views = self.store.read_vehicles(
            [VehicleRead(e.vehicle_id, e.envelope.event_id, e.properties) for e in events])
        # One instant for the round: its events are decided together, on one read, and
        # the event's log line says when its transition was decided (replay uses it).
        now = self.clock.now()
        at = format_now(now)
        steps = [self._step(event, view, queue, now, at)
                 for event, view, queue in zip(events, views, queues, strict=True)]
        # Log appends first, then commits: every step is for another rental, so the order
        # is free, and a store writes a run of appends in one call.
        order = sorted((i for i, step in enumerate(steps) if step.write is not None),
                       key=lambda i: isinstance(steps[i].write, Commit))
        results = self.store.write_batch([cast(Commit | LogAppend, steps[i].write)
                                          for i in order]) if order else []
        written = dict(zip(order, results, strict=True))
        return [self._written(step, written[i]) if step.write is not None else step.handled
                for i, step in enumerate(steps)]

    def _step(self, event: VehicleEvent, view: VehicleView, queue: str, now: datetime,
              at: str) -> _Step:
        """What one event means for its rental, and the write that records it."""
        env = event.envelope
        base = {"event_id": env.event_id, "event_type": env.type,
                "vehicle_id": event.vehicle_id}
        rental_id = view.rental_id
        if view.duplicate:
            return _Step(Handled(Outcome.DUPLICATE, rental_id=rental_id, **base))
        touched = {p: v for p, v in event.properties.items() if view.state.get(p) == v}
        entry = {"kind": "event", "at": at, "queue": queue,
                 "event": dict(env.raw)}
        if event.properties and not touched:
            log.info("event.stale", rental_id=rental_id, **base)
            handled = Handled(Outcome.STALE, rental_id=rental_id, **base)
            if rental_id is None:
                return _Step(handled)
            return _Step(handled, LogAppend(rental_id, ({**entry, "outcome": "stale"},)))
        if rental_id is None:
            return _Step(Handled(Outcome.NO_ACTIVE_RENTAL, **base))
        rental = view.rental
        if rental is None:
            raise RentalNotFound(rental_id)
        caps = capabilities(view.capabilities)
        trigger = interpret_for(rental, Reading(touched, view.state, caps))
        heard = {"vehicle_unreachable": False} if rental.extra.get("vehicle_unreachable") \
            else None  # the vehicle is back: the status stops saying it is unreachable
        if trigger is None:
            # positional (the fields' order): the commonest outcome, built for most events
            recorded = Handled(Outcome.RECORDED, env.event_id, env.type, event.vehicle_id,
                               rental_id)
            if heard:  # versioned, so a concurrent transition is never overwritten
                return _Step(recorded, self.engine.plan_note(rental, heard, inputs=[entry]),
                             entry=entry, extra=heard)
            return _Step(recorded, LogAppend(rental_id, (entry,)))
        facts = vehicle_facts(caps, view.state)
        try:
            planned = self.engine.plan(rental, trigger, event_id=env.event_id, facts=facts,
                                       inputs=[entry], extra=heard, now=now)
        except TransitionError as exc:
            return self._rejected(rental_id, trigger, exc, entry, base)
        return _Step(Handled(Outcome.APPLIED, rental_id=rental_id, trigger=trigger,
                             source=planned.decision.source.value,
                             dest=planned.decision.dest.value, **base),
                     planned.commit, planned=planned, entry=entry, facts=facts, extra=heard)

    def _rejected(self, rental_id: str, trigger: str, exc: TransitionError,
                  entry: Mapping[str, Any], base: Mapping[str, Any]) -> _Step:
        log.info("rental.rejected", rental_id=rental_id, trigger=trigger, reason=str(exc),
                 **base)
        return _Step(Handled(Outcome.REJECTED, rental_id=rental_id, trigger=trigger,
                             reason=str(exc), **base),
                     LogAppend(rental_id, ({**entry, "outcome": "rejected"},)))

    def _written(self, step: _Step, result: WriteResult) -> Handled:
        """The outcome once the step's write came back."""
        handled = step.handled
        if isinstance(result, VersionConflict):
            return self._after_conflict(step)
        if isinstance(result, Exception):
            raise result
        if result is CommitOutcome.DUPLICATE:
            return replace(handled, outcome=Outcome.DUPLICATE, trigger=None, source=None,
                           dest=None)
        if step.planned is not None:
            self.engine.committed(step.planned)
        return handled

    def _after_conflict(self, step: _Step) -> Handled:
        """Another writer moved the rental between our read and our write: decide again
        on fresh state, one event alone, through the engine's retrying path."""
        handled = step.handled
        rental_id = cast(str, handled.rental_id)
        base = {"event_id": handled.event_id, "event_type": handled.event_type,
                "vehicle_id": handled.vehicle_id}
        entry = cast(Mapping[str, Any], step.entry)
        if step.planned is None:
            self.engine.note(rental_id, cast(Mapping[str, Any], step.extra), inputs=[entry])
            return handled
        trigger = step.planned.decision.trigger
        try:
            applied = self.engine.apply(rental_id, trigger, event_id=handled.event_id,
                                        facts=step.facts, inputs=[entry], extra=step.extra)
        except TransitionError as exc:
            rejected = self._rejected(rental_id, trigger, exc, entry, base)
            self.store.append_log(rental_id, cast(LogAppend, rejected.write).log_entries)
            return rejected.handled
        if applied.duplicate or applied.decision is None:
            return replace(handled, outcome=Outcome.DUPLICATE, trigger=None, source=None,
                           dest=None)
        return replace(handled, source=applied.decision.source.value,
                       dest=applied.decision.dest.value)

    def _refresh_capabilities(self, event: VehicleEvent) -> None:
        caps = (event.vehicle or {}).get("capabilities")
        if isinstance(caps, Mapping):
            try:
                Capabilities.from_json(caps)
            except ValueError as exc:
                log.warning("event.bad_capabilities", vehicle_id=event.vehicle_id,
                            reason=str(exc))
                return
            self.store.set_capabilities(event.vehicle_id, caps)

    def _count(self, handled: Handled) -> Handled:
        with self._lock:
            self.counts[handled.outcome.value] += 1
        log.info("event.handled", outcome=handled.outcome.value, event_id=handled.event_id,
                 event_type=handled.event_type, vehicle_id=handled.vehicle_id,
                 rental_id=handled.rental_id, trigger=handled.trigger,
                 source=handled.source, dest=handled.dest)
        return handled
