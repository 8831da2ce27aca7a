"""A request records the vehicle state it decided on, so replay decides it the same way.

Regression (a flaky full-demo replay under load): the batched event path merges an
event's vehicle state in its read call and appends the event's log line in its write call
(worker: ``EventHandler.handle_batch``). A booking-backend request handled in between read
the merged state (ignition OFF: the stopover was allowed), but its log entry came before
the event's, so replay, which merges states in log order, still saw the ignition ON and
refused the stopover (GuardRejected).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from replay_helpers import load_recorder

from rental_fsm.replay import replay

recorder = load_recorder()


def _merged_before_logged(rig: Any, op: str) -> None:
    """The fleet's pending events are merged now, but logged only after ``op``."""
    events, rig.fleet.events = rig.fleet.events, []
    for event in events:
        state = event["data"].get("vehicle_state")
        if state:
            rig.store.merge_vehicle_state(event["data"]["vehicle_id"], state)
    rig.wait(0)
    getattr(rig.orch, op)("keyless")
    rig.fleet.events = events + rig.fleet.events
    rig.deliver()
    rig.settle()


def _record(tmp_path: Path, op: str) -> Path:
    rig = recorder.Rig()
    rig.start("keyless")
    rig.customer("V1", doors_status="OPEN")
    rig.customer("V1", doors_status="CLOSED", ignition="ON")
    rig.wait(60)
    rig.fleet.change("V1", ignition="OFF")  # the customer parks: merged, not yet logged
    _merged_before_logged(rig, op)
    rig.wait(2)
    path = tmp_path / f"{op}.jsonl"
    rig.export(path)
    return path


def test_a_stopover_decided_on_a_state_merged_before_its_event_was_logged_replays(
        tmp_path: Path) -> None:
    path = _record(tmp_path, "begin_stopover")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    [request] = [e for e in lines if e["kind"] == "request" and e["op"] == "begin_stopover"]
    assert request["result"] == {"ok": True}
    assert request["vehicle_state"]["ignition"]["value"] == "OFF"  # what it decided on
    last_event = max(i for i, e in enumerate(lines) if e["kind"] == "event")
    assert lines.index(request) < last_event  # the ignition-off event is logged after it

    report = replay([path])

    assert report.divergences == []
    (rental,) = report.rentals.values()
    assert "begin_stopover" in rental.triggers


def test_an_end_decided_on_such_a_state_replays(tmp_path: Path) -> None:
    """Seed 000: no end while the ignition is on; live it was already off."""
    path = _record(tmp_path, "end_rental")
    report = replay([path])
    assert report.divergences == []
    (rental,) = report.rentals.values()
    assert rental.state == "ENDED"
