"""The simulator facade: start a fake OneAPI on 127.0.0.1 and script its vehicles.

::

    with Simulator(connection=kombu.Connection("memory://")) as sim:
        car = sim.add_vehicle("keyless")
        client = OneAPIClient(sim.url, sim.client_id, sim.client_secret)
        sim.faults(car).next_command = Fault.CONFLICTING_COMMAND
        sim.open_doors(car)

The server runs in a background thread (``ThreadingHTTPServer``, so a hanging command
does not block other calls). Delays are seconds times ``time_scale``.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import fields
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any

from ..clock import Clock
from ..config import Secret
from ..oneapi.vehicle_state import CentralLock, OnOff, OpenClosed, Presence
from .events import EventPublisher, EventRouting, new_ulid
from .faults import Fault, VehicleFaults
from .fleet import OUTSIDE, Fleet, SimVehicle
from .models import MODEL_NAMES, MODELS, VehicleModel
from .server import Handler

DEFAULT_CLIENT_ID = "sim-client#1"  # real client ids may contain '#' (oneapi.md §2)
#: Model order when the simulator creates ``vehicles=N`` vehicles.
FLEET_MIX = ("keyless", "with_key", "separate", "moped")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class Simulator:
    """A fleet of simulated vehicles behind a OneAPI-shaped HTTP server."""

    def __init__(
        self,
        *,
        connection: Any | None = None,
        routing: EventRouting | None = None,
        vehicles: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: Secret | None = None,
        token_ttl: float = 900.0,
        time_scale: float = 1.0,
        clock: Clock | None = None,
        absolute_problem_types: bool = False,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret or Secret(secrets.token_urlsafe(24))
        self.token_ttl = token_ttl
        self.absolute_problem_types = absolute_problem_types
        self.publisher = EventPublisher(connection, routing)
        self._stopping = threading.Event()
        self.fleet = Fleet(self.publisher, clock=clock, time_scale=time_scale,
                           stopping=self._stopping)
        self._tokens: dict[str, float] = {}
        self._tokens_lock = threading.Lock()
        #: Every token handed out (tests assert none of them ever reaches a log).
        self.issued_tokens: list[str] = []
        #: ``(method, path, status)`` of every request, in arrival order.
        self.requests: list[tuple[str, str, int]] = []
        self._host, self._port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        for i in range(vehicles):
            self.add_vehicle(FLEET_MIX[i % len(FLEET_MIX)])

    def __repr__(self) -> str:
        return f"Simulator(url={self.url if self._server else None!r}, client_secret='***')"

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Simulator:
        if self._server is not None:
            return self
        self.publisher.open()
        handler = type("BoundHandler", (Handler,), {"sim": self})
        self._stopping.clear()
        self._server = _Server((self._host, self._port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() returns within 50 ms
            name="oneapi-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cancel pending delayed actions, publish held events."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.fleet.join()
        self.fleet.flush()
        self.publisher.close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running; call start()")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- tokens ---------------------------------------------------------------------------

    def credentials_match(self, pair: str) -> bool:
        expected = f"{self.client_id}:{self.client_secret.reveal()}"
        return hmac.compare_digest(pair.encode(), expected.encode())

    def issue_token(self) -> dict[str, Any]:
        token = secrets.token_urlsafe(32)
        with self._tokens_lock:
            self._tokens[token] = time.monotonic() + self.token_ttl
            self.issued_tokens.append(token)
        return {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl}

    def token_valid(self, token: str) -> bool:
        with self._tokens_lock:
            expiry = self._tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def revoke_tokens(self) -> None:
        """Every issued token becomes invalid (as if expired): the next call gets 401."""
        with self._tokens_lock:
            self._tokens.clear()

    def token_requests(self) -> int:
        return sum(1 for _, path, _ in self.requests if path == "/auth/oauth/token")

    # -- fleet and knobs --------------------------------------------------------------------

    def add_vehicle(self, model: str | VehicleModel = "keyless",
                    vehicle_id: str | None = None) -> str:
        """Add a vehicle of a model (``keyless``, ``with_key``, ``separate``, ``moped``)."""
        resolved = MODEL_NAMES[model] if isinstance(model, str) else model
        return self.fleet.add(resolved, vehicle_id).id

    def vehicle(self, vehicle_id: str) -> SimVehicle:
        return self.fleet.get(vehicle_id)

    def faults(self, vehicle_id: str) -> VehicleFaults:
        return self.fleet.get(vehicle_id).faults

    def set_faults(self, vehicle_id: str, **knobs: Any) -> None:
        """Set knobs by name; fault names as strings are accepted (control endpoint)."""
        faults = self.faults(vehicle_id)
        names = {f.name for f in fields(VehicleFaults)}
        for name, value in knobs.items():
            if name not in names:
                raise KeyError(f"unknown fault knob {name!r}")
            if name in ("next_command", "every_command") and isinstance(value, str):
                value = Fault[value]
            setattr(faults, name, value)

    def state(self, vehicle_id: str) -> dict[str, Any]:
        """The vehicle's current state in wire form (what latest-vehicle-state returns)."""
        with self.fleet.lock:
            return self.fleet.get(vehicle_id).state_json()

    def value(self, vehicle_id: str, prop: str) -> Any:
        with self.fleet.lock:
            return self.fleet.get(vehicle_id).props[prop][0]

    @property
    def published(self) -> list[dict[str, Any]]:
        return self.publisher.published

    def flush_events(self) -> None:
        self.fleet.flush()

    # -- scripting: what a customer does to the vehicle ------------------------------------

    def set_state(self, vehicle_id: str, **props: Any) -> bool:
        """Change any properties; publishes the events. ``moving`` is accepted too."""
        moving = props.pop("moving", None)
        if "position" in props and isinstance(props["position"], dict):
            props["position"] = (float(props["position"]["lat"]), float(props["position"]["lon"]))
        with self.fleet.lock:
            if moving is not None:
                self.fleet.get(vehicle_id).moving = bool(moving)
            return self.fleet.change(vehicle_id, None, **props)

    def start_driving(self, vehicle_id: str) -> None:
        self.set_state(vehicle_id, moving=True, ignition=OnOff.ON, parking_brake_engaged=False)

    def stop_driving(self, vehicle_id: str, position: tuple[float, float] | None = None) -> None:
        """Park: stop moving, ignition off, brake on; optionally somewhere else."""
        extra = {} if position is None else {"position": position}
        self.set_state(vehicle_id, moving=False, ignition=OnOff.OFF,
                       parking_brake_engaged=True, **extra)

    def ignition(self, vehicle_id: str, on: bool) -> None:
        self.set_state(vehicle_id, ignition=OnOff.ON if on else OnOff.OFF)

    def set_position(self, vehicle_id: str, lat: float, lon: float) -> None:
        self.set_state(vehicle_id, position=(lat, lon))

    def leave_business_area(self, vehicle_id: str) -> None:
        self.set_position(vehicle_id, *OUTSIDE)

    def open_doors(self, vehicle_id: str) -> None:
        self.set_state(vehicle_id, doors_status=OpenClosed.OPEN)

    def close_doors(self, vehicle_id: str) -> None:
        self.set_state(vehicle_id, doors_status=OpenClosed.CLOSED)

    def open_windows(self, vehicle_id: str) -> None:
        self.set_state(vehicle_id, windows_status=OpenClosed.OPEN)

    def close_windows(self, vehicle_id: str) -> None:
        self.set_state(vehicle_id, windows_status=OpenClosed.CLOSED)

    def headlights(self, vehicle_id: str, on: bool) -> None:
        self.set_state(vehicle_id, headlights=OnOff.ON if on else OnOff.OFF)

    def take_key(self, vehicle_id: str) -> None:
        self.set_state(vehicle_id, vehicle_key=Presence.NOT_PRESENT)

    def return_key(self, vehicle_id: str) -> None:
        self.set_state(vehicle_id, vehicle_key=Presence.PRESENT)

    def manual_lock(self, vehicle_id: str, locked: bool) -> None:
        """The customer locks or unlocks with the physical key."""
        self.set_state(vehicle_id,
                       central_lock=CentralLock.LOCKED if locked else CentralLock.UNLOCKED)

    # -- telematics-brand listings ----------------------------------------------------------

    def brand_list(self, brand: str, what: str) -> list[dict[str, Any]]:
        brand = brand.upper()
        if what == "available-vehicle-models":
            return [m.to_json() for m in MODELS.values() if m.brand == brand]
        if what == "available-credentials":
            return [{"id": new_ulid(), "brand": brand, "name": f"simulated {brand} account"}]
        with self.fleet.lock:
            used = {v.telematics_unit_id for v in self.fleet.vehicles.values()}
        units = [f"{brand[:2]}{i:014X}" for i in range(1, 4)]
        return [{"id": unit, "brand": brand} for unit in units if unit not in used]

