"""A new release replays yesterday's logs: a deliberate change shows at the right seq."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

from replay_helpers import LOGS, write_log

from rental_fsm.guards import GuardContext, Verdict
from rental_fsm.machine import TRANSITIONS, RentalMachine
from rental_fsm.model import DEFAULT_DURATIONS, Timer
from rental_fsm.replay import replay
from rental_fsm.replay.reader import read_log


def _durations(timer: Timer, seconds: int) -> dict[Timer, timedelta]:
    return {**DEFAULT_DURATIONS, timer: timedelta(seconds=seconds)}


def stopovers_closed(ctx: GuardContext) -> Verdict:
    return Verdict(False, "stopovers are closed in this release")


def test_a_shorter_start_timeout_diverges_where_the_old_timer_fired() -> None:
    report = replay(LOGS / "late_unlock_after_abort.jsonl",
                    durations=_durations(Timer.START_TIMEOUT, 10))
    [found] = report.divergences
    # seq 4 is the state_check timer at 20 s; the new 10 s start_timeout fires first.
    assert (found.rental_id, found.seq) == ("late-unlock", 4)
    assert found.recorded == {"kind": "timer", "timer": "state_check"}
    assert found.replayed == {"kind": "timer", "timer": "start_timeout"}
    assert "diverges at seq 4" in str(found)


def test_a_longer_auto_cancel_never_fires_within_the_recorded_time() -> None:
    report = replay(LOGS / "auto_cancel.jsonl", durations=_durations(Timer.AUTO_CANCEL, 90))
    [found] = report.divergences
    assert found.seq == 7 and found.recorded == {"kind": "timer", "timer": "auto_cancel"}
    assert found.replayed is None


def test_a_changed_guard_diverges_at_the_request_it_refuses() -> None:
    rows = [dataclasses.replace(row, guards=(*row.guards, stopovers_closed))
            if row.trigger == "begin_stopover" else row for row in TRANSITIONS]
    report = replay(LOGS / "keyless_stopover.jsonl", machine=RentalMachine(rows))
    [found] = report.divergences
    lines = {line.seq: line.entry for line in read_log(LOGS / "keyless_stopover.jsonl")}
    assert lines[found.seq]["op"] == "begin_stopover"
    assert found.seq == 11
    assert found.recorded is not None and found.recorded["result"] == {"ok": True}
    assert found.replayed is not None
    assert found.replayed["result"] == {"error": "GuardRejected"}
    assert report.to_dict()["rentals"]["keyless"]["divergence"]["seq"] == 11


def test_an_unchanged_custom_machine_replays_cleanly() -> None:
    assert replay(LOGS / "keyless_stopover.jsonl", machine=RentalMachine(TRANSITIONS)).ok


def test_a_tampered_output_is_the_first_divergence(tmp_path: Path) -> None:
    text = (LOGS / "happy_path.jsonl").read_text().replace(
        '"trigger":"end_confirmed","source":"ENDING","dest":"ENDED"',
        '"trigger":"end_confirmed","source":"ENDING","dest":"RUNNING"')
    path = tmp_path / "tampered.jsonl"
    path.write_text(text)
    [found] = replay(path).divergences
    assert found.seq == 15 and found.recorded is not None
    assert found.recorded["dest"] == "RUNNING"
    assert found.replayed is not None and found.replayed["dest"] == "ENDED"


def test_a_call_without_recorded_answer_stops_the_replay_naming_it(tmp_path: Path) -> None:
    entries = [e.entry for e in read_log(LOGS / "happy_path.jsonl")]
    kept = [dict(e) for e in entries if not (e["kind"] == "call" and "/lock-and" in e["path"])]
    for e in kept:
        e.pop("seq")
        e.pop("v")
    [found] = replay(write_log(tmp_path / "cut.jsonl", kept)).divergences
    assert "POST /vehicles/V1/commands/lock-and-disable-driving" in found.reason
    assert "no recorded answer" in found.reason
