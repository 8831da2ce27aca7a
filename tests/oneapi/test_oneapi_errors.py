"""Problem types -> our exceptions, outcome-unknown, rate limits and bad bodies."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from oneapi_canned import CannedAdapter, canned_client
from requests.structures import CaseInsensitiveDict

from rental_fsm import errors
from rental_fsm.config import Secret
from rental_fsm.oneapi import Command, OneAPIClient
from rental_fsm.oneapi.problems import PROBLEM_TYPES, error_for, normalise_type, retry_at
from rental_fsm.simulator import Fault, Simulator

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
EXPECTED: dict[Fault, type[errors.OneAPIError]] = {
    Fault.VALIDATION_ERROR: errors.ValidationFailed,
    Fault.REFERENCED_RESOURCE_NOT_FOUND: errors.ValidationFailed,
    Fault.MISSING_CREDENTIALS: errors.AuthenticationFailed,
    Fault.AUTHORIZATION_SERVER_ERROR: errors.AuthorizationServerError,
    Fault.FORBIDDEN_RESOURCE: errors.PermissionDenied,
    Fault.MISSING_PERMISSIONS: errors.PermissionDenied,
    Fault.NOT_FOUND: errors.ResourceNotFound,
    Fault.COMMAND_NOT_SUPPORTED: errors.CommandNotSupported,
    Fault.CONFLICTING_STATE: errors.ConflictingState,
    Fault.CONFLICTING_COMMAND: errors.ConflictingCommand,
    Fault.CONFLICTING_SETUP_STATUS: errors.SetupNotFinished,
    Fault.SHARED_WITH_PARTNER: errors.SharedWithPartner,
    Fault.CONFLICTING_RESOURCE: errors.ResourceConflict,
    Fault.INCOMPATIBLE_TELEMATICS_UNIT_MODEL: errors.ResourceConflict,
    Fault.TOO_MANY_REQUESTS: errors.RateLimited,
    Fault.TELEMATICS_UNIT_ERROR: errors.TelematicsUnitError,
    Fault.INTERNAL_SERVER_ERROR: errors.OneAPIServerError,
    Fault.GATEWAY_TIMEOUT: errors.OutcomeUnknown,
    Fault.BARE_500: errors.OutcomeUnknown,
}


@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "url"])
@pytest.mark.parametrize("fault", list(EXPECTED), ids=lambda f: f.name)
def test_each_problem_type_raises_its_class(
    sim: Simulator, client: OneAPIClient, fault: Fault, absolute: bool
) -> None:
    sim.absolute_problem_types = absolute
    sim.faults("CAR1").execute_after = None
    sim.faults("CAR1").next_command = fault
    with pytest.raises(EXPECTED[fault]) as info:
        client.command("CAR1", Command.UNLOCK_CENTRAL_LOCK)
    error = info.value
    assert type(error) is EXPECTED[fault]
    assert error.flow_id and error.vehicle_id == "CAR1"
    assert error.problem_type == fault.problem_type  # normalised to the relative path
    assert error.status == (fault.status or (504 if fault is Fault.GATEWAY_TIMEOUT else 500))


def test_every_problem_type_in_the_table_is_simulated() -> None:
    simulated = {f.problem_type for f in Fault if f.problem_type}
    assert set(PROBLEM_TYPES) - simulated <= {
        "/problems/invalid-credentials",
        "/problems/telematics-unit-error",  # alternative spelling, accepted only
    }


def test_timeout_raises_outcome_unknown_but_the_command_still_runs(
    sim: Simulator, make_client: Callable[..., OneAPIClient]
) -> None:
    client = make_client(read_timeout=0.3)
    faults = sim.faults("CAR1")
    faults.next_command, faults.hang_seconds, faults.execute_after = Fault.TIMEOUT, 5.0, 0.5
    started = time.monotonic()
    with pytest.raises(errors.OutcomeUnknown) as info:
        client.command("CAR1", Command.UNLOCK_AND_ENABLE_DRIVING)
    assert time.monotonic() - started < 2
    assert info.value.flow_id is None  # no headers arrived
    assert sim.value("CAR1", "central_lock") == "LOCKED"
    deadline = time.monotonic() + 5
    while sim.value("CAR1", "central_lock") != "UNLOCKED" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.latest_vehicle_state("CAR1").value.central_lock == "UNLOCKED"
    # Exactly one command request: OutcomeUnknown is never retried automatically.
    sim.stop()  # ends the hanging handler, which records the request as it answers
    assert [p for _, p, _ in sim.requests if "/commands/" in p] == [
        "/vehicles/CAR1/commands/unlock-and-enable-driving"
    ]


def test_gateway_timeout_carries_the_flow_id_and_may_never_execute(
    sim: Simulator, client: OneAPIClient
) -> None:
    sim.faults("CAR1").next_command = Fault.GATEWAY_TIMEOUT
    sim.faults("CAR1").execute_after = None
    with pytest.raises(errors.OutcomeUnknown) as info:
        client.command("CAR1", Command.UNLOCK_CENTRAL_LOCK)
    assert info.value.flow_id and info.value.status == 504
    time.sleep(0.2)
    assert sim.value("CAR1", "central_lock") == "LOCKED"


def test_connection_refused_is_outcome_unknown() -> None:
    sim = Simulator().start()
    url = sim.url
    sim.stop()
    client = OneAPIClient(url, "id", Secret("s"), connect_timeout=0.5)
    with pytest.raises(errors.OutcomeUnknown) as info:
        client.get_vehicle("CAR1")
    assert isinstance(info.value.__cause__, requests.ConnectionError)


@pytest.mark.parametrize("fault", [Fault.MISSING_PERMISSIONS, Fault.AUTHORIZATION_SERVER_ERROR])
def test_403_is_never_retried(sim: Simulator, client: OneAPIClient, fault: Fault) -> None:
    sim.faults("CAR1").next_command = fault
    with pytest.raises((errors.PermissionDenied, errors.AuthorizationServerError)):
        client.command("CAR1", Command.LOCK_CENTRAL_LOCK)
    assert [s for _, p, s in sim.requests if p.endswith("/lock-central-lock")] == [403]
    assert sim.token_requests() == 1


def test_429_retry_at_from_retry_after(sim: Simulator, client: OneAPIClient) -> None:
    sim.faults("CAR1").next_command = Fault.TOO_MANY_REQUESTS
    sim.faults("CAR1").retry_after = 30
    before = datetime.now(timezone.utc)
    with pytest.raises(errors.RateLimited) as info:
        client.set_rental_status("CAR1", "IN_RENTAL")
    assert info.value.retry_at is not None and info.value.transient
    assert before + timedelta(seconds=29) <= info.value.retry_at
    assert info.value.retry_at <= before + timedelta(seconds=32)


def test_429_retry_at_from_the_reset_header(sim: Simulator, client: OneAPIClient) -> None:
    sim.faults("CAR1").next_command = Fault.TOO_MANY_REQUESTS
    sim.faults("CAR1").retry_after = None  # only X-Rate-Limit-Reset (epoch seconds)
    with pytest.raises(errors.RateLimited) as info:
        client.command("CAR1", Command.LOCK_CENTRAL_LOCK)
    assert info.value.retry_at is not None
    assert abs((info.value.retry_at - datetime.now(timezone.utc)).total_seconds()) < 3


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "120"}, NOW + timedelta(seconds=120)),
        ({"Retry-After": "Sun, 01 Mar 2026 12:05:00 GMT"}, NOW + timedelta(minutes=5)),
        ({"X-Rate-Limit-Reset": str(int(NOW.timestamp()) + 7)}, NOW + timedelta(seconds=7)),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_at_parsing(headers: dict[str, str], expected: datetime | None) -> None:
    assert retry_at(CaseInsensitiveDict(headers), NOW) == expected


def test_problem_types_accept_urls_and_unknown_types_fall_back_on_status() -> None:
    assert normalise_type("https://developers.invers.com/problems/vehicle/conflicting-state") == (
        "/problems/vehicle/conflicting-state"
    )

    def err(status: int, body: bytes) -> errors.OneAPIError:
        return error_for(status=status, body=body, headers={}, flow_id="f", vehicle_id="V",
                         what="POST /x", now=NOW)

    assert type(err(409, b'{"type": "/problems/new-kind"}')) is errors.ResourceConflict
    assert type(err(503, b'{"type": "/problems/new-kind"}')) is errors.OutcomeUnknown
    assert type(err(500, b"oops")) is errors.OutcomeUnknown
    assert type(err(501, b'{"type": "/problems/new-kind"}')) is errors.OneAPIServerError
    assert type(err(418, b"")) is errors.OneAPIError
    detail = err(409, b'{"type": "/problems/vehicle/conflicting-state", "detail": "moving"}')
    assert "moving" not in str(detail)  # never branch on, nor echo, the detail


@pytest.mark.parametrize(
    ("path", "body", "call"),
    [
        ("/vehicles/V", b"<html>", lambda c: c.get_vehicle("V")),
        ("/vehicles/V", b'{"capabilities": {}}', lambda c: c.get_vehicle("V")),
        ("/vehicles/V", b'{"id": "V", "capabilities": {"commands": "ALL"}}',
         lambda c: c.get_vehicle("V")),
        ("/vehicles", b'{"items": 5}', lambda c: list(c.iter_vehicles())),
        ("/vehicles", b'{"items": [], "next_cursor": 7}', lambda c: list(c.iter_vehicles())),
        ("/vehicles/V/latest-vehicle-state", b"[]", lambda c: c.latest_vehicle_state("V")),
        ("/vehicles/V/latest-vehicle-state",
         b'{"ignition": {"value": "OFF", "timestamp": "yesterday"}}',
         lambda c: c.latest_vehicle_state("V")),
        ("/vehicles/V/latest-vehicle-state",
         b'{"position": {"value": {"lat": 1}, "timestamp": "2026-01-01T00:00:00Z"}}',
         lambda c: c.latest_vehicle_state("V")),
        ("/vehicles/V/commands/lock-central-lock", b"",
         lambda c: c.command("V", Command.LOCK_CENTRAL_LOCK)),
        ("/vehicles/V/telematics-unit/setup", b'{"status": 1}',
         lambda c: c.setup_telematics_unit("V", "M")),
        ("/telematics-brands/NIU/available-credentials", b'{"items": [1]}',
         lambda c: c.available_credentials("NIU")),
    ],
)
def test_unexpected_200_bodies_raise_invalid_response(
    path: str, body: bytes, call: Callable[[OneAPIClient], Any]
) -> None:
    client = canned_client({path: (200, body)})
    with pytest.raises(errors.InvalidResponse) as info:
        call(client)
    assert info.value.flow_id == "flow-1" and info.value.status == 200


def test_a_bad_timestamp_is_named_in_the_error() -> None:
    body = b'{"ignition": {"value": "OFF", "timestamp": "yesterday"}}'
    client = canned_client({"/vehicles/V/latest-vehicle-state": (200, body)})
    with pytest.raises(errors.InvalidResponse, match="ignition: bad timestamp 'yesterday'"):
        client.latest_vehicle_state("V")


@pytest.mark.parametrize(
    "token",
    [b"not json", b'{"access_token": "x", "token_type": "mac", "expires_in": 9}',
     b'{"access_token": "x", "token_type": "bearer"}', b'{"token_type": "bearer"}'],
)
def test_a_bad_token_response_is_invalid_response(token: bytes) -> None:
    session = requests.Session()
    session.mount("https://", CannedAdapter({"/auth/oauth/token": (200, token)}))
    client = OneAPIClient("https://api.test", "id", Secret("s"), session=session)
    with pytest.raises(errors.InvalidResponse):
        client.get_vehicle("V")


def test_a_repeating_cursor_does_not_loop_forever() -> None:
    client = canned_client({"/vehicles": (200, b'{"items": [], "next_cursor": "same"}')})
    with pytest.raises(errors.InvalidResponse, match="cursor repeats"):
        list(client.iter_vehicles())


def test_nan_in_a_response_is_refused_not_stored() -> None:
    """NaN is not JSON (RFC 8259 §6); taken in, it would be written to the store as null."""
    body = b'{"fuel_level": {"value": NaN, "timestamp": "2026-01-01T00:00:00Z"}}'
    client = canned_client({"/vehicles/V/latest-vehicle-state": (200, body)})
    with pytest.raises(errors.InvalidResponse, match="body is not JSON"):
        client.latest_vehicle_state("V")
