"""A request is decided at the instant it was decided live, even when an entry logged
before it carries a later ``at``.

Regression (CI's chaos run): the backend's ``end`` request (seq 19, ``at`` .216) and its
transition to ENDING (seq 20, ``at`` .218) were logged after a worker's event entry of
.220 (seq 17): two processes, each stamping its own entry. Replay's clock never goes
back, so it decided the request at .220 and armed the end timeout 2 ms later than live;
at the recorded ``end_timeout`` (due .218 + 4.5 s) its own was not due yet, and the
rental diverged at seq 24 ("replayed nothing").
"""

from __future__ import annotations

import json
from pathlib import Path

from rental_fsm.config import Settings
from rental_fsm.demo.runner import _END_POLICY
from rental_fsm.replay import replay

LOG = Path(__file__).parent / "data" / "request_logged_after_a_later_event.jsonl"
#: The chaos run's durations: seed 002's divided by its speed, 10.
DURATIONS = {t: d / 10 for t, d in Settings().durations().items()}


def _recorded() -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in LOG.read_text().splitlines()]


def test_the_log_has_the_shape_of_the_regression() -> None:
    lines = _recorded()
    kinds = [(e["seq"], e["kind"], e.get("op") or e.get("trigger") or e.get("timer"))
             for e in lines]
    end = next(i for i, k in enumerate(kinds) if k[1:] == ("request", "end")
               and "error" not in lines[i]["result"])
    assert kinds[end + 1][1:] == ("transition", "end")
    assert max(e["at"] for e in lines[:end]) > lines[end + 1]["at"] > lines[end]["at"]
    assert kinds[-2][1:] == ("timer", "end_timeout")


def test_a_request_logged_after_a_later_event_replays_its_timers_exactly() -> None:
    report = replay([LOG], durations=DURATIONS, end_policy=_END_POLICY)
    assert report.divergences == []
    (rental,) = report.rentals.values()
    recorded = _recorded()
    assert rental.state == "RUNNING"
    # from the end request on, decided at the instants live decided them (earlier, live
    # confirmed the start by an event and replay by the command's answer: same outputs)
    def from_end(log: list[dict]) -> list[tuple[str, str]]:  # type: ignore[type-arg]
        moves = [(e["trigger"], e["at"]) for e in log if e["kind"] == "transition"]
        return moves[[t for t, _ in moves].index("end"):]

    assert from_end(rental.log) == from_end(recorded)
    assert [t for t, _ in from_end(recorded)] == ["end", "state_check", "end_timeout"]
