"""The simulated fleet: vehicle state, what each command does to it, and its events.

HTTP-free on purpose: the server maps requests to these methods, and tests or the demo
script a vehicle (drive, open a door, take the key) through the same methods. Every
state change publishes ``VehicleStateRecorded`` (plus ``CentralLockChanged`` when the
lock moves), carrying the flow id of the request that caused it, as OneAPI does.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from ..clock import Clock, SystemClock
from ..model import format_time
from ..oneapi.vehicle_state import CentralLock, Command, OnOff, OpenClosed, Presence
from .events import (
    CENTRAL_LOCK_CHANGED,
    VEHICLE_CHANGED,
    VEHICLE_STATE_RECORDED,
    EventPublisher,
    envelope,
)
from .faults import Fault, VehicleFaults
from .models import VehicleModel

log = structlog.get_logger(__name__)

#: Inside the simulated business area (oneapi.md §5.1 example position).
HOME = (50.834, 8.0219)
#: Far outside it.
OUTSIDE = (48.137, 11.575)

#: What each command does to a vehicle's state (also used by the tests' in-process fleets).
COMMAND_EFFECTS: dict[Command, dict[str, Any]] = {
    Command.UNLOCK_AND_ENABLE_DRIVING: {
        "central_lock": CentralLock.UNLOCKED, "driving_enabled": True,
    },
    Command.UNLOCK_CENTRAL_LOCK: {"central_lock": CentralLock.UNLOCKED},
    Command.ENABLE_DRIVING: {"driving_enabled": True},
    Command.LOCK_AND_DISABLE_DRIVING: {
        "central_lock": CentralLock.LOCKED, "driving_enabled": False,
    },
    Command.LOCK_CENTRAL_LOCK: {"central_lock": CentralLock.LOCKED},
    Command.DISABLE_DRIVING: {"driving_enabled": False},
    Command.REQUEST_VEHICLE_STATE: {},
}


class SimProblem(Exception):
    """A problem response the fleet logic decided on (the server renders it)."""

    def __init__(self, fault: Fault, detail: str) -> None:
        self.fault = fault
        self.detail = detail
        super().__init__(detail)


def new_flow_id() -> str:
    return str(uuid.uuid4())


@dataclass
class SimVehicle:
    id: str
    model: VehicleModel
    telematics_unit_id: str
    created_at: datetime
    props: dict[str, tuple[Any, datetime]]
    rental_status: str = "NOT_IN_RENTAL"
    life_status: str = "ONLINE"
    moving: bool = False
    faults: VehicleFaults = field(default_factory=VehicleFaults)
    held: tuple[dict[str, Any], int] | None = None

    def readable(self) -> set[str]:
        return {name.lower() for name in self.model.vehicle_state}

    def state_json(self, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The vehicle state as OneAPI returns it: only readable properties."""
        readable = self.readable() - exclude
        return {
            name: {"timestamp": format_time(ts), "value": _wire(value)}
            for name, (value, ts) in sorted(self.props.items())
            if name in readable
        }

    def vehicle_json(self) -> dict[str, Any]:
        created = format_time(self.created_at)
        return {
            "id": self.id,
            "fleet_id": "SIMFL",
            "created_at": created,
            "master_data": {"vehicle_type": self.model.vehicle_type, "model": self.model.name},
            "custom_fields": {},
            "tags": [],
            "capabilities": self.model.capabilities(),
            "telematics_unit": {
                "id": self.telematics_unit_id,
                "brand": self.model.brand,
                "manufacturer": self.model.brand,
                "setup": {"vehicle_model_id": self.model.id, "status": "SUCCEEDED"},
            },
            "life_status": {"value": self.life_status, "modified_at": created},
            "operation_status": {"value": "OPERATING", "modified_at": created},
            "rental_status": {"value": self.rental_status},
        }


def _wire(value: Any) -> Any:
    if isinstance(value, tuple):
        return {"lat": value[0], "lon": value[1]}
    return value


class Fleet:
    """All simulated vehicles; every method is thread-safe (one re-entrant lock)."""

    def __init__(
        self,
        publisher: EventPublisher,
        *,
        clock: Clock | None = None,
        time_scale: float = 1.0,
        stopping: threading.Event | None = None,
    ) -> None:
        self.publisher = publisher
        self.clock = clock or SystemClock()
        self.time_scale = time_scale
        self.stopping = stopping or threading.Event()
        self.lock = threading.RLock()
        self.vehicles: dict[str, SimVehicle] = {}
        #: Events swallowed by ``lose_events`` (for tests and the curious).
        self.lost: list[dict[str, Any]] = []
        self._threads: list[threading.Thread] = []

    # -- vehicles --------------------------------------------------------------------

    def add(self, model: VehicleModel, vehicle_id: str | None = None,
            telematics_unit_id: str | None = None) -> SimVehicle:
        with self.lock:
            n = len(self.vehicles) + 1
            vehicle_id = vehicle_id or f"SIM{n:02d}{uuid.uuid4().hex[:4].upper()}"
            now = self.clock.now()
            position = (HOME[0] + n * 0.001, HOME[1])
            initial: dict[str, Any] = {
                "central_lock": CentralLock.LOCKED,
                "driving_enabled": False,
                "ignition": OnOff.OFF,
                "doors_status": OpenClosed.CLOSED,
                "windows_status": OpenClosed.CLOSED,
                "headlights": OnOff.OFF,
                "parking_brake_engaged": True,
                "position": position,
                "vehicle_key": Presence.PRESENT,
                "cloudboxx_cardholder_cards": Presence.PRESENT,
                "state_of_charge_or_fuel_level_in_percent": 80,
                "mileage_in_kilometers": 10000,
            }
            vehicle = SimVehicle(
                id=vehicle_id,
                model=model,
                telematics_unit_id=telematics_unit_id or uuid.uuid4().hex[:16].upper(),
                created_at=now,
                props={k: (v, now) for k, v in initial.items()},
            )
            self.vehicles[vehicle_id] = vehicle
            return vehicle

    def get(self, vehicle_id: str) -> SimVehicle:
        try:
            return self.vehicles[vehicle_id]
        except KeyError:
            raise SimProblem(Fault.NOT_FOUND, f"Vehicle {vehicle_id!r} does not exist.") from None

    # -- state changes and events ------------------------------------------------------

    def change(self, vehicle_id: str, flow_id: str | None = None, **props: Any) -> bool:
        """Set properties (each gets a fresh timestamp) and publish what changed."""
        with self.lock:
            vehicle = self.get(vehicle_id)
            now = self.clock.now()
            changed = {k: v for k, v in props.items() if vehicle.props.get(k, (None,))[0] != v}
            for name, value in changed.items():
                vehicle.props[name] = (value, now)
            if changed:
                self.record_state(vehicle_id, flow_id or new_flow_id(), changed=set(changed))
            return bool(changed)

    def record_state(self, vehicle_id: str, flow_id: str, changed: set[str] | None = None) -> None:
        """Publish VehicleStateRecorded (and CentralLockChanged when the lock moved)."""
        with self.lock:
            vehicle = self.get(vehicle_id)
            now = self.clock.now()
            state = vehicle.state_json()
            data = {"vehicle_id": vehicle.id, "vehicle_state": state}
            self.emit(vehicle, envelope(VEHICLE_STATE_RECORDED, data, flow_id, now))
            if changed and "central_lock" in changed and "central_lock" in state:
                data = {"vehicle_id": vehicle.id, "central_lock": state["central_lock"]}
                self.emit(vehicle, envelope(CENTRAL_LOCK_CHANGED, data, flow_id, now))

    def set_rental_status(self, vehicle_id: str, value: str, flow_id: str) -> None:
        with self.lock:
            vehicle = self.get(vehicle_id)
            if vehicle.rental_status == value:
                return
            vehicle.rental_status = value
            data = {
                "vehicle_id": vehicle.id,
                "reasons": ["RENTAL_STATUS_CHANGED"],
                "vehicle": vehicle.vehicle_json(),
            }
            self.emit(vehicle, envelope(VEHICLE_CHANGED, data, flow_id, self.clock.now()))

    def emit(self, vehicle: SimVehicle, event: dict[str, Any]) -> None:
        """Publish one event through the vehicle's event faults (lose, duplicate, reorder)."""
        faults = vehicle.faults
        if faults.lose_events > 0:
            faults.lose_events -= 1
            self.lost.append(event)
            return
        copies = 1
        if faults.duplicate_events > 0:
            faults.duplicate_events -= 1
            copies = 2
        if faults.reorder_events > 0 and vehicle.held is None:
            faults.reorder_events -= 1
            vehicle.held = (event, copies)
            return
        for _ in range(copies):
            self.publisher.publish(event)
        self._release(vehicle)

    def _release(self, vehicle: SimVehicle) -> None:
        if vehicle.held is not None:
            event, copies = vehicle.held
            vehicle.held = None
            for _ in range(copies):
                self.publisher.publish(event)

    def flush(self) -> None:
        """Publish events still held back by ``reorder_events``."""
        with self.lock:
            for vehicle in self.vehicles.values():
                self._release(vehicle)

    # -- commands ------------------------------------------------------------------------

    def run_command(self, vehicle_id: str, command: Command, flow_id: str) -> dict[str, Any]:
        """Execute ``command``; returns the vehicle state the 200 response carries."""
        with self.lock:
            vehicle = self.get(vehicle_id)
            if command.capability not in vehicle.model.commands:
                raise SimProblem(
                    Fault.COMMAND_NOT_SUPPORTED,
                    f"The vehicle {vehicle_id!r} does not support {command.capability}.",
                )
            if vehicle.moving and command is not Command.REQUEST_VEHICLE_STATE:
                raise SimProblem(
                    Fault.CONFLICTING_STATE,
                    f"Unable to execute the command while the vehicle {vehicle_id!r} is moving.",
                )
            effects = dict(COMMAND_EFFECTS[command])
            faults = vehicle.faults
            exclude: frozenset[str] = frozenset()
            lock_target = effects.get("central_lock")
            if lock_target is not None and faults.central_lock_delay > 0:
                del effects["central_lock"]
                exclude = frozenset({"central_lock"})
                self.later(
                    faults.central_lock_delay,
                    lambda: self.change(vehicle_id, flow_id, central_lock=lock_target),
                )
            if not self.change(vehicle_id, flow_id, **effects):
                self.record_state(vehicle_id, flow_id)  # a command always yields a state
            if lock_target == CentralLock.LOCKED and faults.reopen_doors_after_lock is not None:
                delay, faults.reopen_doors_after_lock = faults.reopen_doors_after_lock, None
                self.later(delay, lambda: self.change(
                    vehicle_id, None,
                    doors_status=OpenClosed.OPEN, central_lock=CentralLock.UNLOCKED,
                ))
            return vehicle.state_json(exclude=exclude)

    def later(self, delay: float, action: Callable[[], object]) -> None:
        """Run ``action`` after ``delay`` seconds (scaled) unless the simulator stops."""

        def run() -> None:
            if self.stopping.wait(max(0.0, delay * self.time_scale)):
                return
            try:
                action()
            except Exception:  # a background fault must not kill the simulator
                log.exception("sim_delayed_action_failed")

        thread = threading.Thread(target=run, name="sim-later", daemon=True)
        self._threads.append(thread)
        thread.start()

    def join(self, timeout: float = 2.0) -> None:
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
