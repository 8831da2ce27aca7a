"""Pytest helpers: replay recorded rental logs in your own test suite.

Enable the plugin in a ``conftest.py``::

    pytest_plugins = ["rental_fsm.testing"]

then prove that today's release still handles yesterday's rentals the same way::

    def test_complaint_4711(replay_log):
        result = replay_log("logs/complaint-4711.jsonl", machine=my_machine)
        result.assert_no_divergence()
        result.assert_state("ENDED", end_reason="completed", billable=True)
        result.assert_transitions(["start", "start_confirmed", "end", "end_confirmed"])

``replay`` works without pytest too; every ``assert_*`` raises ``AssertionError`` with
the replay's own report, so a failure reads like ``rental-fsm replay`` output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from .criteria import EndPolicy
from .machine import MACHINE, RentalMachine
from .model import Timer
from .replay import Replayer, ReplayReport
from .replay.report import RentalReplay


@dataclass
class ReplayResult:
    """A replay with one-line assertions. For a log of one rental the properties read
    that rental; with several, pass ``rental=`` to the assertions or use ``report``."""

    report: ReplayReport

    def rental(self, rental_id: str | None = None) -> RentalReplay:
        if rental_id is not None:
            return self.report.rentals[rental_id]
        if len(self.report.rentals) != 1:
            raise AssertionError(f"the log holds {len(self.report.rentals)} rentals "
                                 f"({', '.join(self.report.rentals)}): name one")
        return next(iter(self.report.rentals.values()))

    @property
    def state(self) -> str | None:
        return self.rental().state

    @property
    def triggers(self) -> list[str]:
        return self.rental().triggers

    @property
    def calls(self) -> list[str]:
        """``"METHOD path"`` of every call the replay made, in order."""
        return [f"{c['method']} {c['path']}" for c in self.rental().calls]

    def assert_no_divergence(self) -> None:
        if not self.report.ok:
            raise AssertionError("replay diverged:\n" + self.report.summary())

    def assert_diverges_at(self, seq: int, rental: str | None = None) -> None:
        found = self.rental(rental).divergence
        if found is None or found.seq != seq:
            raise AssertionError(f"expected a divergence at seq {seq}, got {found}")

    def assert_state(self, state: str, *, end_reason: str | None | object = ...,
                     billable: bool | object = ..., rental: str | None = None) -> None:
        r = self.rental(rental)
        want: dict[str, object] = {"state": state}
        if end_reason is not ...:
            want["end_reason"] = end_reason
        if billable is not ...:
            want["billable"] = billable
        got = {k: getattr(r, k) for k in want}
        if got != want:
            raise AssertionError(f"rental {r.rental_id}: expected {want}, got {got}")

    def assert_transitions(self, expected: Sequence[str | Mapping[str, str]],
                           rental: str | None = None) -> None:
        """Triggers in order, or dicts with trigger/source/dest (compared as given)."""
        r = self.rental(rental)
        got: list[Any] = [t if isinstance(e, Mapping) else t["trigger"]
                          for t, e in zip(r.transitions, expected, strict=False)]
        got += [t["trigger"] for t in r.transitions[len(expected):]]
        want = [dict(e) if isinstance(e, Mapping) else e for e in expected]
        if len(r.transitions) != len(expected) or got != want:
            raise AssertionError(f"rental {r.rental_id}: transitions {r.triggers}, "
                                 f"expected {want}")

    def assert_calls(self, expected: Iterable[str], rental: str | None = None) -> None:
        """``"METHOD path"`` strings; a path without ``?`` matches any query."""
        made = [f"{c['method']} {c['path']}" for c in self.rental(rental).calls]
        want = list(expected)
        loose = [m if "?" in w else m.split("?", 1)[0]
                 for m, w in zip(made, want, strict=False)]
        if len(made) != len(want) or loose != want:
            raise AssertionError(f"calls {made}, expected {want}")


def replay(paths: str | Path | Iterable[str | Path], *, machine: RentalMachine = MACHINE,
           durations: Mapping[Timer, timedelta] | None = None,
           end_policy: EndPolicy | None = None) -> ReplayResult:
    """Replay log file(s) against ``machine`` (default: this release's table)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    replayer = Replayer(machine, durations=durations, end_policy=end_policy)
    return ReplayResult(replayer.replay_files(paths))


@pytest.fixture
def replay_log() -> Callable[..., ReplayResult]:
    """The ``replay`` function, as a fixture: ``replay_log(path, machine=...)``."""
    return replay


__all__ = ["ReplayResult", "replay", "replay_log"]
