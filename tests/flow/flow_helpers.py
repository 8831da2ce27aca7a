"""Helpers for the rule scenarios: simulator (HTTP + events on the real RabbitMQ),
OneAPI client, orchestrator, and a worker consuming the simulator's queues.

Durations are configured short (seed 002's 45 s / 60 s become 2 s / 3 s) so the timers
run for real in seconds; the unit tests cover the exact defaults under a manual clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from rental_fsm.criteria import BusinessArea, Circle
from rental_fsm.model import RentalState, Timer
from rental_fsm.orchestrator import Orchestrator
from rental_fsm.simulator import Simulator
from rental_fsm.worker.process import Worker

SHORT = {
    Timer.START_TIMEOUT: timedelta(seconds=2), Timer.END_TIMEOUT: timedelta(seconds=2),
    Timer.AUTO_CANCEL: timedelta(seconds=3), Timer.STOPOVER_TIMEOUT: timedelta(seconds=2),
    Timer.RESUME_TIMEOUT: timedelta(seconds=2), Timer.STATE_CHECK: timedelta(seconds=1),
}
#: The simulator parks its vehicles at 50.834, 8.0219 (oneapi.md §5.1's example).
AREA = BusinessArea(circles=(Circle(50.834, 8.0219, 2000),))


@dataclass
class Stack:
    sim: Simulator
    orch: Orchestrator
    worker: Worker
    allowed: set[tuple[str, str]] = field(default_factory=set)
    changes: list[dict[str, Any]] = field(default_factory=list)

    def wait_for(self, rental_id: str, *states: RentalState, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.orch.status(rental_id)
            if status.state in states:
                return status
            time.sleep(0.05)
        raise AssertionError(f"{rental_id} never reached {states}: {self.orch.status(rental_id)}")

    def commands(self, vehicle_id: str) -> list[str]:
        """The commands and rental-status calls the simulator received for a vehicle."""
        out = []
        for method, path, status in list(self.sim.requests):
            if f"/vehicles/{vehicle_id}/" in path and method in ("POST", "PUT"):
                out.append(path.split("/", 3)[3].split("?")[0] + f" {status}")
        return out

    def transitions(self, rental_id: str) -> list[str]:
        return [e["trigger"] for e in self.orch.store.log(rental_id) if e["kind"] == "transition"]

    def start(self, rental_id: str, vehicle_id: str, customer: str | None = None,
              **kw: Any) -> Any:
        customer = customer or f"c-{rental_id}"
        self.allowed.add((customer, vehicle_id))
        return self.orch.start_rental(rental_id, vehicle_id=vehicle_id, customer_id=customer,
                                      **kw)

    def running(self, rental_id: str, vehicle_id: str) -> Any:
        """Start, wait for RUNNING, interact so the auto-cancel stays away."""
        self.start(rental_id, vehicle_id)
        self.wait_for(rental_id, RentalState.RUNNING)
        # Seed 002's interaction: the ignition goes on (every model reports it), then off.
        self.sim.ignition(vehicle_id, True)
        deadline = time.monotonic() + 10
        while "customer_interacted" not in self.transitions(rental_id):
            assert "auto_cancel" not in self.transitions(rental_id), "auto-cancelled first"
            assert time.monotonic() < deadline, "the interaction never reached the rental"
            time.sleep(0.05)
        self.sim.ignition(vehicle_id, False)
        while self.orch.store.vehicle_state(vehicle_id).get("ignition", {}).get(
                "value") != "OFF":
            assert time.monotonic() < deadline, "the ignition-off event never arrived"
            time.sleep(0.05)
        return self.orch.status(rental_id)


class _Recorder:
    def __init__(self, holder: dict[str, Stack]) -> None:
        self.holder = holder

    def publish(self, change: Any) -> None:
        self.holder["stack"].changes.append(dict(change))


def wait(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
