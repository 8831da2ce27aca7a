"""The golden logs: recorded from real runs, replayed unchanged, covering the table."""

from __future__ import annotations

from pathlib import Path

import pytest
from replay_helpers import GOLDEN, LOGS, load_recorder

from rental_fsm.replay import coverage, read_log, replay
from rental_fsm.testing import ReplayResult


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_every_golden_log_replays_without_divergence(path: Path) -> None:
    report = replay(path)
    assert report.rentals
    assert report.ok, report.summary()


def test_there_is_a_golden_log_per_scenario_of_record_py() -> None:
    recorder = load_recorder()
    assert sorted(recorder.SCENARIOS) == [p.stem for p in GOLDEN]


def test_golden_logs_are_what_record_py_records_today(tmp_path: Path) -> None:
    """A stale golden log (the recorder or the system changed) shows here first: re-run
    `python -m tests.logs.record` and review the diff."""
    recorder = load_recorder()
    for name in recorder.SCENARIOS:
        fresh = recorder.record(name, tmp_path)
        assert fresh.read_text() == (LOGS / f"{name}.jsonl").read_text(), name


def test_golden_logs_cover_every_transition_of_the_table() -> None:
    result = coverage(line for path in GOLDEN for line in read_log(path))
    assert result.missing == [], result.summary()
    assert not result.unknown


def test_golden_outcomes_match_the_flow_rules(replay_log) -> None:  # type: ignore[no-untyped-def]
    def one(name: str) -> ReplayResult:
        result: ReplayResult = replay_log(LOGS / f"{name}.jsonl")
        result.assert_no_divergence()
        return result

    one("happy_path").assert_state("ENDED", end_reason="completed", billable=True)
    one("auto_cancel").assert_state("ENDED", end_reason="auto_cancelled", billable=False)
    one("start_timeout").assert_transitions(
        ["start", "state_check", "start_timeout", "cancel"])
    one("late_unlock_after_abort").assert_transitions(
        ["start", "state_check", "start_timeout", "unlock_after_abort"])
    one("timed_out_lock_that_ran").assert_state("ENDED", end_reason="completed")
    one("start_failed").assert_calls(["POST /vehicles/V1/commands/unlock-and-enable-driving"])
    one("keyed_stopover").assert_transitions([
        "start", "start_confirmed", "customer_interacted",
        {"trigger": "vehicle_parked", "source": "RUNNING", "dest": "STOPOVER"},
        "vehicle_resumed", "vehicle_parked", "end", "end_confirmed"])
    forced = replay_log(LOGS / "force_end.jsonl")
    for rental in forced.report.rentals.values():
        assert rental.end_reason == "force_ended"
