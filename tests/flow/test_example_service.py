"""examples/booking_service.py runs: a rental over its HTTP API, against the simulator."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from rental_fsm import Orchestrator, Settings
from rental_fsm.simulator import Simulator

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "booking_service.py"


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("booking_service", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_example_booking_service_runs_a_rental_end_to_end() -> None:
    service = load_example()
    with Simulator() as sim:
        sim.add_vehicle("keyless", "DEMO1")
        settings = Settings(oneapi_url=sim.url, oneapi_client_id=sim.client_id,
                            oneapi_client_secret=sim.client_secret)
        orch = Orchestrator.from_settings(settings, authorize=service.customer_may_use)
        orch.start_background()
        server = service.serve(orch, 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        try:
            status, body = call(f"{base}/rentals", "POST", {
                "rental_id": "r-1", "vehicle_id": "DEMO1", "customer_id": "alice"})
            assert (status, body["state"]) == (200, "STARTING")
            assert call(f"{base}/rentals", "POST", {"rental_id": "r-2",
                                                   "vehicle_id": "DEMO1",
                                                   "customer_id": "bob"})[0] == 409
            assert call(f"{base}/rentals/nope")[0] == 404
            deadline = time.monotonic() + 10
            while call(f"{base}/rentals/r-1")[1]["state"] != "RUNNING":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert call(f"{base}/rentals/r-1/cancel", "POST")[0] == 409  # not in IDLE
            sim.open_doors("DEMO1")
            status, body = call(f"{base}/rentals/r-1/end", "POST")
            assert status == 422 and body["unmet"][0]["criterion"] == "DOORS_STATUS"
            sim.close_doors("DEMO1")
            status, body = call(f"{base}/rentals/r-1/end", "POST")
            assert (status, body["state"]) == (200, "ENDING")
            while call(f"{base}/rentals/r-1")[1]["state"] != "ENDED":
                assert time.monotonic() < deadline + 10
                time.sleep(0.05)
        finally:
            server.shutdown()
            server.server_close()
            orch.stop()
