"""A prepared timer is recorded at its due time; its commit may land just after an entry
of that same instant (here a recorded event). Replay decides it at its own entry's ``at``
(worker/timer_runner.py, replay/replayer.py ``_fire_due``) and so replays it exactly."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from replay_helpers import load_recorder

from rental_fsm.model import Timer, format_time
from rental_fsm.replay import replay

recorder = load_recorder()


def test_a_prepared_timer_after_an_event_of_its_instant_replays_exactly(
        tmp_path: Path) -> None:
    rig = recorder.Rig()
    rig.start("prepared")
    assert rig.state("prepared") == "RUNNING"
    due = rig.store.get("prepared").timers[Timer.AUTO_CANCEL].due_at
    while rig.clock.now() < due - timedelta(seconds=2):
        rig.wait()  # each tick decides the timers due within the horizon
    assert rig.orch.timers.stats.prepared >= 1
    rig.clock.set(due + timedelta(milliseconds=300))
    rig.fleet.change("V1", doors_status="CLOSED")  # no interaction: only recorded
    rig.deliver()
    rig.clock.set(due + timedelta(milliseconds=500))
    fired = rig.orch.timers.tick()  # the store fires the prepared auto-cancel
    assert [d.timer for d in fired] == [Timer.AUTO_CANCEL]
    assert rig.orch.timers.stats.fired_prepared == 1
    rig.settle()
    rig.wait(30)
    path = tmp_path / "prepared.jsonl"
    rig.export(path)

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    kinds = [(e["kind"], e.get("timer") or e.get("trigger")) for e in lines]
    event_at = max(i for i, e in enumerate(lines) if e["kind"] == "event")
    timer_at = kinds.index(("timer", "auto_cancel"))
    assert lines[timer_at]["at"] == format_time(due)  # recorded at its due time ...
    assert any(e["kind"] == "event" and e["at"] > format_time(due)
               for e in lines[:timer_at])  # ... after an entry of a later instant
    assert event_at != timer_at
    report = replay([path])
    assert report.divergences == []
    (rental,) = report.rentals.values()
    assert rental.state == rig.state("prepared")
    assert rental.triggers == [e["trigger"] for e in lines if e["kind"] == "transition"]
    # decided at the recorded instant, not at the later event's: the same timers follow
    assert [(e["trigger"], e["at"]) for e in rental.log if e["kind"] == "transition"] == [
        (e["trigger"], e["at"]) for e in lines if e["kind"] == "transition"]
