"""Record the golden rental logs of tests/logs from real runs.

Each scenario drives the real orchestrator, event handler, timers and effect runner on
the in-memory store against an in-process fleet (the simulator's rules without HTTP:
commands change the vehicle and report every change as an event), then exports the
store's logs as JSON Lines. Re-record after a deliberate behaviour change with

    python -m tests.logs.record            # all scenarios (from the repository root)
    python -m tests.logs.record happy_path # some

and review the diff: the replay tests prove the committed logs still replay unchanged.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import structlog

from rental_fsm.clock import ManualClock
from rental_fsm.errors import ConflictingState, OutcomeUnknown, RentalFSMError
from rental_fsm.events.handler import EventHandler
from rental_fsm.model import format_time
from rental_fsm.oneapi.resources import Result, Vehicle
from rental_fsm.oneapi.vehicle_state import Capabilities, Command, VehicleState
from rental_fsm.orchestrator import Orchestrator
from rental_fsm.simulator.fleet import COMMAND_EFFECTS
from rental_fsm.store import InMemoryRentalStore
from rental_fsm.store.dead_letters import InMemoryDeadLetters

HERE = Path(__file__).parent
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
KEYLESS = {"commands": ["UNLOCK_AND_ENABLE_DRIVING", "LOCK_AND_DISABLE_DRIVING",
                        "REQUEST_VEHICLE_STATE"],
           "vehicle_state": ["CENTRAL_LOCK", "DRIVING_ENABLED", "IGNITION", "DOORS_STATUS"]}
KEYED = {"commands": ["UNLOCK_CENTRAL_LOCK", "ENABLE_DRIVING", "LOCK_CENTRAL_LOCK",
                      "DISABLE_DRIVING", "REQUEST_VEHICLE_STATE"],
         "vehicle_state": ["CENTRAL_LOCK", "DRIVING_ENABLED", "IGNITION", "DOORS_STATUS",
                           "VEHICLE_KEY"]}
CAPS = {"V1": KEYLESS, "V2": KEYED}


class Fleet:
    """Vehicles that obey commands as planned and report every change as an event.

    ``plan[vehicle]`` holds what the next commands do: ``ok``; ``refuse`` (409, nothing
    happens); ``timeout`` (no response, nothing happens); ``ran_late`` (no response, the
    command runs when ``run_late`` is called); ``accepted`` (200 with the state before,
    the command runs on ``run_late``); ``unreachable`` (connection error).
    """

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.state = {v: {"central_lock": "LOCKED", "driving_enabled": False,
                          "ignition": "OFF", "doors_status": "CLOSED",
                          "vehicle_key": "PRESENT"} for v in CAPS}
        self.plan: dict[str, deque[str]] = {v: deque() for v in CAPS}
        self.status_plan: dict[str, deque[str]] = {v: deque() for v in CAPS}
        self.late: dict[str, list[str]] = {v: [] for v in CAPS}
        self.events: list[dict[str, Any]] = []
        self.ids = itertools.count(1)
        #: When each property last changed, as the unit reports it (strictly increasing).
        self.stamps = {v: dict.fromkeys(self.state[v], format_time(T0 - timedelta(hours=1)))
                       for v in CAPS}
        self.last = T0 - timedelta(hours=1)

    def _wire(self, vehicle_id: str, props: dict[str, Any]) -> dict[str, Any]:
        readable = {p.lower() for p in CAPS[vehicle_id]["vehicle_state"]}
        stamps = self.stamps[vehicle_id]
        return {k: {"timestamp": stamps[k], "value": v} for k, v in props.items()
                if k in readable}

    def change(self, vehicle_id: str, **props: Any) -> None:
        self.last = max(self.clock.now(), self.last + timedelta(milliseconds=1))
        self.state[vehicle_id].update(props)
        for name in props:
            self.stamps[vehicle_id][name] = format_time(self.last)
        wire = self._wire(vehicle_id, props)
        if wire:
            self.events.append({
                "metadata": {"id": f"evt-{next(self.ids)}", "type": "VehicleStateRecorded",
                             "schema_major_version": 2,
                             "occurred_at": format_time(self.clock.now()), "flow_id": "fl"},
                "data": {"vehicle_id": vehicle_id, "vehicle_state": wire}})

    def run_late(self, vehicle_id: str) -> None:
        for command in self.late[vehicle_id]:
            self.change(vehicle_id, **COMMAND_EFFECTS[Command(command)])
        self.late[vehicle_id] = []

    def _current(self, vehicle_id: str) -> VehicleState:
        return VehicleState.from_json(self._wire(vehicle_id, self.state[vehicle_id]))

    # -- the OneAPI surface the orchestrator uses ----------------------------------------

    def command(self, vehicle_id: str, command: Command) -> Result[VehicleState]:
        how = self.plan[vehicle_id].popleft() if self.plan[vehicle_id] else "ok"
        if how == "refuse":
            raise ConflictingState("conflicting state", status=409,
                                   problem_type="vehicle/conflicting-state",
                                   vehicle_id=vehicle_id)
        if how in ("timeout", "ran_late", "unreachable"):
            if how == "ran_late":
                self.late[vehicle_id].append(command.value)
            word = "connection refused" if how == "unreachable" else "read timeout"
            raise OutcomeUnknown(word, vehicle_id=vehicle_id)
        if how == "accepted":
            self.late[vehicle_id].append(command.value)
            return Result(self._current(vehicle_id), "fl", 200)
        self.change(vehicle_id, **COMMAND_EFFECTS[command])
        return Result(self._current(vehicle_id), "fl", 200)

    def set_rental_status(self, vehicle_id: str, value: str, *,
                          request_new_vehicle_state: bool = True) -> Any:
        how = self.status_plan[vehicle_id].popleft() if self.status_plan[vehicle_id] else "ok"
        if how == "unreachable":
            raise OutcomeUnknown("connection refused", vehicle_id=vehicle_id)
        if not request_new_vehicle_state:
            return Result(None, "fl", 204)
        return Result(self._current(vehicle_id), "fl", 200)

    def get_vehicle(self, vehicle_id: str) -> Result[Vehicle]:
        return Result(Vehicle(vehicle_id, Capabilities.from_json(CAPS[vehicle_id]), "ONLINE",
                              "NOT_IN_RENTAL", {}), "fl", 200)


class Rig:
    """The whole stack in one process; every step lets one second pass first."""

    def __init__(self, store: Any = None) -> None:
        self.clock = ManualClock(T0)
        self.store = store if store is not None else InMemoryRentalStore(clock=self.clock)
        self.fleet = Fleet(self.clock)
        self.orch = Orchestrator(self.store, self.fleet, clock=self.clock,
                                 authorize=lambda c, v: c != "blocked")
        self.orch.effects.sleep = lambda s: None
        self.handler = EventHandler(self.store, self.orch.engine, InMemoryDeadLetters(),
                                    clock=self.clock)
        self.rentals: list[str] = []

    def deliver(self) -> int:
        """Hand the fleet's events to the handler (no timers or effects run first);
        return how many."""
        events, self.fleet.events = self.fleet.events, []
        for event in events:
            self.handler.handle(json.dumps(event), content_type="application/json",
                                queue="oneapi.VehicleState")
        return len(events)

    def settle(self) -> None:
        """Deliver the fleet's events and run effects until nothing is left."""
        for _ in range(50):
            busy = self.orch.run_pending()
            if not self.deliver() and not busy:
                return

    def wait(self, seconds: int = 1) -> None:
        for _ in range(seconds):
            self.clock.advance(timedelta(seconds=1))
            self.settle()

    def start(self, rid: str, vehicle: str = "V1", customer: str = "c1") -> None:
        if rid not in self.rentals:
            self.rentals.append(rid)
        self.request("start_rental", rid, vehicle_id=vehicle, customer_id=customer)

    def request(self, op: str, rid: str, **kw: Any) -> None:
        self.wait()
        try:
            getattr(self.orch, op)(rid, **kw)
        except RentalFSMError:
            pass  # the refusal is in the log as the request's result
        self.settle()

    def customer(self, vehicle: str, **props: Any) -> None:
        self.wait()
        self.fleet.change(vehicle, **props)
        self.settle()

    def drive(self, vehicle: str = "V1") -> None:
        """Open a door, start, drive a minute, park with the doors closed."""
        self.customer(vehicle, doors_status="OPEN")
        self.customer(vehicle, doors_status="CLOSED", ignition="ON")
        self.wait(60)
        self.customer(vehicle, ignition="OFF")

    def state(self, rid: str) -> str:
        return self.store.get(rid).state.value

    def export(self, path: Path) -> int:
        with open(path, "w", encoding="utf-8") as stream:
            return self.store.export_jsonl(self.rentals, stream)


Scenario = Callable[[Rig], None]
SCENARIOS: dict[str, Scenario] = {}


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


@scenario
def happy_path(rig: Rig) -> None:
    rig.start("happy")
    rig.drive()
    rig.request("end_rental", "happy")


@scenario
def doors_open_then_closed(rig: Rig) -> None:
    rig.start("doors")
    rig.customer("V1", doors_status="OPEN")
    rig.request("end_rental", "doors")  # unmet: DOORS_STATUS OPEN
    rig.customer("V1", doors_status="CLOSED")
    rig.request("end_rental", "doors")


@scenario
def start_timeout(rig: Rig) -> None:
    rig.fleet.plan["V1"].extend(["timeout", "ok"])  # the unlock never answers
    rig.start("start-timeout")
    rig.wait(50)  # state_check at 20 s, start_timeout at 45 s
    rig.request("cancel", "start-timeout")


@scenario
def start_failed(rig: Rig) -> None:
    rig.fleet.plan["V1"].append("refuse")
    rig.start("start-failed")
    rig.request("force_end", "start-failed")  # customer service closes it (IDLE)


@scenario
def late_unlock_after_abort(rig: Rig) -> None:
    rig.fleet.plan["V1"].extend(["ran_late", "ok", "timeout"])
    rig.start("late-unlock")
    rig.wait(50)
    rig.fleet.run_late("V1")  # the unlock ran after all: secured again
    rig.settle()
    rig.wait(2)


@scenario
def auto_cancel(rig: Rig) -> None:
    rig.start("auto-cancel")
    rig.wait(65)


@scenario
def keyless_stopover(rig: Rig) -> None:
    rig.start("keyless")
    rig.drive()
    rig.request("begin_stopover", "keyless")
    rig.request("end_stopover", "keyless")
    rig.drive()
    rig.request("begin_stopover", "keyless")
    rig.request("end_rental", "keyless")  # from STOPOVER


@scenario
def keyed_stopover(rig: Rig) -> None:
    rig.start("keyed", vehicle="V2")
    rig.drive("V2")
    rig.customer("V2", central_lock="LOCKED")  # parked with the key
    rig.wait(30)
    rig.customer("V2", central_lock="UNLOCKED")  # back
    rig.drive("V2")
    rig.customer("V2", central_lock="LOCKED")
    rig.request("end_rental", "keyed")


@scenario
def stopover_failures(rig: Rig) -> None:
    rig.start("stopover-fail")
    rig.drive()
    rig.fleet.plan["V1"].append("refuse")
    rig.request("begin_stopover", "stopover-fail")  # stopover_failed
    rig.fleet.plan["V1"].append("timeout")
    rig.request("begin_stopover", "stopover-fail")
    rig.wait(46)  # stopover_timeout
    rig.request("begin_stopover", "stopover-fail")  # STOPOVER
    rig.fleet.plan["V1"].append("refuse")
    rig.request("end_stopover", "stopover-fail")  # resume_failed
    rig.fleet.plan["V1"].append("timeout")
    rig.request("end_stopover", "stopover-fail")
    rig.wait(46)  # resume_timeout
    rig.request("end_stopover", "stopover-fail")
    rig.request("end_rental", "stopover-fail")


@scenario
def end_timeout_underground_garage(rig: Rig) -> None:
    rig.start("garage")
    rig.drive()
    rig.fleet.status_plan["V1"].append("unreachable")  # NOT_IN_RENTAL: no connection
    rig.fleet.plan["V1"].extend(["timeout", "unreachable"])  # lock, then state request
    rig.request("end_rental", "garage")
    rig.wait(50)  # state_check at 20 s (unreachable), end_timeout at 45 s: RUNNING
    rig.request("end_rental", "garage")


@scenario
def timed_out_lock_that_ran(rig: Rig) -> None:
    rig.start("lock-ran")
    rig.drive()
    rig.fleet.plan["V1"].extend(["ran_late", "timeout"])
    rig.request("end_rental", "lock-ran")
    rig.wait(50)  # end_timeout: RUNNING again
    rig.fleet.run_late("V1")  # the lock happened after all: late_end_confirmed
    rig.settle()
    rig.wait(2)


@scenario
def door_reopened(rig: Rig) -> None:
    rig.start("door-reopened")
    rig.drive()
    rig.fleet.plan["V1"].append("accepted")
    rig.request("end_rental", "door-reopened")
    rig.customer("V1", doors_status="OPEN")  # end_failed
    rig.fleet.late["V1"] = []
    rig.customer("V1", doors_status="CLOSED")
    rig.fleet.plan["V1"].append("refuse")
    rig.request("end_rental", "door-reopened")  # the lock is refused: end_failed
    rig.request("end_rental", "door-reopened")


@scenario
def force_end(rig: Rig) -> None:
    """Customer service ends a rental in every active state."""
    rig.fleet.plan["V1"].append("accepted")
    rig.start("force-starting")
    rig.request("force_end", "force-starting")
    rig.fleet.late["V1"] = []
    rig.start("force-running")
    rig.request("force_end", "force-running")
    rig.start("force-pausing")
    rig.drive()
    rig.fleet.plan["V1"].append("accepted")  # the lock hangs
    rig.request("begin_stopover", "force-pausing")
    rig.request("force_end", "force-pausing")
    rig.fleet.late["V1"] = []
    rig.start("force-stopover")
    rig.drive()
    rig.request("begin_stopover", "force-stopover")
    rig.request("force_end", "force-stopover")
    rig.start("force-resuming")
    rig.drive()
    rig.request("begin_stopover", "force-resuming")
    rig.fleet.plan["V1"].append("accepted")
    rig.request("end_stopover", "force-resuming")
    rig.request("force_end", "force-resuming")
    rig.fleet.late["V1"] = []
    rig.start("force-ending")
    rig.drive()
    rig.fleet.plan["V1"].append("accepted")
    rig.request("end_rental", "force-ending")
    rig.request("force_end", "force-ending")


@scenario
def vehicle_busy(rig: Rig) -> None:
    """A second start on a vehicle in use is refused until the first rental ends."""
    rig.start("busy-first", customer="c1")
    rig.start("busy-second", customer="c2")  # VehicleBusy
    rig.request("force_end", "busy-first")
    rig.start("busy-second", customer="c2")
    rig.request("force_end", "busy-second")


@scenario
def not_authorized(rig: Rig) -> None:
    rig.start("denied")
    rig.drive()
    rig.orch.authorize = lambda c, v: False
    rig.request("end_rental", "denied")
    rig.orch.authorize = lambda c, v: True
    rig.request("end_rental", "denied")


def record(name: str, directory: Path = HERE) -> Path:
    """Run one scenario on a fresh rig and write ``<directory>/<name>.jsonl``."""
    rig = Rig()
    SCENARIOS[name](rig)
    path = directory / f"{name}.jsonl"
    rig.export(path)
    return path


def main(argv: list[str]) -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    names = argv or sorted(SCENARIOS)
    for name in names:
        path = record(name)
        print(f"wrote {path} ({sum(1 for _ in open(path))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
