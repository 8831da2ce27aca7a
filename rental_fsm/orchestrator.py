"""The embedding API: what a booking backend calls to run rentals.

Calls return at once with the new status, like the provider API of seed 002: a start
answers STARTING ("we are trying to unlock the vehicle") and the outcome arrives through
events and timers. Each call is idempotent for its rental id (a retried HTTP request in
the booking backend never starts a second rental), validates its input, and asks the
``authorize`` hook before any command is sent for a customer (seed 000: "make sure they
are allowed to start a rental and use the corresponding vehicle before sending any
commands").

Commands themselves go out from the outbox: in this process (``run_pending`` or
``start_background``) or in ``rental-fsm worker`` processes, whichever runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import structlog

from .clock import Clock, SystemClock
from .config import Settings
from .criteria import CriteriaReport, EndPolicy, evaluate
from .effects import EffectRunner, VehicleCommands, call_entry
from .engine import Engine
from .errors import (
    EndRentalCriteriaNotMet,
    GuardRejected,
    InvalidInput,
    InvalidTransition,
    NotAuthorized,
    OneAPIError,
    OutcomeUnknown,
    RentalExists,
    RentalFSMError,
    RentalNotFound,
)
from .ids import check_id
from .interpreter import vehicle_facts
from .machine import MACHINE, RentalMachine
from .model import CustomerStatus, EndReason, Rental, RentalState, Timer, format_time
from .notify import CallbackNotifier, FanOut, Notifier
from .oneapi.resources import IN_RENTAL, NOT_IN_RENTAL, Result, Vehicle
from .oneapi.vehicle_state import Capabilities
from .status import RentalStatus
from .store.base import RentalStore
from .worker.timer_runner import DEFAULT_HORIZON, TimerRunner

log = structlog.get_logger(__name__)
S = RentalState

Authorize = Callable[[str, str], bool]


class VehicleAPI(VehicleCommands, Protocol):
    """What the orchestrator needs of OneAPI: commands plus the vehicle's capabilities."""

    def get_vehicle(self, vehicle_id: str) -> Result[Vehicle]: ...


@dataclass(frozen=True)
class _Call:
    """One booking-backend request, as the rental log records it."""

    op: str
    args: Mapping[str, Any]


def _decided_on(state: Mapping[str, Any]) -> dict[str, Any]:
    """The request entry's record of the vehicle state a request decided on (an added
    field, as ``start`` has). An event's state is merged before its own log line is
    written, so a request in between may have seen more than the log shows before it;
    replay merges this first and decides the same way."""
    return {"vehicle_state": dict(state)}


class Orchestrator:
    """Runs rentals for a booking backend. Thread-safe; share one per process."""

    def __init__(
        self, store: RentalStore, api: VehicleAPI, *, authorize: Authorize,
        clock: Clock | None = None, durations: Mapping[Timer, timedelta] | None = None,
        end_policy: EndPolicy | None = None, machine: RentalMachine = MACHINE,
        notifier: Notifier | None = None, owner: str = "orchestrator",
        timer_horizon: timedelta = DEFAULT_HORIZON,
    ) -> None:
        if not callable(authorize):
            raise TypeError("authorize must be a callable (customer_id, vehicle_id) -> bool")
        self.store = store
        self.api = api
        self.authorize = authorize
        self.clock = clock or SystemClock()
        self.end_policy = end_policy or EndPolicy()
        kwargs: dict[str, Any] = {"durations": durations} if durations else {}
        self.engine = Engine(store, clock=self.clock, machine=machine,
                             notify=notifier is not None, **kwargs)
        self.effects = EffectRunner(store, self.engine, api, clock=self.clock, owner=owner,
                                    notifier=notifier)
        self.timers = TimerRunner(store, store.timers, self.engine,  # type: ignore[attr-defined]
                                  clock=self.clock, horizon=timer_horizon)
        self.effects.defer_to = self.timers.caught_up  # a burst of due timers goes first
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_settings(
        cls, settings: Settings, *, authorize: Authorize,
        on_change: Callable[[Mapping[str, Any]], None] | None = None,
        api: VehicleAPI | None = None, clock: Clock | None = None,
        end_policy: EndPolicy | None = None,
    ) -> Orchestrator:
        """Build from settings: Redis when ``redis_url`` is set (else in memory), the
        OneAPI client, and notifications to ``on_change`` and/or ``notify_exchange``."""
        from .store.memory import InMemoryRentalStore

        clock = clock or SystemClock()
        store: RentalStore
        if settings.redis_url:
            from .store.base import Keys
            from .store.redis import RedisRentalStore, connect

            store = RedisRentalStore(connect(settings.redis_url), Keys(settings.namespace),
                                     retention=settings.retention)
        else:
            store = InMemoryRentalStore(retention=settings.retention, clock=clock)
        if api is None:
            from .oneapi.client import OneAPIClient

            api = OneAPIClient(settings.oneapi_url, settings.oneapi_client_id,
                               settings.oneapi_client_secret, clock=clock)
        notifiers: list[Notifier] = []
        if on_change is not None:
            notifiers.append(CallbackNotifier(on_change))
        if settings.notify_exchange and settings.amqp_url:
            from .worker.notify import KombuNotifier

            notifiers.append(KombuNotifier.from_url(settings.amqp_url,
                                                    settings.notify_exchange))
        notifier = FanOut(notifiers) if notifiers else None
        return cls(store, api, authorize=authorize, clock=clock,
                   durations=settings.durations(), end_policy=end_policy, notifier=notifier,
                   timer_horizon=settings.timer_horizon)

    # -- the embedding API ------------------------------------------------------------------

    def start_rental(
        self, rental_id: str, *, vehicle_id: str, customer_id: str,
        customer_status: str | CustomerStatus = CustomerStatus.IDLE,
    ) -> RentalStatus:
        """Start a rental: STARTING now, RUNNING once the vehicle confirms the unlock.

        Raises:
            InvalidInput: a bad id or customer status, or the rental id already names a
                rental of another vehicle or customer.
            NotAuthorized: the hook denied it; nothing was sent.
            VehicleBusy, CustomerBusy: another active rental holds them.
            GuardRejected: the vehicle cannot be unlocked (no such capability).
        """
        check_id("rental_id", rental_id)
        check_id("vehicle_id", vehicle_id)
        check_id("customer_id", customer_id)
        before = _customer_status(customer_status)
        call = _Call("start", {"vehicle_id": vehicle_id, "customer_id": customer_id,
                               "customer_status": before.value})
        existing = self._existing(rental_id)
        if existing is not None:
            if (existing.vehicle_id, existing.customer_id) != (vehicle_id, customer_id):
                raise InvalidInput("rental_id", f"{rental_id!r} is another vehicle's or "
                                                "customer's rental")
            if existing.version > 0:
                return RentalStatus.of(existing)  # a retried request: nothing more to do
        if not self.authorize(customer_id, vehicle_id):
            log.warning("request.denied", op="start", rental_id=rental_id,
                        vehicle_id=vehicle_id)
            raise NotAuthorized(customer_id, vehicle_id)
        caps = self._capabilities(vehicle_id)
        if existing is None:
            try:
                self.store.create(Rental(rental_id, vehicle_id, customer_id,
                                         customer_status_before=before,
                                         created_at=self.clock.now()))
            except RentalExists:
                return self.start_rental(rental_id, vehicle_id=vehicle_id,
                                         customer_id=customer_id, customer_status=before)
        state = self.store.vehicle_state(vehicle_id)
        facts = vehicle_facts(caps, state)
        # What replay needs to decide the same way without asking OneAPI (added fields).
        context = {"capabilities": {"commands": sorted(caps.commands),
                                    "vehicle_state": sorted(caps.vehicle_state)},
                   "vehicle_state": state}
        return self._transition(rental_id, "start", call, facts=facts,
                                event_id=f"request:{rental_id}:start", context=context)

    def status(self, rental_id: str) -> RentalStatus:
        """The rental's current status. Raises RentalNotFound."""
        check_id("rental_id", rental_id)
        return RentalStatus.of(self.store.get(rental_id))

    def begin_stopover(self, rental_id: str) -> RentalStatus:
        """Keyless vehicles: lock and immobilise for a break (seed 000 "Stopovers")."""
        rental = self._get(rental_id)
        if rental.state in (S.PAUSING, S.STOPOVER):
            return RentalStatus.of(rental)
        self._authorize(rental, "begin_stopover")
        caps = self._capabilities(rental.vehicle_id)
        state = self.store.vehicle_state(rental.vehicle_id)
        return self._transition(rental_id, "begin_stopover", _Call("begin_stopover", {}),
                                facts=vehicle_facts(caps, state), context=_decided_on(state))

    def end_stopover(self, rental_id: str) -> RentalStatus:
        """Keyless vehicles: unlock and enable driving again after the break."""
        rental = self._get(rental_id)
        if rental.state in (S.RESUMING, S.RUNNING):
            return RentalStatus.of(rental)
        self._authorize(rental, "end_stopover")
        caps = self._capabilities(rental.vehicle_id)
        state = self.store.vehicle_state(rental.vehicle_id)
        return self._transition(rental_id, "end_stopover", _Call("end_stopover", {}),
                                facts=vehicle_facts(caps, state), context=_decided_on(state))

    def end_rental(self, rental_id: str) -> RentalStatus:
        """End: NOT_IN_RENTAL with a fresh state, check the criteria, then secure.

        Seed 000 "End rental": first set the rental status back to NOT_IN_RENTAL (with
        ``request_new_vehicle_state=true``), check the end rental conditions on that
        state, then lock and disable driving. Unmet criteria leave the rental RUNNING,
        IN_RENTAL again, and raise ``EndRentalCriteriaNotMet`` listing them.
        """
        rental = self._get(rental_id)
        if rental.state in (S.ENDING, S.ENDED):
            return RentalStatus.of(rental)
        call = _Call("end", {})
        if rental.state not in (S.RUNNING, S.STOPOVER):
            self._reject(rental, call, InvalidTransition(rental_id, rental.state.value, "end"))
        self._authorize(rental, "end")
        caps = self._capabilities(rental.vehicle_id)
        state = self.store.vehicle_state(rental.vehicle_id)
        context = _decided_on(state)
        if vehicle_facts(caps, state).ignition_on:  # seed 000: no command while driving
            self._reject(rental, call, GuardRejected(
                rental_id, rental.state.value, "end",
                ["ignition is on: no command while the customer is driving"]), context)
        fresh, unreachable, calls = self._rental_status(rental, NOT_IN_RENTAL, fresh=True)
        state = self.store.merge_vehicle_state(rental.vehicle_id, fresh) if fresh else state
        report = evaluate(rental.vehicle_id, state, caps.vehicle_state,
                          now=self.clock.now(), policy=self.end_policy)
        noted = {"unmet": report.unmet(), "criteria": _criteria(report),
                 "vehicle_unreachable": unreachable}
        if not report.ok:
            _, _, back = self._rental_status(rental, IN_RENTAL, fresh=False)
            error = EndRentalCriteriaNotMet(rental_id, rental.state.value, report.unmet())
            self.engine.note(rental_id, noted, inputs=[
                *calls, *back, self._request(call, error, context)])
            raise error
        facts = vehicle_facts(caps, state, unmet=())
        return self._transition(rental_id, "end", call, facts=facts, extra=noted,
                                pre=calls, context=context)

    def force_end(self, rental_id: str, *, reason: str = "customer_service") -> RentalStatus:
        """Customer service ends the rental now, from any state (seed 002). The vehicle is
        secured best-effort afterwards; a failure there shows in ``last_failure``."""
        rental = self._get(rental_id)
        if rental.state is S.ENDED:
            return RentalStatus.of(rental)
        if not isinstance(reason, str) or not 0 < len(reason) <= 200:
            raise InvalidInput("reason", "must be a short non-empty string")
        return self._transition(rental_id, "force_end", _Call("force_end", {"reason": reason}),
                                extra={"force_reason": reason})

    def cancel(self, rental_id: str) -> RentalStatus:
        """Abandon a rental that is (back) in IDLE: ENDED, cancelled, not billed."""
        rental = self._get(rental_id)
        if rental.state is S.ENDED and rental.end_reason is EndReason.CANCELLED:
            return RentalStatus.of(rental)
        return self._transition(rental_id, "cancel", _Call("cancel", {}))

    # -- running commands and timers in this process -------------------------------------

    def run_pending(self) -> int:
        """Fire due timers and send pending commands once; returns how much was done."""
        return self.timers.step() + len(self.effects.sweep())

    def start_background(self, interval: float = 0.05) -> None:
        """Run timers and commands in a daemon thread (embedding without workers)."""
        if self._threads:
            return
        self._stop.clear()

        def loop(step: Callable[[], int],
                 pause: Callable[[float], float] = lambda longest: longest) -> None:
            while not self._stop.is_set():
                try:
                    busy = step()
                except RentalFSMError as exc:
                    log.warning("orchestrator.loop_retrying", error=str(exc))
                    busy = 0
                    self._stop.wait(0.5)
                except Exception:
                    log.exception("orchestrator.loop_failed")
                    busy = 0
                    self._stop.wait(0.5)
                if not busy:  # the timers wake for their next prepared timer
                    self._wake.wait(pause(interval))
                    self._wake.clear()

        # Timers and commands in separate threads: a slow command never delays a timer.
        self._threads = [
            threading.Thread(target=loop, args=(self.timers.step, self.timers.pause),
                             name="rental-fsm-timers", daemon=True),
            threading.Thread(target=loop, args=(self.effects.dispatch,),
                             name="rental-fsm-effects", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []
        self.timers.close()
        self.effects.close()

    # -- internals ------------------------------------------------------------------------

    def _existing(self, rental_id: str) -> Rental | None:
        try:
            return self.store.get(rental_id)
        except RentalNotFound:
            return None

    def _get(self, rental_id: str) -> Rental:
        check_id("rental_id", rental_id)
        return self.store.get(rental_id)

    def _authorize(self, rental: Rental, op: str) -> None:
        if not self.authorize(rental.customer_id, rental.vehicle_id):
            error = NotAuthorized(rental.customer_id, rental.vehicle_id)
            self._reject(rental, _Call(op, {}), error)

    def _reject(self, rental: Rental, call: _Call, error: RentalFSMError,
                context: Mapping[str, Any] | None = None) -> None:
        self.store.append_log(rental.rental_id, [self._request(call, error, context)])
        log.info("request.rejected", op=call.op, rental_id=rental.rental_id,
                 error=type(error).__name__, reason=str(error))
        raise error

    def _request(self, call: _Call, error: RentalFSMError | None = None,
                 context: Mapping[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = {"ok": True}
        if error is not None:
            result = {"error": type(error).__name__, "message": str(error)}
            if isinstance(error, EndRentalCriteriaNotMet):
                result["unmet"] = error.unmet
        return {"kind": "request", "at": format_time(self.clock.now()), "op": call.op,
                "args": dict(call.args), "result": result, **(context or {})}

    def _transition(
        self, rental_id: str, trigger: str, call: _Call, *, facts: Any = None,
        event_id: str | None = None, extra: Mapping[str, Any] | None = None,
        pre: list[dict[str, Any]] | None = None, context: Mapping[str, Any] | None = None,
    ) -> RentalStatus:
        try:
            applied = self.engine.apply(
                rental_id, trigger, event_id=event_id, facts=facts,
                inputs=[*(pre or []), self._request(call, context=context)], extra=extra)
        except RentalFSMError as error:
            if error.transient:
                raise
            self.store.append_log(rental_id, [*(pre or []),
                                              self._request(call, error, context=context)])
            log.info("request.rejected", op=call.op, rental_id=rental_id,
                     error=type(error).__name__, reason=str(error))
            raise
        self._wake.set()
        return RentalStatus.of(applied.rental)

    def _capabilities(self, vehicle_id: str) -> Capabilities:
        """Cached per vehicle (refreshed by VehicleChanged events); fetched once if absent."""
        cached = self.store.capabilities(vehicle_id)
        if cached is None:
            vehicle = self.api.get_vehicle(vehicle_id).value
            cached = {"commands": sorted(vehicle.capabilities.commands),
                      "vehicle_state": sorted(vehicle.capabilities.vehicle_state)}
            self.store.set_capabilities(vehicle_id, cached)
        return Capabilities.from_json(cached)

    def _rental_status(
        self, rental: Rental, value: str, *, fresh: bool
    ) -> tuple[dict[str, Any] | None, bool, list[dict[str, Any]]]:
        """Set OneAPI's rental status; returns (fresh state, unreachable, call entries)."""
        what = f"rental-status {value}"
        now = self.clock.now()
        try:
            result = self.api.set_rental_status(rental.vehicle_id, value,
                                                request_new_vehicle_state=fresh)
        except OutcomeUnknown as exc:
            log.warning("vehicle.unreachable", rental_id=rental.rental_id,
                        vehicle_id=rental.vehicle_id, flow_id=exc.flow_id)
            return None, True, [call_entry(now, rental.vehicle_id, what, None, None,
                                           "connection", exc, fresh=fresh)]
        except OneAPIError as exc:
            log.warning("vehicle.rental_status_failed", rental_id=rental.rental_id,
                        status=exc.status, problem_type=exc.problem_type)
            return None, False, [call_entry(now, rental.vehicle_id, what, exc.status, None,
                                            None, exc, fresh=fresh)]
        body = result.value.to_json() if result.value is not None else None
        return body, False, [call_entry(now, rental.vehicle_id, what, result.status, body,
                                        None, fresh=fresh)]


def _customer_status(value: str | CustomerStatus) -> CustomerStatus:
    try:
        status = CustomerStatus(value)
    except ValueError:
        status = None
    if status not in (CustomerStatus.IDLE, CustomerStatus.IN_RESERVATION):
        raise InvalidInput("customer_status", "must be IDLE or IN_RESERVATION (seed 002)")
    return status  # type: ignore[return-value]


def _criteria(report: CriteriaReport) -> list[dict[str, Any]]:
    return [r.to_dict() for r in report.results]
