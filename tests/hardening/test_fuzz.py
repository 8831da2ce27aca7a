"""Fuzzing every decoder that takes outside input (hypothesis, fixed budget).

Invariant: every input is classified (applied / ignored / dead-lettered / rejected with
the project's own exception); nothing crashes, nothing is dropped without a record.
On failure hypothesis prints the failing example and a @reproduce_failure blob
(print_blob) that replays exactly that case.
"""

from __future__ import annotations

import json
import string
from typing import Any

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oneapi_canned import canned_client

from rental_fsm.clock import SystemClock
from rental_fsm.engine import Engine
from rental_fsm.errors import OneAPIError, RentalFSMError
from rental_fsm.events.handler import EventHandler, Outcome
from rental_fsm.model import Rental
from rental_fsm.orchestrator import Orchestrator
from rental_fsm.store import InMemoryRentalStore
from rental_fsm.store.dead_letters import InMemoryDeadLetters

BUDGET = settings(max_examples=300, deadline=None, print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow,
                                         HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
property_names = st.sampled_from(["central_lock", "ignition", "doors_status",
                                  "driving_enabled", "position", "x"])
state_props = st.dictionaries(property_names, st.fixed_dictionaries(
    {"timestamp": st.one_of(st.just("2026-11-22T10:00:00Z"), st.text(max_size=25),
                            st.integers()), "value": json_values}), max_size=4)
envelopes = st.builds(
    lambda meta, vid, props, flat: {"metadata": meta, "data": (
        {"vehicle_id": vid, **props} if flat else {"vehicle_id": vid, "vehicle_state": props})},
    st.fixed_dictionaries({
        "id": st.one_of(st.text(min_size=1, max_size=30), st.integers()),
        "type": st.sampled_from(["VehicleStateRecorded", "CentralLockChanged",
                                 "VehicleChanged", "TripStarted", ""]),
        "schema_major_version": st.one_of(st.integers(-1, 4), st.text(max_size=2)),
        "occurred_at": st.one_of(st.just("2026-11-22T10:00:00Z"), st.text(max_size=30))}),
    st.one_of(st.just("V1"), st.text(max_size=40)), state_props, st.booleans())
bodies = st.one_of(st.binary(max_size=200),
                   json_values.map(lambda v: json.dumps(v).encode()),
                   envelopes.map(lambda e: json.dumps(e).encode()))


def handler_with_active_rental() -> tuple[EventHandler, InMemoryRentalStore,
                                          InMemoryDeadLetters]:
    store = InMemoryRentalStore()
    store.set_capabilities("V1", {"commands": ["UNLOCK_AND_ENABLE_DRIVING"],
                                  "vehicle_state": ["CENTRAL_LOCK", "DRIVING_ENABLED"]})
    store.create(Rental("R1", "V1", "C1"))
    engine = Engine(store, clock=SystemClock())
    engine.apply("R1", "start")
    dead = InMemoryDeadLetters()
    return EventHandler(store, engine, dead, clock=SystemClock()), store, dead


@BUDGET
@given(st.lists(st.tuples(bodies, st.sampled_from(["application/json", None,
                                                    "application/x-python-serialize"])),
                min_size=1, max_size=8))
def test_every_message_is_classified_and_none_is_dropped_without_a_record(
    messages: list[tuple[bytes, str | None]],
) -> None:
    handler, store, dead = handler_with_active_rental()
    outcomes = []
    for body, content_type in messages:
        handled = handler.handle(body, content_type=content_type, queue="q")
        assert isinstance(handled.outcome, Outcome)
        outcomes.append(handled.outcome)
    assert sum(o is Outcome.DEAD_LETTERED for o in outcomes) == len(dead.list(10_000))
    recorded = [e for e in store.log("R1") if e["kind"] == "event"]
    kept = {Outcome.APPLIED, Outcome.RECORDED, Outcome.STALE, Outcome.REJECTED}
    assert len(recorded) == sum(o in kept for o in outcomes)


statuses = st.sampled_from([200, 201, 204, 400, 401, 403, 404, 409, 429, 500, 502, 503])


@BUDGET
@given(status=statuses, body=json_values.map(lambda v: json.dumps(v).encode())
       | st.binary(max_size=60))
def test_any_oneapi_response_is_a_result_or_our_error(status: int, body: bytes) -> None:
    client = canned_client({"/vehicles/V1": (status, body),
                            "/vehicles/V1/commands/lock-central-lock": (status, body),
                            "/vehicles/V1/latest-vehicle-state": (status, body)})
    for call in (lambda: client.get_vehicle("V1"),
                 lambda: client.latest_vehicle_state("V1"),
                 lambda: client.command("V1", __import__(
                     "rental_fsm.oneapi.vehicle_state", fromlist=["Command"]
                 ).Command.LOCK_CENTRAL_LOCK)):
        try:
            call()
        except OneAPIError:
            pass
        except requests.RequestException as exc:  # pragma: no cover - must never leak
            raise AssertionError(f"requests error leaked: {exc!r}") from exc


#: What an id may be made of (rental_fsm/ids.py): ASCII letters, digits, "_", "." and "-".
ID_CHARS = set(string.ascii_letters + string.digits + "_.-")
ids = st.one_of(st.text(max_size=140), st.integers(), st.none(), st.just("ok-id"))


@BUDGET
@given(rental_id=ids, vehicle_id=ids, customer_id=ids,
       customer_status=st.one_of(st.sampled_from(["IDLE", "IN_RESERVATION", "IN_RENTAL"]),
                                 st.text(max_size=10)))
def test_bad_embedding_arguments_are_refused_with_our_errors(
    rental_id: Any, vehicle_id: Any, customer_id: Any, customer_status: Any,
) -> None:
    class NoAPI:
        def command(self, *a: Any) -> Any:
            raise AssertionError("start_rental sends no command itself")

        set_rental_status = command

        def get_vehicle(self, vehicle_id: str) -> Any:  # capabilities: not a command
            from rental_fsm.oneapi.resources import Result, Vehicle
            from rental_fsm.oneapi.vehicle_state import Capabilities

            return Result(Vehicle(vehicle_id, Capabilities(frozenset(), frozenset()), None,
                                  None, {}), None, 200)

    store = InMemoryRentalStore()
    store.set_capabilities("ok-id", {"commands": ["UNLOCK_AND_ENABLE_DRIVING"],
                                     "vehicle_state": []})
    orch = Orchestrator(store, NoAPI(), authorize=lambda c, v: True)  # type: ignore[arg-type]
    try:
        orch.start_rental(rental_id, vehicle_id=vehicle_id, customer_id=customer_id,
                          customer_status=customer_status)
    except RentalFSMError:
        return
    for key in (rental_id, vehicle_id, customer_id):  # accepted: only what ids.py allows
        assert isinstance(key, str) and 1 <= len(key) <= 128 and key not in (".", "..")
        assert set(key) <= ID_CHARS, key


log_lines = st.one_of(
    st.text(max_size=80),
    json_values.map(json.dumps),
    st.builds(lambda seq, kind, extra: json.dumps({
        "v": 1, "seq": seq, "at": "2026-11-22T10:00:00Z", "rental_id": "R1", "kind": kind,
        **extra}), st.integers(-1, 4), st.sampled_from(
            ["request", "event", "call", "clock", "timer", "transition", "bogus"]),
        st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
)


@BUDGET
@given(st.lists(log_lines, max_size=8))
def test_any_rental_log_is_read_or_refused_naming_file_and_line(lines: list[str]) -> None:
    from rental_fsm.errors import LogFormatError
    from rental_fsm.replay.reader import parse_lines

    try:
        parsed = list(parse_lines(lines, "fuzz.jsonl"))
    except LogFormatError as exc:
        assert exc.path == "fuzz.jsonl" and 1 <= exc.line <= len(lines)
        return
    assert len(parsed) == sum(1 for line in lines if line.strip())
