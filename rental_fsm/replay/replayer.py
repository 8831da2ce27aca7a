"""Feed a recorded rental log through a fresh orchestrator and compare what it does.

Each rental replays on its own: an in-memory store, a ``ManualClock`` and a ``LogAPI``
answering calls from that rental's ``call`` entries. A log is self-contained per rental
because a ``start`` request records the capabilities and the vehicle state its guards saw,
and every vehicle event of an active rental is logged (applied, recorded or stale).

Where things happen (the determinism decision; see docs/replay.rst):

- **Inputs** run in ``seq`` order: requests through the Orchestrator's methods, events
  through ``EventHandler.handle``, ``clock`` entries only move the clock. Each is decided
  at the instant live decided it (an event at its ``at``, a request at its transition's),
  even if an entry of another process, logged before it, carries a later ``at``.
- **Timers.** Before each entry the clock moves to its ``at``; every timer due by then
  fires in due order, at its due time. Exception: a timer the log shows firing later (a
  ``timer`` entry with the same name and due time) waits for that entry and fires at its
  recorded ``at``, so a live timer that fired a little late lands where it did live.
- **Effects** run where the recording shows the effect runner at work: an effect whose
  calls the log shows runs at its first ``call`` entry (matched by ``effect_id``; in
  hand-written logs, any call not consumed by the request that follows it runs what is
  pending), and effects that made no call run at a ``transition`` no input caused. Live
  they ran on their own threads, after whatever arrived meanwhile; replay puts each back
  at the point the log recorded it.

The outputs the replay's own store records are then compared with the recorded outputs;
the first difference is the divergence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..clock import ManualClock
from ..criteria import EndPolicy
from ..errors import InvalidInput, RentalFSMError, RentalNotFound, UnansweredCall
from ..events.handler import EventHandler
from ..machine import MACHINE, RentalMachine
from ..model import Rental, RentalState, Timer, parse_time
from ..orchestrator import Orchestrator
from ..store.base import Commit
from ..store.dead_letters import InMemoryDeadLetters
from ..store.memory import InMemoryRentalStore
from ..timers.base import to_ms
from .fakeapi import LogAPI
from .reader import OUTPUT_KINDS, LogLine, by_rental, read_log
from .report import Divergence, RentalReplay, ReplayReport, first_divergence, project

#: Called after each rental with (lines done, lines in total).
Progress = Callable[[int, int], None]

_CAUSES = frozenset({"request", "event", "timer"})


class Replayer:
    """Replays logs against ``machine`` (the release under test) and its durations."""

    def __init__(
        self, machine: RentalMachine = MACHINE, *,
        durations: Mapping[Timer, timedelta] | None = None,
        end_policy: EndPolicy | None = None,
    ) -> None:
        self.machine = machine
        self.durations = durations
        self.end_policy = end_policy

    def replay_files(self, paths: Iterable[str | Path], progress: Progress | None = None,
                     jobs: int = 1) -> ReplayReport:
        """Read (validating every line first) and replay every rental of ``paths``.

        Raises:
            LogFormatError: a file is unreadable; nothing is replayed.
        """
        lines: list[LogLine] = []
        for path in paths:
            lines.extend(read_log(path))
        return self.replay_lines(lines, progress, jobs)

    def replay_lines(self, lines: Iterable[LogLine], progress: Progress | None = None,
                     jobs: int = 1) -> ReplayReport:
        """Replay every rental of ``lines``; ``jobs`` > 1 replays rentals in that many
        forked processes (rentals are independent, so the report is the same)."""
        groups = by_rental(lines)
        total = sum(len(g) for g in groups.values())
        done = 0
        report = ReplayReport()
        for replayed, size in _replay_all(self, list(groups.values()), jobs):
            report.rentals[replayed.rental_id] = replayed
            done += size
            if progress is not None:
                progress(done, total)
        return report

    def replay_rental(self, lines: Sequence[LogLine]) -> RentalReplay:
        """Replay one rental's entries (``seq`` order) and compare its outputs."""
        return _Run(self, lines).run()


class _Run:
    """The replay of one rental: its own store, clock and recorded answers."""

    def __init__(self, owner: Replayer, lines: Sequence[LogLine]) -> None:
        self.lines = lines
        self.rental_id = lines[0].rental_id
        self.clock = ManualClock(parse_time(lines[0].entry["at"]))
        self.store = InMemoryRentalStore(clock=self.clock)
        self.api = LogAPI(self.rental_id, lines)
        self.orch = Orchestrator(
            self.store, self.api, authorize=self._authorize, clock=self.clock,
            durations=owner.durations, end_policy=owner.end_policy, machine=owner.machine,
            timer_horizon=timedelta(0))  # each timer is decided at its own entry
        self.orch.effects.sleep = _no_sleep  # recorded retries need no real waiting
        self.handler = EventHandler(self.store, self.orch.engine, InMemoryDeadLetters(),
                                    clock=self.clock)
        self.compare = any(line.kind in OUTPUT_KINDS for line in lines)
        self.tagged = any("effect_id" in line.entry for line in lines if line.kind == "call")
        #: Effects whose calls the log shows: each runs at its first call entry, as live
        #: (commands run on their own threads there, after whatever came in meanwhile).
        self.called = {str(line.entry["effect_id"]) for line in lines
                       if line.kind == "call" and "effect_id" in line.entry}
        self.later_timers: Counter[tuple[str, int]] = Counter(
            _timer_key(line.entry) for line in lines
            if line.kind == "timer" and "outcome" not in line.entry)
        #: Timers the log shows an input overtook: live they never fired, so replay
        #: leaves them to that input, which disarms them again.
        self.overtaken = {_timer_key(line.entry) for line in lines
                          if line.kind == "timer" and line.entry.get("outcome") == "overtaken"}
        self._denied = False

    def run(self) -> RentalReplay:
        stopped: tuple[int, UnansweredCall] | None = None
        for index, line in enumerate(self.lines):
            try:
                self._step(index, line)
            except UnansweredCall as exc:
                stopped = (line.seq, exc)
                break
        return self._result(stopped)

    # -- one entry -----------------------------------------------------------------------

    def _step(self, index: int, line: LogLine) -> None:
        entry = line.entry
        at = parse_time(entry["at"])
        self._advance(at)
        kind = line.kind
        if kind == "request":
            with self._deciding_at(self._decided_at(index, at)):
                self._request(entry)
        elif kind == "event":
            with self._deciding_at(at):
                self.handler.handle(_dumps(entry["event"]), content_type="application/json",
                                    queue=str(entry.get("queue", "replay")))
        elif kind == "timer" and "outcome" in entry:
            pass  # an output only: the input before it disarmed the timer
        elif kind == "timer":
            self.later_timers[_timer_key(entry)] -= 1
            self._fire_due(at)
        elif kind == "call":
            if line.seq not in self.api.consumed and self._effect_call(index):
                effect_id = entry.get("effect_id")
                self.orch.effects.run_rental(
                    self.rental_id,
                    None if effect_id is None else lambda e: e.effect_id == effect_id)
        elif kind == "transition" and self.compare:
            previous = self.lines[index - 1].kind if index else None
            if previous not in _CAUSES:  # a follow-up of an effect that made no call
                self.orch.effects.run_rental(
                    self.rental_id, lambda e: e.effect_id not in self.called)

    def _advance(self, target: datetime) -> None:
        """Fire the timers due by ``target`` in due order, except those the log shows
        firing later; then set the clock to ``target`` (never backwards)."""
        while True:
            due = self._next_due()
            if due is None or due[0] > target:
                break
            when, timer = due
            if self.later_timers[(timer.value, to_ms(when))] > 0:
                break  # it fires at its own timer entry, as it did live
            self.clock.set(max(self.clock.now(), when))
            if not self.orch.timers.tick():
                break
        self.clock.set(max(self.clock.now(), target))

    @contextmanager
    def _deciding_at(self, when: datetime) -> Iterator[None]:
        """Decide one input at ``when``, even if an entry logged before it carried a later
        ``at``: each process stamps its own entries, so two of them interleave (a worker's
        event of .220 logged before the backend's request of .216). Live decided the
        input at ``when`` and armed its timers from there; so does replay."""
        latest = self.clock.now()
        self.clock.set(when)
        try:
            yield
        finally:
            self.clock.set(max(latest, when))

    def _decided_at(self, index: int, at: datetime) -> datetime:
        """When a request was decided live: its transition's ``at`` when one follows it
        (the request entry is stamped as it arrives, the transition as it is committed),
        else its own."""
        following = self.lines[index + 1] if index + 1 < len(self.lines) else None
        if following is not None and following.kind == "transition":
            committed = parse_time(following.entry["at"])
            if committed >= at:
                return committed
        return at

    def _fire_due(self, at: datetime) -> None:
        """Fire what is due at a timer entry, decided at the entry's ``at``. That may be
        a little before an entry logged ahead of it: a prepared timer is recorded at its
        due time, and its commit can land after a recorded event or call of that same
        instant (worker/timer_runner.py); live decided it at ``at``, so replay does too."""
        with self._deciding_at(at):
            while self.orch.timers.tick():
                pass

    def _next_due(self) -> tuple[datetime, Timer] | None:
        """The earliest armed timer replay may fire (not one the log shows overtaken)."""
        if not self.store.timers.pending():  # cheap: most entries find nothing armed
            return None
        try:
            timers = self.store.get(self.rental_id).timers
        except RentalNotFound:
            return None
        due = [(armed.due_at, timer) for timer, armed in timers.items()
               if (timer.value, to_ms(armed.due_at)) not in self.overtaken]
        return min(due) if due else None

    def _effect_call(self, index: int) -> bool:
        """Is this call the effect runner's (not a request's own call)?"""
        if self.tagged or self.compare:
            return "effect_id" in self.lines[index].entry
        for line in self.lines[index + 1:]:  # hand-written: calls right before a request
            if line.kind != "call":  # are that request's
                return line.kind != "request"
        return True

    def _request(self, entry: Mapping[str, Any]) -> None:
        op = entry["op"]
        args = entry.get("args") or {}
        result = entry.get("result") or {}
        self._denied = isinstance(result, Mapping) and result.get("error") == "NotAuthorized"
        rid = self.rental_id
        try:
            if op != "start" and "vehicle_state" in entry:  # the state it decided on
                self._seed_vehicle(self.store.get(rid).vehicle_id, entry)
            if op == "start":
                vehicle_id = str(args.get("vehicle_id"))
                customer_id = str(args.get("customer_id"))
                self._seed_vehicle(vehicle_id, entry)
                with self._busy(result, vehicle_id, customer_id):
                    self.orch.start_rental(
                        rid, vehicle_id=vehicle_id, customer_id=customer_id,
                        customer_status=str(args.get("customer_status", "IDLE")))
            elif op == "end":
                self.orch.end_rental(rid)
            elif op == "force_end":
                self.orch.force_end(rid, reason=str(args.get("reason", "customer_service")))
            else:
                getattr(self.orch, op)(rid)
        except UnansweredCall:
            raise
        except RentalFSMError:
            pass  # the orchestrator logged the refusal as the request's result

    @contextmanager
    def _busy(self, result: Any, vehicle_id: str, customer_id: str) -> Iterator[None]:
        """Live, another rental held the vehicle or customer; the log names only the
        error, so a stand-in rental holds it for the duration of this request."""
        error = result.get("error") if isinstance(result, Mapping) else None
        if error not in ("VehicleBusy", "CustomerBusy"):
            yield
            return
        holder = Rental(
            f"{self.rental_id}~holder", vehicle_id if error == "VehicleBusy" else "~",
            customer_id if error == "CustomerBusy" else "~", state=RentalState.RUNNING,
            created_at=self.clock.now())
        self.store.create(holder)
        try:
            yield
        finally:
            ended = replace(holder, state=RentalState.ENDED, version=1)
            self.store.commit(Commit(ended, 0))

    def _seed_vehicle(self, vehicle_id: str, entry: Mapping[str, Any]) -> None:
        caps = entry.get("capabilities")
        if isinstance(caps, Mapping):
            self.store.set_capabilities(vehicle_id, caps)
        state = entry.get("vehicle_state")
        if isinstance(state, Mapping) and state:
            try:
                self.store.merge_vehicle_state(vehicle_id, state)
            except InvalidInput:
                pass

    def _authorize(self, customer_id: str, vehicle_id: str) -> bool:
        return not self._denied

    # -- the outcome ---------------------------------------------------------------------

    def _result(self, stopped: tuple[int, UnansweredCall] | None) -> RentalReplay:
        replayed = self.store.log(self.rental_id)
        divergence: Divergence | None = None
        if self.compare:
            with_requests = all("result" in line.entry for line in self.lines
                                if line.kind == "request")
            recorded = [(line.seq, project(line.entry)) for line in self.lines
                        if _is_output(line.entry, with_requests)]
            mine = [project(e) for e in replayed if _is_output(e, with_requests)]
            divergence = first_divergence(self.rental_id, recorded, mine,
                                          last_seq=self.lines[-1].seq,
                                          complete=stopped is None)
        if divergence is None and stopped is not None:
            seq, exc = stopped
            divergence = Divergence(self.rental_id, seq, None,
                                    {"call": {"method": exc.method, "path": exc.path}},
                                    str(exc))
        try:
            rental = self.store.get(self.rental_id)
        except RentalNotFound:
            rental = None
        return RentalReplay.of(self.rental_id, rental, replayed, divergence)


#: The replayer the forked workers use (a custom machine holds closures: not picklable,
#: so it is inherited through fork instead of being sent).
_FORKED: Replayer | None = None
#: Below this many lines a process pool costs more than it saves.
PARALLEL_MIN_LINES = 5000


def _replay_all(replayer: Replayer, groups: list[list[LogLine]],
                jobs: int) -> Iterator[tuple[RentalReplay, int]]:
    lines = sum(len(g) for g in groups)
    context = _fork_context()
    if jobs <= 1 or len(groups) < 2 or lines < PARALLEL_MIN_LINES or context is None:
        for group in groups:
            yield replayer.replay_rental(group), len(group)
        return
    global _FORKED
    _FORKED = replayer
    try:
        with context.Pool(jobs) as pool:
            chunk = max(1, len(groups) // (jobs * 8))
            yield from pool.imap(_replay_forked, groups, chunksize=chunk)
    finally:
        _FORKED = None


def _replay_forked(group: list[LogLine]) -> tuple[RentalReplay, int]:
    assert _FORKED is not None
    replayed = _FORKED.replay_rental(group)
    replayed.log = []  # the replayed log stays in the worker: pickling it costs more
    return replayed, len(group)


def _fork_context() -> Any:
    import multiprocessing

    try:
        return multiprocessing.get_context("fork")
    except ValueError:  # no fork on this platform: replay serially
        return None


def _is_output(entry: Mapping[str, Any], with_requests: bool) -> bool:
    kind = entry.get("kind")
    return kind in OUTPUT_KINDS or (with_requests and kind == "request")


def _timer_key(entry: Mapping[str, Any]) -> tuple[str, int]:
    due = entry.get("due")
    try:
        ms = to_ms(parse_time(due)) if isinstance(due, str) else -1
    except ValueError:
        ms = -1
    return str(entry.get("timer")), ms


def _dumps(data: Any) -> str:
    import json

    return json.dumps(data, separators=(",", ":"))


def _no_sleep(seconds: float) -> None:
    return None


def replay(paths: str | Path | Iterable[str | Path], *, machine: RentalMachine = MACHINE,
           durations: Mapping[Timer, timedelta] | None = None,
           end_policy: EndPolicy | None = None) -> ReplayReport:
    """Replay one or more log files; see :class:`Replayer`."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return Replayer(machine, durations=durations, end_policy=end_policy).replay_files(paths)
