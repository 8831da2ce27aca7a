"""Run committed effects against the vehicle API, at most once each.

The outbox holds what a transition asked for; this runner claims an entry (so two workers
never send it both, and a worker that died mid-call never resends it), picks the commands
the vehicle's capabilities allow (seed 000: the combined command when supported, else the
single ones), sends them, and feeds what comes back into the machine:

- a response's vehicle state is merged into the cache and interpreted like an event, so
  it may confirm the command (seed 000 asks to confirm through events as well, which the
  event handler does when they arrive);
- a definite refusal (409, 4xx, unit error after retries) becomes the follow-up trigger
  of the state that waits for it (``start_failed``, ``end_failed``...);
- an unknown outcome (timeout, connection error, bare 5xx) is never resent: the command
  may have run (seed 000 "Command responses"); the rental waits for events, its
  ``state_check`` timer requests a state once, and its timeout bounds the wait.

Seed 000: "you should not execute any commands while the customer is driving": no vehicle
command goes out while the cached ignition is ON (rental-status calls are not commands).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import structlog

from .clock import Clock
from .engine import Engine
from .errors import OneAPIError, OutcomeUnknown, RateLimited, TransitionError
from .interpreter import Reading, capabilities, interpret_for, value, vehicle_facts
from .model import Effect, RentalState, format_time
from .notify import RENTAL_STATE_CHANGED, Notifier
from .oneapi.resources import IN_RENTAL, NOT_IN_RENTAL, Result
from .oneapi.vehicle_state import Capabilities, Command, VehicleState
from .store.base import OutboxEntry, RentalStore

log = structlog.get_logger(__name__)
S = RentalState

#: Attempts for a transiently refused command (409 conflicting-command, 429, unit busy).
MAX_TRANSIENT_ATTEMPTS = 3
#: The longest one retry may wait; a longer Retry-After counts as a refusal.
MAX_RETRY_WAIT_S = 3.0
#: A claim older than this belongs to a sender that died: its call may have run, so the
#: effect is closed as "outcome unknown", never sent again.
CLAIM_LEASE = timedelta(minutes=2)
#: Follow-up transitions one ``run_rental`` may chase before leaving the rest to a sweep.
MAX_FOLLOW_UP_ROUNDS = 8
#: Rentals whose commands are sent at once by one runner (``dispatch``).
DEFAULT_PARALLEL = 16

#: Which state waits for which effect, and the trigger its definite failure causes.
FAILURE_TRIGGERS: Mapping[tuple[RentalState, Effect], str] = {
    (S.STARTING, Effect.UNLOCK_VEHICLE): "start_failed",
    (S.RESUMING, Effect.UNLOCK_VEHICLE): "resume_failed",
    (S.PAUSING, Effect.SECURE_VEHICLE): "stopover_failed",
    (S.ENDING, Effect.SECURE_VEHICLE): "end_failed",
}


class VehicleCommands(Protocol):
    """The part of ``OneAPIClient`` the runner uses (a fake can stand in)."""

    def command(self, vehicle_id: str, command: Command) -> Result[VehicleState]: ...

    def set_rental_status(
        self, vehicle_id: str, value: str, *, request_new_vehicle_state: bool = True
    ) -> Result[VehicleState | None]: ...


def plan(effect: Effect, caps: Capabilities) -> list[Command]:
    """The commands an effect needs on a vehicle with ``caps`` (seed 000)."""
    if effect is Effect.UNLOCK_VEHICLE:
        if caps.supports(Command.UNLOCK_AND_ENABLE_DRIVING):
            return [Command.UNLOCK_AND_ENABLE_DRIVING]
        singles = (Command.UNLOCK_CENTRAL_LOCK, Command.ENABLE_DRIVING)
        return [c for c in singles if caps.supports(c)]
    if effect is Effect.SECURE_VEHICLE:
        if caps.supports(Command.LOCK_AND_DISABLE_DRIVING):
            return [Command.LOCK_AND_DISABLE_DRIVING]
        singles = (Command.LOCK_CENTRAL_LOCK, Command.DISABLE_DRIVING)
        return [c for c in singles if caps.supports(c)]
    if effect is Effect.REQUEST_VEHICLE_STATE:
        return [Command.REQUEST_VEHICLE_STATE] if caps.supports(
            Command.REQUEST_VEHICLE_STATE) else []
    return []


@dataclass(frozen=True)
class EffectOutcome:
    effect_id: str
    effect: Effect
    #: sent, skipped, unknown, refused
    result: str
    detail: str = ""


#: How long commands give way at most to a burst of due timers (from when the burst
#: began holding them: timers that keep falling due must not starve the commands).
DEFAULT_MAX_DEFER = 1.0


class EffectRunner:
    """Drains rentals' outboxes; safe to run in several workers at once."""

    def __init__(
        self, store: RentalStore, engine: Engine, api: VehicleCommands, *, clock: Clock,
        owner: str, sleep: Callable[[float], None] = time.sleep,
        notifier: Notifier | None = None, parallel: int = DEFAULT_PARALLEL,
    ) -> None:
        self.notifier = notifier
        #: Rentals whose effects run at once in ``dispatch`` (each rental in one thread).
        self.parallel = parallel
        self._pool: ThreadPoolExecutor | None = None
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        #: Effects this runner has put on the wire: a claim of ours that is not in here
        #: was never sent (e.g. Redis failed in between) and may be run again.
        self._sent: set[str] = set()
        self.store = store
        self.engine = engine
        self.api = api
        self.clock = clock
        self.owner = owner
        self.sleep = sleep
        #: Set while due timers are fired on time (``TimerRunner.caught_up``): new
        #: commands wait for it, for ``max_defer`` at most from when the hold began (the
        #: worker wires it).
        self.defer_to: threading.Event | None = None
        self.max_defer = DEFAULT_MAX_DEFER
        #: ``time.monotonic()`` when ``defer_to`` was first seen clear (None: it is set).
        self._held_since: float | None = None

    def sweep(self, limit: int = 100) -> list[EffectOutcome]:
        """Run the pending effects of up to ``limit`` rentals, here and now (drains, tests,
        replay)."""
        outcomes: list[EffectOutcome] = []
        for rental_id in sorted(self.store.rentals_with_pending_effects())[:limit]:
            outcomes.extend(self.run_rental(rental_id))
        return outcomes

    def dispatch(self, limit: int = 1000) -> int:
        """Hand rentals with pending effects to a thread pool; returns how many were handed.

        Vehicle commands are synchronous at OneAPI and may take up to the read timeout, so
        one vehicle's slow command must not hold up every other rental: rentals run in
        parallel, each in one thread at a time (its effects stay in commit order).
        """
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="rental-fsm-fx")
        if self._hold_left() > 0:
            return 0  # a burst of due timers is being fired: their commits come first
        handed = 0
        for rental_id in sorted(self.store.rentals_with_pending_effects())[:limit]:
            with self._busy_lock:
                if rental_id in self._busy:
                    continue
                self._busy.add(rental_id)
            self._pool.submit(self._run_and_release, rental_id)
            handed += 1
        return handed

    def _hold_left(self) -> float:
        """Seconds new commands should still give way to a burst of due timers: none when
        the timers are caught up, else what is left of ``max_defer`` since the hold
        began. A burst that goes on holds commands once, not for as long as it lasts."""
        defer_to = self.defer_to
        if defer_to is None or defer_to.is_set():
            self._held_since = None
            return 0.0
        now = time.monotonic()
        since = self._held_since  # one read: the pool's threads call this too
        if since is None:
            since = self._held_since = now
        return max(0.0, since + self.max_defer - now)

    def _run_and_release(self, rental_id: str) -> None:
        try:
            left = self._hold_left()
            if left > 0 and self.defer_to is not None:
                self.defer_to.wait(left)
            self.run_rental(rental_id)
        except Exception:  # logged; the effect stays in the outbox for the next dispatch
            log.exception("effect.run_failed", rental_id=rental_id)
        finally:
            with self._busy_lock:
                self._busy.discard(rental_id)

    def close(self) -> None:
        """Wait for the effects in flight, then stop the pool."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def run_rental(
        self, rental_id: str, only: Callable[[OutboxEntry], bool] | None = None,
    ) -> list[EffectOutcome]:
        """Run one rental's pending effects in commit order (those ``only`` selects:
        replay runs each effect where its log shows it)."""
        outcomes: list[EffectOutcome] = []
        progress = True
        rounds = 0
        while progress:  # a response may commit a follow-up whose effects run right away
            rounds += 1
            if rounds > MAX_FOLLOW_UP_ROUNDS:  # never spin: the next sweep goes on
                log.error("effect.too_many_rounds", rental_id=rental_id, rounds=rounds)
                return outcomes
            progress = False
            for entry in self.store.pending_effects(rental_id):
                if only is not None and not only(entry):
                    continue
                now = self.clock.now()
                if entry.effect is Effect.NOTIFY_BOOKING:
                    if not self._notify(entry):
                        return outcomes  # the notifier is down: retry later, in order
                    outcomes.append(EffectOutcome(entry.effect_id, entry.effect, "sent"))
                    progress = True
                    continue
                claimed = self.store.claim_effect(rental_id, entry.effect_id, self.owner, now)
                if not claimed and self._ours(entry) and entry.effect_id in self._sent:
                    # We sent it, then the store failed before it was marked done: finish
                    # the bookkeeping, never the call (at most once).
                    log.warning("effect.completed_late", rental_id=rental_id,
                                effect_id=entry.effect_id)
                    self.store.complete_effect(rental_id, entry.effect_id)
                    self._sent.discard(entry.effect_id)
                    progress = True
                    continue
                if not claimed and not self._ours(entry):
                    abandoned = self._close_abandoned(entry, now)
                    if abandoned is None:
                        return outcomes  # another worker is sending it; keep commit order
                    outcomes.append(abandoned)
                else:
                    outcomes.append(self._run(entry))
                    self.store.complete_effect(rental_id, entry.effect_id)
                    self._sent.discard(entry.effect_id)
                progress = True
        return outcomes

    def _ours(self, entry: OutboxEntry) -> bool:
        """Claimed by this runner earlier (a store failure interrupted it)."""
        claim = self.store.effect_claim(entry.rental_id, entry.effect_id)
        return claim is not None and claim[0] == self.owner

    def _notify(self, entry: OutboxEntry) -> bool:
        """At least once: not claimed, completed only after the notifier took it."""
        if self.notifier is not None:
            try:
                self.notifier.publish(change_of(self.store, entry))
            except Exception:
                log.warning("notify.retrying", rental_id=entry.rental_id,
                            version=entry.version, exc_info=True)
                return False
        self.store.complete_effect(entry.rental_id, entry.effect_id)
        return True

    def _close_abandoned(self, entry: OutboxEntry, now: Any) -> EffectOutcome | None:
        claim = self.store.effect_claim(entry.rental_id, entry.effect_id)
        if claim is None or now - claim[1] < CLAIM_LEASE:
            return None
        log.warning("effect.abandoned", rental_id=entry.rental_id, effect=entry.effect.value,
                    effect_id=entry.effect_id, claimed_by=claim[0])
        self.store.complete_effect(entry.rental_id, entry.effect_id)
        return EffectOutcome(entry.effect_id, entry.effect, "unknown", "sender died")

    def _run(self, entry: OutboxEntry) -> EffectOutcome:
        rental = self.store.get(entry.rental_id)
        caps = capabilities(self.store.capabilities(rental.vehicle_id))
        if entry.effect in (Effect.SET_IN_RENTAL, Effect.SET_NOT_IN_RENTAL):
            status = IN_RENTAL if entry.effect is Effect.SET_IN_RENTAL else NOT_IN_RENTAL
            return self._call(entry, rental.vehicle_id, f"rental-status {status}",
                              lambda: self.api.set_rental_status(rental.vehicle_id, status))
        commands = plan(entry.effect, caps)
        if not commands:
            log.warning("effect.skipped", effect=entry.effect.value, rental_id=rental.rental_id,
                        reason="no capability for it")
            return EffectOutcome(entry.effect_id, entry.effect, "skipped", "no capability")
        outcome = EffectOutcome(entry.effect_id, entry.effect, "sent")
        touched: dict[str, Any] = {}
        for command in commands:
            # Seed 000: never while someone drives; checked before every command, as a
            # response half-way through a sequence may be what reveals the ignition.
            if value(self.store.vehicle_state(rental.vehicle_id), "ignition") == "ON":
                log.warning("effect.skipped", effect=entry.effect.value,
                            rental_id=rental.rental_id, command=command.value,
                            reason="ignition is on")
                outcome = EffectOutcome(entry.effect_id, entry.effect, "skipped",
                                        "ignition on")
                self._fail(entry, "ignition is on: no command while the customer is driving")
                break
            outcome = self._call(
                entry, rental.vehicle_id, command.value,
                lambda c=command: self.api.command(rental.vehicle_id, c),  # type: ignore[misc]
                touched=touched,
            )
            if outcome.result != "sent":
                break
        if touched:  # judged once the whole sequence ran, not half-way through it
            self._feed_response(entry, rental.vehicle_id, touched)
        return outcome

    def _call(
        self, entry: OutboxEntry, vehicle_id: str, what: str,
        send: Callable[[], Result[Any]], touched: dict[str, Any] | None = None,
    ) -> EffectOutcome:
        """Send one call; merge a returned state into the cache and into ``touched``
        (or interpret it at once when no sequence collects it)."""
        for attempt in range(1, MAX_TRANSIENT_ATTEMPTS + 1):
            self._sent.add(entry.effect_id)
            try:
                result = send()
            except OutcomeUnknown as exc:
                error = "connection" if "connection" in str(exc).lower() else "timeout"
                self._log_call(entry, vehicle_id, what, None, None, error, exc)
                log.warning("effect.outcome_unknown", rental_id=entry.rental_id,
                            effect=entry.effect.value, command=what, flow_id=exc.flow_id)
                if entry.effect is Effect.REQUEST_VEHICLE_STATE:
                    # Seed 000: no connection even for a state request; the app may fall
                    # back to Bluetooth. Cleared when the vehicle is heard from again.
                    self.engine.note(entry.rental_id, {"vehicle_unreachable": True})
                return EffectOutcome(entry.effect_id, entry.effect, "unknown", str(exc))
            except OneAPIError as exc:
                self._log_call(entry, vehicle_id, what, exc.status, None, None, exc)
                wait = self._retry_wait(exc, attempt)
                if wait is not None:
                    self.sleep(wait)
                    continue
                log.warning("effect.refused", rental_id=entry.rental_id,
                            effect=entry.effect.value, command=what,
                            problem_type=exc.problem_type, flow_id=exc.flow_id)
                self._fail(entry, f"{what} refused: {exc}")
                return EffectOutcome(entry.effect_id, entry.effect, "refused", str(exc))
            state = result.value
            body = state.to_json() if isinstance(state, VehicleState) else None
            self._log_call(entry, vehicle_id, what, result.status, body, None, None)
            if body:
                merged = self.store.merge_vehicle_state(vehicle_id, body)
                won = {p: v for p, v in body.items() if merged.get(p) == v}
                if touched is None:
                    self._feed_response(entry, vehicle_id, won)
                else:
                    touched.update(won)
            return EffectOutcome(entry.effect_id, entry.effect, "sent")
        return EffectOutcome(entry.effect_id, entry.effect, "refused", "retries exhausted")

    def _retry_wait(self, exc: OneAPIError, attempt: int) -> float | None:
        if not exc.transient or attempt >= MAX_TRANSIENT_ATTEMPTS:
            return None
        wait = 0.2 * 2 ** (attempt - 1)
        if isinstance(exc, RateLimited) and exc.retry_at is not None:
            wait = (exc.retry_at - self.clock.now()).total_seconds()
        return max(wait, 0.0) if wait <= MAX_RETRY_WAIT_S else None

    def _feed_response(self, entry: OutboxEntry, vehicle_id: str,
                       touched: Mapping[str, Any]) -> None:
        """Interpret what the responses brought (already merged) like an event."""
        merged = self.store.vehicle_state(vehicle_id)
        rental = self.store.get(entry.rental_id)
        caps = capabilities(self.store.capabilities(vehicle_id))
        trigger = interpret_for(rental, Reading(touched, merged, caps))
        if trigger is None:
            return
        self._apply(entry, trigger, f"{entry.effect_id}:response",
                    vehicle_facts(caps, merged))

    def _fail(self, entry: OutboxEntry, reason: str) -> None:
        rental = self.store.get(entry.rental_id)
        trigger = FAILURE_TRIGGERS.get((rental.state, entry.effect))
        if trigger is not None:
            self._apply(entry, trigger, f"{entry.effect_id}:failed", None,
                        extra={"last_failure": reason})
        else:  # best effort (e.g. securing after a force end): reported, not raised
            self.engine.note(entry.rental_id, {"last_failure": reason})

    def _apply(self, entry: OutboxEntry, trigger: str, event_id: str, facts: Any,
               extra: Mapping[str, Any] | None = None) -> None:
        try:
            self.engine.apply(entry.rental_id, trigger, event_id=event_id, facts=facts,
                              extra=extra)
        except TransitionError as exc:  # the rental moved on meanwhile: nothing to do
            log.info("effect.follow_up_rejected", rental_id=entry.rental_id,
                     trigger=trigger, reason=str(exc))

    def _log_call(self, entry: OutboxEntry, vehicle_id: str, what: str, status: int | None,
                  body: Mapping[str, Any] | None, error: str | None,
                  exc: Exception | None) -> None:
        record = call_entry(self.clock.now(), vehicle_id, what, status, body, error, exc)
        record["effect_id"] = entry.effect_id
        self.store.append_log(entry.rental_id, [record])


def call_entry(now: Any, vehicle_id: str, what: str, status: int | None,
               body: Mapping[str, Any] | None, error: str | None,
               exc: Exception | None = None, *, fresh: bool = True) -> dict[str, Any]:
    """The rental-log ``call`` entry of one OneAPI call and its outcome (``fresh``: the
    rental-status call's ``request_new_vehicle_state``, recorded in its path)."""
    method, path = _describe(vehicle_id, what, fresh)
    record: dict[str, Any] = {"kind": "call", "at": format_time(now), "method": method,
                              "path": path, "status": status, "body": body, "error": error}
    if exc is not None:
        record["problem"] = type(exc).__name__
    return record


def change_of(store: RentalStore, entry: OutboxEntry) -> dict[str, Any]:
    """The RentalStateChanged notification of the commit that made ``entry.version``."""
    from .status import RentalStatus

    transition: dict[str, Any] = next((e for e in reversed(store.log(entry.rental_id))
                       if e.get("kind") == "transition" and e.get("version") == entry.version),
                      {})
    return {
        "type": RENTAL_STATE_CHANGED, "message_id": f"{entry.rental_id}:{entry.version}",
        "rental_id": entry.rental_id, "version": entry.version,
        "trigger": transition.get("trigger"), "source": transition.get("source"),
        "dest": transition.get("dest"), "at": transition.get("at"),
        "status": RentalStatus.of(store.get(entry.rental_id)).to_dict(),
    }


def _describe(vehicle_id: str, what: str, fresh: bool = True) -> tuple[str, str]:
    """Method and path (with query) of a call, as rental-log.md records it."""
    if what.startswith("rental-status"):
        flag = "true" if fresh else "false"
        return "PUT", f"/vehicles/{vehicle_id}/rental-status?request_new_vehicle_state={flag}"
    return "POST", f"/vehicles/{vehicle_id}/commands/{what}"


__all__: Sequence[str] = ("EffectOutcome", "EffectRunner", "FAILURE_TRIGGERS", "call_entry",
                          "change_of", "plan")
