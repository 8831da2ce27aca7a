"""The simulator's HTTP surface and fault knobs, seen with plain requests (no client)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from rental_fsm.simulator import OUTSIDE, Fault, Simulator

PROBLEM_FAULTS = [f for f in Fault if f.problem_type]


class Raw:
    """Plain HTTP against the simulator, with a valid token."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.http = requests.Session()
        token = self.http.post(
            f"{sim.url}/auth/oauth/token",
            params={"grant_type": "client_credentials"},
            auth=(sim.client_id, sim.client_secret.reveal()),
            timeout=5,
        ).json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"

    def command(self, vehicle_id: str, name: str, timeout: float = 5) -> requests.Response:
        url = f"{self.sim.url}/vehicles/{vehicle_id}/commands/{name}"
        return self.http.post(url, timeout=timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)


@pytest.fixture
def raw(sim: Simulator) -> Raw:
    return Raw(sim)


@pytest.mark.parametrize("fault", PROBLEM_FAULTS, ids=lambda f: f.name)
def test_problem_bodies_follow_section_3_3(sim: Simulator, raw: Raw, fault: Fault) -> None:
    sim.faults("CAR1").next_command = fault
    response = raw.command("CAR1", "unlock-central-lock")
    body = response.json()
    assert response.status_code == fault.status == body["status"]
    assert set(body) == {"type", "type_documentation", "title", "status", "detail", "flow_id"}
    assert body["type"] == fault.problem_type
    assert body["type_documentation"] == "https://developers.invers.com" + body["type"]
    assert body["flow_id"] == response.headers["x-invers-flow-id"]
    assert response.headers["Content-Type"] == "application/problem+json"


def test_next_command_is_one_shot_and_every_command_stays(sim: Simulator, raw: Raw) -> None:
    sim.faults("CAR1").next_command = Fault.CONFLICTING_COMMAND
    assert raw.command("CAR1", "lock-central-lock").status_code == 409
    assert raw.command("CAR1", "lock-central-lock").status_code == 200
    sim.faults("CAR1").every_command = Fault.TELEMATICS_UNIT_ERROR
    assert [raw.command("CAR1", "lock-central-lock").status_code for _ in range(3)] == [500] * 3
    sim.faults("CAR1").every_command = None
    assert raw.command("CAR1", "lock-central-lock").status_code == 200


def test_rate_limit_headers(sim: Simulator, raw: Raw) -> None:
    sim.faults("CAR1").next_command = Fault.TOO_MANY_REQUESTS
    sim.faults("CAR1").retry_after = 2.5
    response = raw.command("CAR1", "enable-driving")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.headers["X-Rate-Limit-Remaining"] == "0"
    assert int(response.headers["X-Rate-Limit-Reset"]) >= int(time.time())


def test_timeout_that_never_executes(sim: Simulator, raw: Raw) -> None:
    faults = sim.faults("CAR1")
    faults.next_command, faults.hang_seconds, faults.execute_after = Fault.TIMEOUT, 0.5, None
    started = time.monotonic()
    response = raw.command("CAR1", "unlock-central-lock", timeout=3)
    assert response.status_code == 504 and response.text == "Gateway Timeout"
    assert 0.45 <= time.monotonic() - started < 2
    time.sleep(0.1)
    assert sim.value("CAR1", "central_lock") == "LOCKED"
    assert sim.published == []


def test_gateway_timeout_executes_after_the_delay(sim: Simulator, raw: Raw) -> None:
    faults = sim.faults("CAR1")
    faults.next_command, faults.execute_after = Fault.GATEWAY_TIMEOUT, 0.2
    assert raw.command("CAR1", "unlock-central-lock").status_code == 504
    assert sim.value("CAR1", "central_lock") == "LOCKED"
    deadline = time.monotonic() + 3
    while sim.value("CAR1", "central_lock") == "LOCKED" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sim.value("CAR1", "central_lock") == "UNLOCKED"


def test_time_scale_shortens_every_delay() -> None:
    with Simulator(time_scale=0.05) as sim:
        car = sim.add_vehicle("keyless")
        sim.faults(car).central_lock_delay = 4.0  # 0.2 s at this scale
        Raw(sim).command(car, "unlock-central-lock")
        deadline = time.monotonic() + 2
        while sim.value(car, "central_lock") == "LOCKED" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sim.value(car, "central_lock") == "UNLOCKED"


def test_commands_are_refused_while_the_vehicle_moves(sim: Simulator, raw: Raw) -> None:
    sim.start_driving("CAR1")
    response = raw.command("CAR1", "lock-and-disable-driving")
    assert response.json()["type"] == "/problems/vehicle/conflicting-state"
    assert raw.command("CAR1", "request-vehicle-state").status_code == 200
    sim.stop_driving("CAR1", position=OUTSIDE)
    assert raw.command("CAR1", "lock-and-disable-driving").status_code == 200
    assert sim.state("CAR1")["position"]["value"] == {"lat": OUTSIDE[0], "lon": OUTSIDE[1]}


def test_scripting_changes_state_and_publishes_one_event_per_change(sim: Simulator) -> None:
    steps = [
        (sim.open_doors, "doors_status", "OPEN"),
        (sim.close_doors, "doors_status", "CLOSED"),
        (sim.open_windows, "windows_status", "OPEN"),
        (sim.close_windows, "windows_status", "CLOSED"),
        (sim.take_key, "vehicle_key", "NOT_PRESENT"),
        (sim.return_key, "vehicle_key", "PRESENT"),
        (lambda v: sim.ignition(v, True), "ignition", "ON"),
        (lambda v: sim.headlights(v, True), "headlights", "ON"),
        (lambda v: sim.manual_lock(v, False), "central_lock", "UNLOCKED"),
    ]
    for step, prop, value in steps:
        before = len(sim.published)
        step("KEY1")
        assert sim.state("KEY1")[prop]["value"] == value
        assert sim.published[before]["data"]["vehicle_state"][prop]["value"] == value
    sim.leave_business_area("KEY1")
    assert sim.value("KEY1", "position") == OUTSIDE
    before = len(sim.published)
    sim.close_doors("KEY1")  # no change, no event
    assert len(sim.published) == before


def test_moped_state_has_no_doors_or_lock(sim: Simulator, raw: Raw) -> None:
    state = raw.get(f"{sim.url}/vehicles/MOP1/latest-vehicle-state", timeout=5).json()
    assert set(state) == {
        "ignition", "position", "driving_enabled", "state_of_charge_or_fuel_level_in_percent"
    }
    assert raw.command("MOP1", "lock-central-lock").json()["type"].endswith(
        "command-not-supported"
    )


def test_json_control_endpoint(sim: Simulator) -> None:
    def post(what: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(f"{sim.url}/_sim/vehicles/CAR1/{what}", json=body, timeout=5)

    response = post("state", {"doors_status": "OPEN", "position": {"lat": 1.5, "lon": 2.5}})
    assert response.json()["doors_status"]["value"] == "OPEN"
    assert sim.value("CAR1", "position") == (1.5, 2.5)
    assert post("faults", {"next_command": "CONFLICTING_COMMAND"}).status_code == 200
    assert sim.faults("CAR1").next_command is Fault.CONFLICTING_COMMAND
    assert post("faults", {"no_such_knob": 1}).status_code == 400


def test_token_endpoint_and_bearer_checks(sim: Simulator) -> None:
    url = f"{sim.url}/auth/oauth/token"
    params = {"grant_type": "client_credentials"}
    bad = requests.post(url, params=params, auth=(sim.client_id, "nope"), timeout=5)
    assert bad.status_code == 401 and bad.json()["type"] == "/problems/invalid-credentials"
    missing = requests.post(url, params=params, timeout=5)
    assert missing.json()["type"] == "/problems/missing-credentials"
    good_auth = (sim.client_id, sim.client_secret.reveal())
    wrong_grant = requests.post(url, params={"grant_type": "password"}, auth=good_auth, timeout=5)
    assert wrong_grant.status_code == 400
    sim.token_ttl = 0.2
    token = requests.post(url, params=params, auth=good_auth, timeout=5).json()
    assert token["token_type"] == "bearer" and token["expires_in"] == 0.2
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(f"{sim.url}/vehicles/CAR1", headers=headers, timeout=5).ok
    time.sleep(0.3)
    expired = requests.get(f"{sim.url}/vehicles/CAR1", headers=headers, timeout=5)
    assert expired.status_code == 401
    assert expired.json()["flow_id"] == expired.headers["X-INVERS-Flow-ID"]
    unknown = requests.get(f"{sim.url}/vehicles/CAR1", timeout=5)
    assert unknown.json()["type"] == "/problems/missing-credentials"


def test_unknown_vehicle_and_route(sim: Simulator, raw: Raw) -> None:
    assert raw.get(f"{sim.url}/vehicles/NOPE", timeout=5).status_code == 404
    assert raw.command("CAR1", "self-destruct").status_code == 404
    assert raw.get(f"{sim.url}/nowhere", timeout=5).json()["status"] == 404


def test_events_over_kombu_memory_transport() -> None:
    from kombu import Connection

    from rental_fsm.simulator import EventRouting

    routing = EventRouting(exchange="mem-x", vehicle_state_queue="mem-state",
                           vehicle_queue="mem-vehicle")
    with Connection("memory://") as conn, Simulator(connection=conn, routing=routing) as sim:
        car = sim.add_vehicle("keyless")
        sim.open_doors(car)
        with Connection("memory://") as reader:
            message = reader.SimpleQueue("mem-state").get(timeout=2)
            body = json.loads(message.body)
            message.ack()
    assert body["data"]["vehicle_state"]["doors_status"]["value"] == "OPEN"
    assert message.properties["correlation_id"] == body["metadata"]["flow_id"]
