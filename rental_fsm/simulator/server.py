"""The simulator's HTTP side: OneAPI routes, token checks, problem bodies, faults.

Stdlib only (``http.server``), because the simulator must run anywhere the tests do.
Every response carries ``X-INVERS-Flow-ID``; every error is a problem-details body as in
oneapi.md §3.3, except the deliberate "bare" gateway replies of the connectivity faults.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import structlog

from ..oneapi.resources import PAGINATION
from ..oneapi.vehicle_state import Command
from .faults import Fault
from .fleet import SimProblem, new_flow_id
from .models import MODELS, VehicleModel

if TYPE_CHECKING:
    from .sim import Simulator

log = structlog.get_logger(__name__)
DOCS_BASE = "https://developers.invers.com"
RENTAL_STATUSES = ("IN_RENTAL", "NOT_IN_RENTAL")
_SEG = r"([^/]+)"
_BRAND_LISTS = ("available-vehicle-models", "available-credentials", "available-telematics-unit")


class Reply(Exception):
    """Raised by a route to answer with a status and a JSON (or raw) body."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None,
                 raw: bytes | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers, self.raw = status, body, headers or {}, raw


def _problem(fault: Fault, detail: str = "") -> SimProblem:
    return SimProblem(fault, detail or fault.title)


class Handler(BaseHTTPRequestHandler):
    """One request; the routes below are matched in order."""

    protocol_version = "HTTP/1.1"
    server_version = "rental-fsm-simulator"
    # One buffered write per response and no Nagle: avoids 40 ms delayed-ACK stalls.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    sim: Simulator  # set on the subclass the Simulator creates
    retry_after: float | None = 1.0  # TOO_MANY_REQUESTS wait, from the vehicle's knobs

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass  # requests are recorded in sim.requests instead

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- plumbing -------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        self.flow_id = new_flow_id()
        parts = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        self._request_line = (method, path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
            self.raw_body = self.rfile.read(length) if length else b""
            self._route(method, path)
            raise Reply(404, None)  # routes always raise; unreachable
        except Reply as reply:
            self._safe_send(reply)
        except SimProblem as problem:
            self._safe_send(self._problem_reply(problem))
        except Exception:  # a simulator bug: answer 500 problem, keep serving
            log.exception("sim_handler_failed", method=method, path=path)
            self._safe_send(self._problem_reply(_problem(Fault.INTERNAL_SERVER_ERROR)))

    def _safe_send(self, reply: Reply) -> None:
        # Recorded before the reply leaves, so a test that saw the reply sees the record.
        self.sim.requests.append((*self._request_line, reply.status))
        try:
            self._send(reply)
            self.wfile.flush()
        except OSError:  # the client gave up (e.g. timed out on a hanging command)
            self.close_connection = True

    def _send(self, reply: Reply) -> None:
        self._status = reply.status
        if reply.raw is not None:
            payload, ctype = reply.raw, "text/plain"
        elif reply.body is None:
            payload, ctype = b"", "application/json"
        else:
            payload, ctype = json.dumps(reply.body).encode(), "application/json"
        if reply.status >= 400 and reply.raw is None and reply.body is not None:
            ctype = "application/problem+json"
        self.send_response(reply.status)
        self.send_header("X-INVERS-Flow-ID", self.flow_id)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def _problem_reply(self, problem: SimProblem) -> Reply:
        fault = problem.fault
        status, ptype = fault.status or 500, fault.problem_type or "/problems/internal-server-error"
        body = {
            "type": DOCS_BASE + ptype if self.sim.absolute_problem_types else ptype,
            "type_documentation": DOCS_BASE + ptype,
            "title": fault.title,
            "status": status,
            "detail": problem.detail,
            "flow_id": self.flow_id,
        }
        headers: dict[str, str] = {}
        if fault is Fault.TOO_MANY_REQUESTS:
            wait = self.retry_after
            headers = {
                "X-Rate-Limit-Limit": "100",
                "X-Rate-Limit-Remaining": "0",
                "X-Rate-Limit-Reset": str(int(time.time() + (wait or 1))),
            }
            if wait is not None:
                headers["Retry-After"] = str(math.ceil(wait))
        return Reply(status, body, headers)

    def _json(self) -> Any:
        try:
            return json.loads(self.raw_body) if self.raw_body else None
        except ValueError:
            raise _problem(Fault.VALIDATION_ERROR, "The body is not valid JSON.") from None

    # -- auth -------------------------------------------------------------------------

    def _check_basic(self) -> None:
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Basic "):
            raise _problem(Fault.MISSING_CREDENTIALS)
        try:
            pair = base64.b64decode(header[6:], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            pair = ""
        if not self.sim.credentials_match(pair):
            raise SimProblem(Fault.INVALID_CREDENTIALS, "The client credentials are invalid.")

    def _check_bearer(self) -> None:
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Bearer "):
            raise _problem(Fault.MISSING_CREDENTIALS)
        if not self.sim.token_valid(header[7:]):
            raise SimProblem(Fault.INVALID_CREDENTIALS, "The access token is invalid or expired.")

    # -- routes -----------------------------------------------------------------------

    def _route(self, method: str, path: str) -> None:
        if path.startswith("/_sim/"):
            self._control(method, path)
        if method == "POST" and path == "/auth/oauth/token":
            self._check_basic()
            if self.query.get("grant_type") != "client_credentials":
                raise _problem(Fault.VALIDATION_ERROR, "grant_type must be client_credentials")
            raise Reply(200, self.sim.issue_token())
        self._check_bearer()
        fleet = self.sim.fleet
        if path == "/vehicles":
            if method == "GET":
                self._list_vehicles()
            if method == "POST":
                self._add_vehicle()
        match = re.fullmatch(r"/telematics-brands/" + _SEG + "/" + _SEG, path)
        if method == "GET" and match and match.group(2) in _BRAND_LISTS:
            raise Reply(200, {"items": self.sim.brand_list(unquote(match.group(1)),
                                                           match.group(2))})
        match = re.fullmatch(r"/vehicles/" + _SEG + r"(/.*)?", path)
        if not match:
            raise _problem(Fault.NOT_FOUND, f"No route {method} {path}.")
        vehicle = fleet.get(unquote(match.group(1)))
        rest = match.group(2) or ""
        if method == "GET" and rest == "":
            raise Reply(200, vehicle.vehicle_json())
        if method == "GET" and rest == "/latest-vehicle-state":
            raise Reply(200, vehicle.state_json())
        if method == "PUT" and rest == "/telematics-unit/setup":
            model = self._model_from(self._json())
            with fleet.lock:
                vehicle.model = model
            raise Reply(200, {"vehicle_model_id": model.id, "status": "SUCCEEDED"})
        if method == "PUT" and rest == "/rental-status":
            self._rental_status(vehicle.id)
        cmd = re.fullmatch(r"/commands/([a-z-]+)", rest)
        if method == "POST" and cmd:
            try:
                command = Command(cmd.group(1))
            except ValueError:
                raise _problem(Fault.NOT_FOUND, f"Unknown command {cmd.group(1)!r}.") from None
            flow_id = self.flow_id
            self._with_faults(
                vehicle.id, lambda: fleet.run_command(vehicle.id, command, flow_id)
            )
        raise _problem(Fault.NOT_FOUND, f"No route {method} {path}.")

    def _with_faults(self, vehicle_id: str, action: Callable[[], Any]) -> None:
        """Run a vehicle call through its fault knobs, then answer 200 with its result."""
        sim = self.sim
        with sim.fleet.lock:
            faults = sim.fleet.get(vehicle_id).faults
            fault = faults.take_fault()
            hang, execute_after = faults.hang_seconds, faults.execute_after
            self.retry_after = faults.retry_after
        if fault in (Fault.TIMEOUT, Fault.GATEWAY_TIMEOUT):
            if execute_after is not None:
                sim.fleet.later(execute_after, action)
            if fault is Fault.TIMEOUT:
                sim.fleet.stopping.wait(hang * sim.fleet.time_scale)
            raise Reply(504, raw=b"Gateway Timeout")
        if fault is Fault.BARE_500:
            raise Reply(500, raw=b"Internal Server Error")
        if fault is not None:
            raise _problem(fault)
        result = action()
        raise Reply(200 if result is not None else 204, result)

    def _rental_status(self, vehicle_id: str) -> None:
        body = self._json()
        value = body.get("value") if isinstance(body, dict) else None
        if value not in RENTAL_STATUSES:
            raise _problem(Fault.VALIDATION_ERROR, "value must be IN_RENTAL or NOT_IN_RENTAL.")
        fresh = self.query.get("request_new_vehicle_state", "false").lower() == "true"
        fleet, flow_id = self.sim.fleet, self.flow_id

        def action() -> Any:
            fleet.set_rental_status(vehicle_id, str(value), flow_id)
            if not fresh:
                return None
            fleet.record_state(vehicle_id, flow_id)
            return fleet.get(vehicle_id).state_json()

        self._with_faults(vehicle_id, action)

    def _list_vehicles(self) -> None:
        try:
            limit = int(self.query.get("limit", "100"))
            start = int(self.query.get(PAGINATION.request_param, "c0")[1:])
        except ValueError:
            raise _problem(Fault.VALIDATION_ERROR, "Bad limit or cursor.") from None
        if not 1 <= limit <= 1000 or start < 0:
            raise _problem(Fault.VALIDATION_ERROR, "limit must be 1..1000.")
        with self.sim.fleet.lock:
            vehicles = list(self.sim.fleet.vehicles.values())
        page = [v.vehicle_json() for v in vehicles[start:start + limit]]
        nxt = f"c{start + limit}" if start + limit < len(vehicles) else None
        raise Reply(200, {"items": page, PAGINATION.response_field: nxt})

    def _model_from(self, setup: Any) -> VehicleModel:
        model_id = setup.get("vehicle_model_id") if isinstance(setup, dict) else None
        if not isinstance(model_id, str):
            raise _problem(Fault.VALIDATION_ERROR, "vehicle_model_id is required.")
        if model_id not in MODELS:
            raise _problem(Fault.REFERENCED_RESOURCE_NOT_FOUND, f"No model {model_id!r}.")
        return MODELS[model_id]

    def _add_vehicle(self) -> None:
        body = self._json()
        unit = body.get("telematics_unit") if isinstance(body, dict) else None
        if not isinstance(unit, dict) or not isinstance(unit.get("id"), str):
            raise _problem(Fault.VALIDATION_ERROR, "telematics_unit.id is required.")
        model = self._model_from(unit.get("setup"))
        fleet = self.sim.fleet
        with fleet.lock:
            if any(v.telematics_unit_id == unit["id"] for v in fleet.vehicles.values()):
                raise _problem(Fault.CONFLICTING_RESOURCE, "The unit is already in a vehicle.")
            vehicle = fleet.add(model, telematics_unit_id=unit["id"])
        raise Reply(201, vehicle.vehicle_json())

    def _control(self, method: str, path: str) -> None:
        """``POST /_sim/vehicles/{id}/state`` and ``.../faults``: scripting over HTTP."""
        match = re.fullmatch(r"/_sim/vehicles/" + _SEG + r"/(state|faults)", path)
        body = self._json()
        if method != "POST" or not match or not isinstance(body, dict):
            raise _problem(Fault.NOT_FOUND, "Use POST /_sim/vehicles/{id}/state|faults {...}.")
        vehicle_id = unquote(match.group(1))
        try:
            if match.group(2) == "state":
                self.sim.set_state(vehicle_id, **body)
            else:
                self.sim.set_faults(vehicle_id, **body)
        except (TypeError, ValueError, KeyError) as exc:
            raise _problem(Fault.VALIDATION_ERROR, str(exc)) from None
        raise Reply(200, self.sim.fleet.get(vehicle_id).state_json())

