"""A due timer that an input overtakes live is recorded, and replay does not fire it.

Regression (a flaky full-demo replay under load): live, the start timeout fell due at
45 s, but the unlock confirmation was handled at 45.5 s, before the timer runner's next
tick. The confirmation disarmed the timer, so it never fired. The log held no trace of
it, and replay, which fires every timer due before an entry's ``at``, timed the start
out first and diverged at the confirmation.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from replay_helpers import load_recorder, write_log

from rental_fsm.replay import replay

recorder = load_recorder()


def _confirmed_after_the_timeout_was_due(rig: Any, late: timedelta) -> None:
    rig.fleet.plan["V1"].append("ran_late")  # the unlock answers nothing, then runs
    rig.start("late-confirm")
    rig.wait(44)
    rig.clock.advance(late)  # the start timeout is now due; no tick ran yet
    rig.fleet.run_late("V1")  # the unlock happened: UNLOCKED, driving enabled
    rig.deliver()
    rig.settle()
    rig.wait(3)


def _record(tmp_path: Path, late: timedelta) -> tuple[Any, Path]:
    rig = recorder.Rig()
    _confirmed_after_the_timeout_was_due(rig, late)
    path = tmp_path / "late.jsonl"
    rig.export(path)
    return rig, path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_overtaken_timer_is_logged_and_replays_without_divergence(tmp_path: Path) -> None:
    rig, path = _record(tmp_path, timedelta(seconds=1, milliseconds=500))
    assert rig.state("late-confirm") == "RUNNING"  # live, the confirmation won
    lines = _lines(path)
    overtaken = [e for e in lines if e["kind"] == "timer" and e["timer"] == "start_timeout"]
    assert [(e["timer"], e.get("outcome")) for e in overtaken] == [
        ("start_timeout", "overtaken")]
    # it sits between the event that overtook it and that event's transition
    at = lines.index(overtaken[0])
    assert lines[at - 1]["kind"] == "event"
    assert lines[at + 1]["kind"] == "transition"
    assert lines[at + 1]["trigger"] == "start_confirmed"

    report = replay([path])
    assert report.divergences == []
    (rental,) = report.rentals.values()
    assert rental.state == "RUNNING"


def test_a_confirmation_before_the_due_time_logs_no_timer(tmp_path: Path) -> None:
    rig, path = _record(tmp_path, timedelta(milliseconds=500))  # at 44.5 s of 45
    assert rig.state("late-confirm") == "RUNNING"
    assert [e["timer"] for e in _lines(path) if e["kind"] == "timer"] == ["state_check"]
    assert replay([path]).divergences == []


def test_replay_of_a_log_without_the_entry_still_fires_the_timer(tmp_path: Path) -> None:
    """Without the record, replay cannot know: it fires the due timer and says where."""
    _, path = _record(tmp_path, timedelta(seconds=1, milliseconds=500))
    stripped = [e for e in _lines(path) if "outcome" not in e]
    for e in stripped:
        e.pop("seq")
        e.pop("v")
    report = replay([write_log(tmp_path / "stripped.jsonl", stripped)])
    (divergence,) = report.divergences
    assert divergence.replayed is not None
    assert divergence.replayed.get("timer") == "start_timeout"


def test_the_outcome_is_compared(tmp_path: Path) -> None:
    """A log that says the timer fired there is not what replay does: it diverges."""
    _, path = _record(tmp_path, timedelta(seconds=1, milliseconds=500))
    lines = _lines(path)
    for e in lines:
        e.pop("seq")
        e.pop("v")
        e.pop("outcome", None)
    (divergence,) = replay([write_log(tmp_path / "fired.jsonl", lines)]).divergences
    assert divergence.recorded == {"kind": "timer", "timer": "start_timeout"}
    assert divergence.replayed == {"kind": "timer", "timer": "start_timeout",
                                   "outcome": "overtaken"}
