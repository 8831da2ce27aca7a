"""Random sequences of API calls, vehicle events and clock jumps keep the invariants.

Hypothesis drives an in-process fleet (the rules of the simulator, without HTTP) through
the real orchestrator, event handler, timers and effect runner on the in-memory store.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from rental_fsm.clock import ManualClock
from rental_fsm.errors import RentalFSMError
from rental_fsm.events.handler import EventHandler
from rental_fsm.model import ACTIVE_STATES, RentalState, Timer, format_time
from rental_fsm.oneapi.resources import Result, Vehicle
from rental_fsm.oneapi.vehicle_state import Capabilities, Command, VehicleState
from rental_fsm.orchestrator import Orchestrator
from rental_fsm.simulator.fleet import COMMAND_EFFECTS
from rental_fsm.store import InMemoryRentalStore
from rental_fsm.store.dead_letters import InMemoryDeadLetters

S = RentalState
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
CAPS = {
    "V1": {"commands": ["UNLOCK_AND_ENABLE_DRIVING", "LOCK_AND_DISABLE_DRIVING",
                        "REQUEST_VEHICLE_STATE"],
           "vehicle_state": ["CENTRAL_LOCK", "DRIVING_ENABLED", "IGNITION", "DOORS_STATUS"]},
    "V2": {"commands": ["UNLOCK_CENTRAL_LOCK", "ENABLE_DRIVING", "LOCK_CENTRAL_LOCK",
                        "DISABLE_DRIVING"],
           "vehicle_state": ["CENTRAL_LOCK", "DRIVING_ENABLED", "IGNITION", "DOORS_STATUS",
                             "VEHICLE_KEY"]},
    "V3": {"commands": ["ENABLE_DRIVING", "DISABLE_DRIVING"],
           "vehicle_state": ["DRIVING_ENABLED", "IGNITION"]},
}


class Fleet:
    """Vehicles that obey commands and report every change as an event."""

    def __init__(self, clock: ManualClock, store: InMemoryRentalStore) -> None:
        self.clock = clock
        self.store = store
        self.state: dict[str, dict[str, Any]] = {
            v: {"central_lock": "LOCKED", "driving_enabled": False, "ignition": "OFF",
                "doors_status": "CLOSED", "vehicle_key": "PRESENT"} for v in CAPS}
        self.outbox: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.ids = itertools.count()

    def _wire(self, vehicle_id: str, props: dict[str, Any]) -> dict[str, Any]:
        readable = {p.lower() for p in CAPS[vehicle_id]["vehicle_state"]}
        stamp = format_time(self.clock.now())
        return {k: {"timestamp": stamp, "value": v} for k, v in props.items() if k in readable}

    def change(self, vehicle_id: str, **props: Any) -> None:
        self.state[vehicle_id].update(props)
        wire = self._wire(vehicle_id, props)
        if wire:
            self.outbox.append({
                "metadata": {"id": f"e{next(self.ids)}", "type": "VehicleStateRecorded",
                             "schema_major_version": 2,
                             "occurred_at": format_time(self.clock.now()), "flow_id": "f"},
                "data": {"vehicle_id": vehicle_id, "vehicle_state": wire}})

    # the OneAPI surface the orchestrator uses
    def command(self, vehicle_id: str, command: Command) -> Result[VehicleState]:
        known = self.store.vehicle_state(vehicle_id).get("ignition", {}).get("value")
        if known == "ON":
            self.violations.append(f"{command.value} sent to {vehicle_id} with ignition ON")
        self.change(vehicle_id, **COMMAND_EFFECTS[command])
        return Result(VehicleState.from_json(self._wire(vehicle_id, self.state[vehicle_id])),
                      "flow", 200)

    def set_rental_status(self, vehicle_id: str, value: str, *,
                          request_new_vehicle_state: bool = True) -> Any:
        if not request_new_vehicle_state:
            return Result(None, "flow", 204)
        return Result(VehicleState.from_json(self._wire(vehicle_id, self.state[vehicle_id])),
                      "flow", 200)

    def get_vehicle(self, vehicle_id: str) -> Result[Vehicle]:
        return Result(Vehicle(vehicle_id, Capabilities.from_json(CAPS[vehicle_id]), "ONLINE",
                              "NOT_IN_RENTAL", {}), "flow", 200)


class RentalFlow(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(T0)
        self.store = InMemoryRentalStore(clock=self.clock)
        self.fleet = Fleet(self.clock, self.store)
        self.orch = Orchestrator(self.store, self.fleet, clock=self.clock,
                                 authorize=lambda c, v: True)
        self.handler = EventHandler(self.store, self.orch.engine, InMemoryDeadLetters(),
                                    clock=self.clock)
        self.rentals: list[str] = []
        self.ended: set[str] = set()
        self.ran: set[str] = set()

    def _rental(self, index: int) -> str | None:
        return self.rentals[index % len(self.rentals)] if self.rentals else None

    @rule(vehicle=st.sampled_from(sorted(CAPS)), customer=st.sampled_from(["c1", "c2"]))
    def start(self, vehicle: str, customer: str) -> None:
        rid = f"r{len(self.rentals)}"
        self.rentals.append(rid)
        try:
            self.orch.start_rental(rid, vehicle_id=vehicle, customer_id=customer)
        except RentalFSMError:
            pass

    @rule(index=st.integers(0, 50), op=st.sampled_from(
        ["end_rental", "begin_stopover", "end_stopover", "force_end", "cancel", "status"]))
    def call(self, index: int, op: str) -> None:
        rid = self._rental(index)
        if rid is None:
            return
        try:
            getattr(self.orch, op)(rid)
        except RentalFSMError:
            pass

    @rule(vehicle=st.sampled_from(sorted(CAPS)), change=st.sampled_from([
        {"ignition": "ON"}, {"ignition": "OFF"}, {"doors_status": "OPEN"},
        {"doors_status": "CLOSED"}, {"central_lock": "LOCKED"}, {"central_lock": "UNLOCKED"},
        {"vehicle_key": "NOT_PRESENT"}, {"vehicle_key": "PRESENT"}]))
    def customer_acts(self, vehicle: str, change: dict[str, Any]) -> None:
        self.fleet.change(vehicle, **change)

    @rule(count=st.integers(1, 5), duplicate=st.booleans())
    def deliver_events(self, count: int, duplicate: bool) -> None:
        for _ in range(min(count, len(self.fleet.outbox))):
            event = self.fleet.outbox.pop(0)
            for _ in range(2 if duplicate else 1):
                self.handler.handle(_json(event), content_type="application/json", queue="q")

    @rule(seconds=st.sampled_from([0, 1, 5, 21, 46, 61]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))
        for _ in range(5):
            if not self.orch.run_pending():
                break

    @invariant()
    def invariants_hold(self) -> None:
        active_vehicles: dict[str, str] = {}
        active_customers: dict[str, str] = {}
        for rid in self.rentals:
            try:
                rental = self.store.get(rid)
            except RentalFSMError:
                continue
            if rid in self.ended:
                assert rental.state is S.ENDED, f"{rid} left ENDED"
            if rental.state is S.ENDED:
                self.ended.add(rid)
            if rid in self.ran:
                assert rental.state is not S.IDLE, f"{rid} went back to IDLE after RUNNING"
            if rental.state is S.RUNNING:
                self.ran.add(rid)
            if rental.state is S.STARTING:
                assert Timer.START_TIMEOUT in rental.timers, f"{rid} STARTING without timer"
            if rental.state is S.ENDING:
                assert Timer.END_TIMEOUT in rental.timers, f"{rid} ENDING without timer"
            if rental.state in ACTIVE_STATES:
                assert active_vehicles.setdefault(rental.vehicle_id, rid) == rid
                assert active_customers.setdefault(rental.customer_id, rid) == rid
        assert self.fleet.violations == []


def _json(event: dict[str, Any]) -> bytes:
    import json

    return json.dumps(event).encode()


RentalFlow.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
test_random_flows_keep_the_invariants = RentalFlow.TestCase
