"""The demo's scenarios: one per situation the seed documents describe.

Each scenario drives one rental on its own simulated vehicle through the public API
(``Orchestrator`` calls) and the simulator's knobs (what customers and vehicles do), and
says what the rental must end up as. Durations are the configured ones, already scaled
down by the demo's speed factor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import EndRentalCriteriaNotMet
from ..model import EndReason, RentalState
from ..orchestrator import Orchestrator
from ..simulator import Simulator

S = RentalState


class ScenarioFailed(AssertionError):
    """A step of a scenario did not happen in time (the summary shows it)."""


@dataclass
class Context:
    """What a scenario works with: its rental, its vehicle, and the scaled durations."""

    orch: Orchestrator
    sim: Simulator
    rental_id: str
    vehicle_id: str
    customer_id: str
    #: Seconds of a 45 s start/end timeout after scaling (the longest wait of a step).
    timeout_s: float
    notes: list[str] = field(default_factory=list)
    #: The start/end timeout in simulator seconds: the simulator scales its knobs' delays
    #: itself (``time_scale``), so they are given unscaled.
    sim_timeout_s: float = 45.0

    def wait_for(self, *states: RentalState, within: float | None = None) -> Any:
        deadline = time.monotonic() + (within or 4 * self.timeout_s + 5)
        while time.monotonic() < deadline:
            status = self.orch.status(self.rental_id)
            if status.state in states:
                return status
            time.sleep(0.02)
        raise ScenarioFailed(f"never reached {'/'.join(s.value for s in states)}: "
                             f"{self.orch.status(self.rental_id).state.value}")

    def wait_until(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 4 * self.timeout_s + 5
        while not check():
            if time.monotonic() > deadline:
                raise ScenarioFailed(f"timed out waiting for {what}")
            time.sleep(0.02)

    def triggers(self) -> list[str]:
        return [e["trigger"] for e in self.orch.store.log(self.rental_id)
                if e.get("kind") == "transition"]

    def start(self) -> None:
        self.orch.start_rental(self.rental_id, vehicle_id=self.vehicle_id,
                               customer_id=self.customer_id)

    def running(self) -> None:
        """Start, reach RUNNING, and interact (ignition on, then off) like a customer."""
        self.start()
        self.wait_for(S.RUNNING)
        self.sim.ignition(self.vehicle_id, True)
        self.wait_until(lambda: "customer_interacted" in self.triggers()
                        or "auto_cancel" in self.triggers(), "the interaction")
        self.sim.ignition(self.vehicle_id, False)
        self.wait_until(lambda: self.orch.store.vehicle_state(self.vehicle_id)
                        .get("ignition", {}).get("value") == "OFF", "ignition off")

    def end(self) -> None:
        self.orch.end_rental(self.rental_id)
        self.wait_for(S.ENDED)


@dataclass(frozen=True)
class Scenario:
    name: str
    #: The simulator model of the vehicle it needs.
    model: str
    run: Callable[[Context], None]
    expect_state: RentalState
    expect_reason: EndReason | None
    #: Triggers the rental's path must contain (the rule the scenario shows).
    expect_triggers: tuple[str, ...] = ()
    description: str = ""


def happy_path(ctx: Context) -> None:
    ctx.running()
    ctx.end()


def doors_open_at_end(ctx: Context) -> None:
    ctx.running()
    ctx.sim.open_doors(ctx.vehicle_id)
    ctx.wait_until(lambda: ctx.orch.store.vehicle_state(ctx.vehicle_id)
                   .get("doors_status", {}).get("value") == "OPEN", "the open door")
    try:
        ctx.orch.end_rental(ctx.rental_id)
    except EndRentalCriteriaNotMet as exc:
        ctx.notes.append("refused: " + ", ".join(str(u["criterion"]) for u in exc.unmet))
    else:
        raise ScenarioFailed("the end was accepted with a door open")
    ctx.sim.close_doors(ctx.vehicle_id)
    ctx.wait_until(lambda: ctx.orch.store.vehicle_state(ctx.vehicle_id)
                   .get("doors_status", {}).get("value") == "CLOSED", "the closed door")
    ctx.end()


def start_timeout(ctx: Context) -> None:
    ctx.sim.set_faults(ctx.vehicle_id, next_command="TIMEOUT", execute_after=None)
    ctx.start()
    ctx.wait_for(S.IDLE)
    ctx.notes.append(f"gave up: {ctx.orch.status(ctx.rental_id).last_reason}")
    ctx.orch.cancel(ctx.rental_id)


def auto_cancel(ctx: Context) -> None:
    ctx.start()
    ctx.wait_for(S.RUNNING)
    ctx.wait_for(S.ENDED)  # nobody touches the vehicle


def underground_garage(ctx: Context) -> None:
    ctx.running()
    # The lock shows only after the end timeout, and the one state request goes nowhere.
    ctx.sim.set_faults(ctx.vehicle_id, central_lock_delay=ctx.sim_timeout_s * 1.6)
    ctx.orch.end_rental(ctx.rental_id)
    ctx.wait_until(lambda: any(p.endswith("/lock-and-disable-driving")
                               for _, p, _ in list(ctx.sim.requests)
                               if f"/{ctx.vehicle_id}/" in p), "the lock command")
    ctx.sim.set_faults(ctx.vehicle_id, next_command="GATEWAY_TIMEOUT", execute_after=None)
    ctx.wait_until(lambda: ctx.orch.status(ctx.rental_id).vehicle_unreachable
                   or ctx.orch.status(ctx.rental_id).state is S.ENDED, "unreachable")
    ctx.notes.append("vehicle unreachable shown")
    ctx.wait_for(S.ENDED)


def command_timeout_executed(ctx: Context) -> None:
    ctx.running()
    ctx.sim.set_faults(ctx.vehicle_id, every_command="TIMEOUT",
                       execute_after=ctx.sim_timeout_s * 0.3)
    ctx.orch.end_rental(ctx.rental_id)
    ctx.wait_for(S.ENDED)
    ctx.sim.set_faults(ctx.vehicle_id, every_command=None)


def force_end(ctx: Context) -> None:
    ctx.running()
    ctx.orch.force_end(ctx.rental_id, reason="customer_service")


def keyless_stopover(ctx: Context) -> None:
    ctx.running()
    ctx.orch.begin_stopover(ctx.rental_id)
    ctx.wait_for(S.STOPOVER)
    ctx.orch.end_stopover(ctx.rental_id)
    ctx.wait_for(S.RUNNING)
    ctx.end()


def keyed_stopover(ctx: Context) -> None:
    ctx.running()
    ctx.sim.manual_lock(ctx.vehicle_id, True)
    ctx.wait_for(S.STOPOVER)
    ctx.sim.manual_lock(ctx.vehicle_id, False)
    ctx.wait_for(S.RUNNING)
    ctx.end()


def door_reopened(ctx: Context) -> None:
    ctx.running()
    ctx.sim.set_faults(ctx.vehicle_id, reopen_doors_after_lock=ctx.sim_timeout_s * 0.05,
                       central_lock_delay=ctx.sim_timeout_s * 0.4)
    ctx.orch.end_rental(ctx.rental_id)
    ctx.wait_for(S.RUNNING)
    ctx.notes.append(f"back to RUNNING: {ctx.orch.status(ctx.rental_id).last_reason}")
    ctx.sim.close_doors(ctx.vehicle_id)
    ctx.sim.set_faults(ctx.vehicle_id, central_lock_delay=0.0)
    ctx.wait_until(lambda: ctx.orch.store.vehicle_state(ctx.vehicle_id)
                   .get("doors_status", {}).get("value") == "CLOSED", "the closed door")
    ctx.end()


C = EndReason
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("happy_path", "keyless", happy_path, S.ENDED, C.COMPLETED,
             ("start_confirmed", "end", "end_confirmed"), "start, drive, end"),
    Scenario("doors_open_at_end", "keyless", doors_open_at_end, S.ENDED, C.COMPLETED,
             ("end_confirmed",), "end refused for an open door, closed, ended"),
    Scenario("start_timeout", "keyless", start_timeout, S.ENDED, C.CANCELLED,
             ("start_timeout", "cancel"), "unlock never confirmed: back to IDLE"),
    Scenario("auto_cancel", "keyless", auto_cancel, S.ENDED, C.AUTO_CANCELLED,
             ("auto_cancel",), "no interaction after RUNNING: ended, not billed"),
    Scenario("underground_garage", "keyless", underground_garage, S.ENDED, C.COMPLETED,
             ("end_timeout", "late_end_confirmed"), "no connectivity, late reconciliation"),
    Scenario("command_timeout_executed", "keyless", command_timeout_executed, S.ENDED,
             C.COMPLETED, ("end_confirmed",), "the lock timed out but ran"),
    Scenario("force_end", "separate", force_end, S.ENDED, C.FORCE_ENDED, ("force_end",),
             "customer service ends it"),
    Scenario("keyless_stopover", "keyless", keyless_stopover, S.ENDED, C.COMPLETED,
             ("stopover_confirmed", "resume_confirmed"), "break locked through the app"),
    Scenario("keyed_stopover", "with_key", keyed_stopover, S.ENDED, C.COMPLETED,
             ("vehicle_parked", "vehicle_resumed"), "break seen in the events"),
    Scenario("door_reopened", "keyless", door_reopened, S.ENDED, C.COMPLETED,
             ("end_failed", "end_confirmed"), "door opened right after the end"),
)
