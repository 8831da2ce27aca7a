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
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import structlog

from ..clock import Clock
from ..engine import Engine
from ..errors import MalformedEvent, TransitionError
from ..interpreter import Reading, capabilities, interpret_for, vehicle_facts
from ..model import format_time
from ..oneapi.vehicle_state import Capabilities
from ..store.base import RentalStore
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
        try:
            event = decode(body, content_type=content_type)
        except MalformedEvent as exc:
            raw = body.encode() if isinstance(body, str) else body
            letter_id = self.dead_letters.put(raw, reason=exc.reason, queue=queue,
                                              headers=headers)
            log.error("event.dead_lettered", queue=queue, reason=exc.reason,
                      dead_letter_id=letter_id)
            return self._count(Handled(Outcome.DEAD_LETTERED, reason=exc.reason))
        if isinstance(event, IgnoredEvent):
            return self._ignored(event)
        return self._count(self._vehicle_event(event, queue))

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

    def _vehicle_event(self, event: VehicleEvent, queue: str) -> Handled:
        env = event.envelope
        base = {"event_id": env.event_id, "event_type": env.type,
                "vehicle_id": event.vehicle_id}
        if event.kind is EventKind.VEHICLE_CHANGED:
            self._refresh_capabilities(event)
        rental_id = self._active_rental(event.vehicle_id)
        if rental_id is None:  # a start that gave up still watches for a late unlock
            rental_id = self.store.aborted_rental(event.vehicle_id)
        if rental_id is not None and self.store.was_applied(rental_id, env.event_id):
            return Handled(Outcome.DUPLICATE, rental_id=rental_id, **base)
        touched: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        if event.properties:
            merged = self.store.merge_vehicle_state(event.vehicle_id, event.properties)
            touched = {p: v for p, v in event.properties.items() if merged.get(p) == v}
        entry = {"kind": "event", "at": format_time(self.clock.now()), "queue": queue,
                 "event": dict(env.raw)}
        if event.properties and not touched:
            if rental_id is not None:
                self.store.append_log(rental_id, [{**entry, "outcome": "stale"}])
            log.info("event.stale", rental_id=rental_id, **base)
            return Handled(Outcome.STALE, rental_id=rental_id, **base)
        if rental_id is None:
            return Handled(Outcome.NO_ACTIVE_RENTAL, **base)
        rental = self.store.get(rental_id)
        caps = capabilities(self.store.capabilities(event.vehicle_id))
        state = merged or self.store.vehicle_state(event.vehicle_id)
        trigger = interpret_for(rental, Reading(touched, state, caps))
        heard = {"vehicle_unreachable": False} if rental.extra.get("vehicle_unreachable") \
            else None  # the vehicle is back: the status stops saying it is unreachable
        if trigger is None:
            if heard:
                self.engine.note(rental_id, heard, inputs=[entry])
            else:
                self.store.append_log(rental_id, [entry])
            return Handled(Outcome.RECORDED, rental_id=rental_id, **base)
        try:
            applied = self.engine.apply(rental_id, trigger, event_id=env.event_id,
                                        facts=vehicle_facts(caps, state), inputs=[entry],
                                        extra=heard, loaded=rental)
        except TransitionError as exc:
            self.store.append_log(rental_id, [{**entry, "outcome": "rejected"}])
            log.info("rental.rejected", rental_id=rental_id, trigger=trigger,
                     reason=str(exc), **base)
            return Handled(Outcome.REJECTED, rental_id=rental_id, trigger=trigger,
                           reason=str(exc), **base)
        if applied.duplicate or applied.decision is None:
            return Handled(Outcome.DUPLICATE, rental_id=rental_id, **base)
        return Handled(Outcome.APPLIED, rental_id=rental_id, trigger=trigger,
                       source=applied.decision.source.value,
                       dest=applied.decision.dest.value, **base)

    def _active_rental(self, vehicle_id: str) -> str | None:
        return self.store.active_rental(vehicle_id)

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
