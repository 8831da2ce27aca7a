"""Hand-written logs with inputs only replay to the state the flow rules say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from replay_helpers import write_log

from rental_fsm.testing import replay

CAPS = {"commands": ["UNLOCK_AND_ENABLE_DRIVING", "LOCK_AND_DISABLE_DRIVING",
                     "REQUEST_VEHICLE_STATE"],
        "vehicle_state": ["CENTRAL_LOCK", "DRIVING_ENABLED", "IGNITION", "DOORS_STATUS"]}
START = {"kind": "request", "at": "2026-11-22T10:00:00Z", "op": "start",
         "args": {"vehicle_id": "V1", "customer_id": "c1"}, "capabilities": CAPS}


def _event(at: str, **props: Any) -> dict[str, Any]:
    state = {k: {"timestamp": at, "value": v} for k, v in props.items()}
    return {"kind": "event", "at": at, "queue": "oneapi.VehicleState", "event": {
        "metadata": {"id": f"e-{at}", "type": "VehicleStateRecorded",
                     "schema_major_version": 2, "occurred_at": at, "flow_id": "f"},
        "data": {"vehicle_id": "V1", "vehicle_state": state}}}


def test_starting_goes_back_to_idle_after_the_45_s_start_timeout(tmp_path: Path) -> None:
    log = write_log(tmp_path / "hand.jsonl", [
        dict(START),
        _event("2026-11-22T10:00:05Z", doors_status="CLOSED"),  # nothing confirms
        {"kind": "clock", "at": "2026-11-22T10:00:44Z"},
        {"kind": "clock", "at": "2026-11-22T10:01:00Z"},
    ])
    result = replay(log)
    result.assert_no_divergence()  # nothing to compare: inputs only
    result.assert_state("IDLE")
    # Both timers fire in due order as the clock jumps: state_check (20 s), then 45 s.
    result.assert_transitions(["start", "state_check", "start_timeout"])
    assert result.rental().timers == ["state_check", "start_timeout"]
    assert result.calls == []  # no recorded answers, so no effect ran


def test_before_45_s_the_rental_is_still_starting(tmp_path: Path) -> None:
    log = write_log(tmp_path / "hand.jsonl", [
        dict(START), {"kind": "clock", "at": "2026-11-22T10:00:44.999Z"}])
    replay(log).assert_state("STARTING")


def test_recorded_answers_confirm_the_start_and_auto_cancel_follows(tmp_path: Path) -> None:
    at = "2026-11-22T10:00:01Z"
    unlocked = {"central_lock": {"timestamp": at, "value": "UNLOCKED"},
                "driving_enabled": {"timestamp": at, "value": True}}
    log = write_log(tmp_path / "hand.jsonl", [
        dict(START),
        {"kind": "call", "at": at, "method": "POST",
         "path": "/vehicles/V1/commands/unlock-and-enable-driving", "status": 200,
         "body": unlocked, "error": None},
        {"kind": "call", "at": at, "method": "PUT",
         "path": "/vehicles/V1/rental-status?request_new_vehicle_state=true", "status": 204,
         "body": None, "error": None},
        {"kind": "clock", "at": "2026-11-22T10:01:02Z"},  # 61 s without interaction
    ])
    result = replay(log)
    result.assert_state("ENDING", end_reason="auto_cancelled", billable=False)
    result.assert_transitions(["start", "start_confirmed", "auto_cancel"])
    result.assert_calls(["POST /vehicles/V1/commands/unlock-and-enable-driving",
                         "PUT /vehicles/V1/rental-status"])


def test_an_interaction_in_time_keeps_the_rental_running(tmp_path: Path) -> None:
    at = "2026-11-22T10:00:01Z"
    log = write_log(tmp_path / "hand.jsonl", [
        dict(START),
        {"kind": "call", "at": at, "method": "POST",
         "path": "/vehicles/V1/commands/unlock-and-enable-driving", "status": None,
         "body": None, "error": "timeout"},
        _event("2026-11-22T10:00:03Z", central_lock="UNLOCKED", driving_enabled=True),
        _event("2026-11-22T10:00:30Z", doors_status="OPEN"),
        {"kind": "clock", "at": "2026-11-22T10:05:00Z"},
    ])
    result = replay(log)
    result.assert_state("RUNNING")
    result.assert_transitions(["start", "start_confirmed", "customer_interacted"])


def test_a_start_without_recorded_capabilities_names_the_missing_call(tmp_path: Path) -> None:
    start = {k: v for k, v in START.items() if k != "capabilities"}
    [found] = replay(write_log(tmp_path / "hand.jsonl", [start])).report.divergences
    assert "GET /vehicles/V1" in found.reason and found.seq == 1
