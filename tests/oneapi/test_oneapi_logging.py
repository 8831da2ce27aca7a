"""One log line per call with the flow id; the secret and tokens appear nowhere."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from io import StringIO

import pytest

from rental_fsm import errors
from rental_fsm.logs import configure_logging
from rental_fsm.oneapi import Command, OneAPIClient
from rental_fsm.simulator import Fault, Simulator


@pytest.fixture
def log_stream() -> Iterator[StringIO]:
    stream = StringIO()
    configure_logging(fmt="json", level="debug", stream=stream)
    yield stream
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_rental_fsm", False):
            root.removeHandler(handler)


def session(sim: Simulator, client: OneAPIClient) -> list[BaseException]:
    """A full client session: happy calls, a refresh, and most error paths."""
    caught: list[BaseException] = []
    client.get_vehicle("CAR1")
    client.command("CAR1", Command.UNLOCK_AND_ENABLE_DRIVING)
    client.set_rental_status("CAR1", "IN_RENTAL")
    sim.revoke_tokens()
    client.latest_vehicle_state("CAR1")
    list(client.iter_vehicles(limit=2))
    for fault in (Fault.CONFLICTING_COMMAND, Fault.MISSING_PERMISSIONS, Fault.GATEWAY_TIMEOUT,
                  Fault.TOO_MANY_REQUESTS, Fault.TELEMATICS_UNIT_ERROR):
        sim.faults("CAR1").next_command = fault
        try:
            client.command("CAR1", Command.LOCK_AND_DISABLE_DRIVING)
        except errors.OneAPIError as exc:
            caught.append(exc)
    sim.faults("CAR1").every_command = Fault.INVALID_CREDENTIALS
    try:
        client.command("CAR1", Command.LOCK_AND_DISABLE_DRIVING)
    except errors.AuthenticationFailed as exc:
        caught.append(exc)
    return caught


def test_secret_and_tokens_never_reach_logs_reprs_or_errors(
    sim: Simulator, client: OneAPIClient, log_stream: StringIO
) -> None:
    caught = session(sim, client)
    assert len(caught) == 6
    secret = sim.client_secret.reveal()
    assert len(sim.issued_tokens) >= 3
    output = log_stream.getvalue()
    texts = [output, repr(client), repr(client.auth), repr(sim), str(sim.__dict__.get("url"))]
    texts += [str(exc) for exc in caught] + [repr(exc) for exc in caught]
    for text in texts:
        assert secret not in text
        for token in sim.issued_tokens:
            assert token not in text
    assert sim.client_id not in repr(client) and sim.client_id not in repr(client.auth)


def test_each_call_logs_one_line_with_its_flow_id(
    sim: Simulator, client: OneAPIClient, log_stream: StringIO
) -> None:
    result = client.command("CAR1", Command.UNLOCK_CENTRAL_LOCK)
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines() if line]
    calls = [line for line in lines if line["event"] == "oneapi_call"]
    assert [c["path"] for c in calls] == [
        "/auth/oauth/token",
        "/vehicles/CAR1/commands/unlock-central-lock",
    ]
    command_line = calls[1]
    assert command_line["flow_id"] == result.flow_id
    assert command_line["method"] == "POST" and command_line["status"] == 200
    assert isinstance(command_line["duration_ms"], float)
    assert command_line["logger"] == "rental_fsm.oneapi.client"
    assert not any("authorization" in key.lower() or "header" in key for key in command_line)


def test_failures_log_the_problem_type_and_flow_id(
    sim: Simulator, client: OneAPIClient, log_stream: StringIO
) -> None:
    sim.faults("CAR1").next_command = Fault.CONFLICTING_COMMAND
    with pytest.raises(errors.ConflictingCommand) as info:
        client.command("CAR1", Command.UNLOCK_CENTRAL_LOCK)
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines() if line]
    failed = [line for line in lines if line.get("status") == 409]
    assert len(failed) == 1
    assert failed[0]["flow_id"] == info.value.flow_id
    assert failed[0]["problem_type"] == "/problems/vehicle/conflicting-command"
    assert failed[0]["level"] == "warning"
