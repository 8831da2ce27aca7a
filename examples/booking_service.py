"""A small booking service that embeds rental_fsm's Orchestrator (stdlib only).

Run it against the built-in OneAPI simulator (no account, nothing to set up)::

    python examples/booking_service.py            # serves on http://127.0.0.1:8080

    curl -X POST localhost:8080/rentals -d '{"rental_id": "r-1", "vehicle_id": "DEMO1",
         "customer_id": "alice"}'
    curl localhost:8080/rentals/r-1
    curl -X POST localhost:8080/rentals/r-1/end

With ``RENTAL_FSM_ONEAPI_URL`` (and the client id and secret) set, it talks to that API
instead; with ``RENTAL_FSM_REDIS_URL`` set, rentals live in Redis and ``rental-fsm worker``
processes can consume the OneAPI events for them.

The mapping from the library's errors to HTTP statuses is the part worth copying.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rental_fsm import (
    CustomerBusy,
    EndRentalCriteriaNotMet,
    GuardRejected,
    InvalidInput,
    InvalidTransition,
    NotAuthorized,
    Orchestrator,
    RentalFSMError,
    RentalNotFound,
    Settings,
    VehicleBusy,
)

#: Error class -> HTTP status. Anything else from the library is a 503 if transient.
STATUSES: list[tuple[type[Exception], int]] = [
    (InvalidInput, 400), (NotAuthorized, 403), (RentalNotFound, 404),
    (VehicleBusy, 409), (CustomerBusy, 409), (EndRentalCriteriaNotMet, 422),
    (GuardRejected, 409), (InvalidTransition, 409),
]
ROUTES = re.compile(r"^/rentals/(?P<id>[^/]+)(?:/(?P<op>end|stopover/begin|stopover/end|"
                    r"force-end|cancel))?$")


def error_response(exc: RentalFSMError) -> tuple[int, dict[str, Any]]:
    status = next((code for cls, code in STATUSES if isinstance(exc, cls)),
                  503 if exc.transient else 500)
    body: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, EndRentalCriteriaNotMet):
        body["unmet"] = exc.unmet  # seed 002: the criteria come back with the error
    return status, body


def make_handler(orch: Orchestrator) -> type[BaseHTTPRequestHandler]:
    ops: dict[str, Callable[[str], Any]] = {
        "end": orch.end_rental, "stopover/begin": orch.begin_stopover,
        "stopover/end": orch.end_stopover, "force-end": orch.force_end,
        "cancel": orch.cancel,
    }

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _run(self, call: Callable[[], Any]) -> None:
            try:
                self._reply(200, call().to_dict())
            except RentalFSMError as exc:
                self._reply(*error_response(exc))

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            match = ROUTES.match(self.path)
            if not match or match["op"]:
                return self._reply(404, {"error": "NotFound"})
            self._run(lambda: orch.status(match["id"]))

        def do_POST(self) -> None:  # noqa: N802
            if self.path == "/rentals":
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                    body = json.loads(self.rfile.read(min(length, 65536)) or b"{}")
                    args = {k: body[k] for k in ("vehicle_id", "customer_id")}
                    rental_id = body["rental_id"]
                except (ValueError, KeyError, TypeError) as exc:
                    return self._reply(400, {"error": "BadRequest", "message": repr(exc)})
                status = body.get("customer_status", "IDLE")
                return self._run(lambda: orch.start_rental(
                    rental_id, customer_status=status, **args))
            match = ROUTES.match(self.path)
            if not match or not match["op"]:
                return self._reply(404, {"error": "NotFound"})
            self._run(lambda: ops[match["op"]](match["id"]))

        def log_message(self, format: str, *args: Any) -> None:
            pass  # structlog carries the story; keep stderr quiet

    return Handler


def customer_may_use(customer_id: str, vehicle_id: str) -> bool:
    """The authorization hook: your booking rules go here (seed 000: check before any
    command). This demo lets every customer use every vehicle."""
    return bool(customer_id and vehicle_id)


def serve(orch: Orchestrator, port: int = 8080) -> ThreadingHTTPServer:
    return ThreadingHTTPServer(("127.0.0.1", port), make_handler(orch))


def main() -> int:
    settings = Settings.from_env()
    simulator = None
    if "RENTAL_FSM_ONEAPI_URL" not in os.environ:
        from rental_fsm.simulator import Simulator

        simulator = Simulator().start()
        for vehicle_id, model in (("DEMO1", "keyless"), ("DEMO2", "with_key")):
            simulator.add_vehicle(model, vehicle_id)
        settings = Settings(oneapi_url=simulator.url, oneapi_client_id=simulator.client_id,
                            oneapi_client_secret=simulator.client_secret)
        print(f"using the OneAPI simulator at {simulator.url} (vehicles DEMO1, DEMO2)")
    orch = Orchestrator.from_settings(settings, authorize=customer_may_use,
                                      on_change=lambda c: print("changed:", c["rental_id"],
                                                                c["source"], "->", c["dest"]))
    orch.start_background()  # send commands and fire timers in this process
    server = serve(orch, int(os.environ.get("PORT", "8080")))
    print(f"booking service on http://127.0.0.1:{server.server_port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        orch.stop()
        if simulator is not None:
            simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
