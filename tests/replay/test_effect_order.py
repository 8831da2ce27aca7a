"""Replay runs each effect where the log shows its call, not earlier.

Regression: a chaos run recorded (seq 6) the customer turning the ignition on, which
disarmed the auto-cancel, and only then (seq 8) the IN_RENTAL call that start_confirmed
had queued: live, commands run on their own threads. Replay ran that call right after
start_confirmed instead, so its answer (ignition off, a newer timestamp) made the seq 6
event stale and the rental diverged at seq 7.
"""

from __future__ import annotations

from pathlib import Path

from rental_fsm.config import Settings
from rental_fsm.demo.runner import _END_POLICY
from rental_fsm.replay import replay

LOG = Path(__file__).parent / "data" / "effect_call_after_an_event.jsonl"
#: The chaos run's durations: seed 002's divided by its speed, 10.
DURATIONS = {t: d / 10 for t, d in Settings().durations().items()}


def test_an_effect_runs_at_its_recorded_call_not_before_an_earlier_event() -> None:
    report = replay([LOG], durations=DURATIONS, end_policy=_END_POLICY)
    assert report.divergences == []
    (rental,) = report.rentals.values()
    assert [t["trigger"] for t in rental.transitions][:3] == [
        "start", "start_confirmed", "customer_interacted"]
