"""Fire due timers through the same engine as events: same dedupe, log and notifications.

Each claimed timer is checked against its rental's current token (``is_current``): a timer
cancelled or re-armed after it was queued is dropped, so it never fires late. A timer that
was claimed but not applied because the worker died is not lost either: a claim is a
lease (``CLAIM_LEASE``), and a timer its rental still holds is due again when the lease
ends; the store's commit refuses its event id twice, so it never fires twice. Lateness
(commit time minus due time) is logged and counted.

**Prepared timers.** A timer's row has no guard, so what it will do is known as soon as it
is armed: the transition the engine decides at its due time on the rental as it is now.
Each tick the runner decides the timers falling due within ``horizon`` ahead of time
(``Engine.plan`` at the due time, the very commit the ordinary path would write then) and
keeps the commit in the store beside the timer (``prepare_timers``). When the timer falls
due, the store commits it in the same atomic step that claims it (``fire_due``): a batch
of timers costs one round trip and no deciding, and after a round that found timers the
next one is fired while this one is logged, so a burst of timers falling due together is
fired as fast as Redis commits.
While a full batch is due, or this runner holds a full batch of prepared timers falling
due within ``BURST_LOOKAHEAD``, the worker's new commands wait (``caught_up``). Nothing
about it is trusted blindly:

* any commit of the rental drops its prepared commits (they were decided on the record it
  replaces), so an event, a request or another timer that moves the rental first wins, and
  the timer then goes the ordinary way;
* a prepared commit fires only within ``tolerance`` of its due time; it records the
  transition at its due time (rental-log ``at``), so the log is what replay decides. A
  timer later than that (after an outage, say) is fired the ordinary way, at the real time;
* listeners hear a prepared timer's transition as any other: the runner keeps what it
  decided, and an engine with listeners has the store fire only the commits it prepared
  itself (the others, say of a worker that died, go the ordinary way).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from ..clock import Clock
from ..config import DEFAULT_TIMER_HORIZON
from ..engine import Engine, Planned, transition_fields
from ..errors import RentalNotFound, TransitionError, VersionConflict
from ..model import format_time
from ..store.base import (
    PREPARED_TTL,
    CommitOutcome,
    FiredTimer,
    PreparedTimer,
    RentalStore,
    TimerRound,
)
from ..timers.base import DueTimer, TimerQueue, is_current, member, to_ms

log = structlog.get_logger(__name__)

#: How far ahead timers are decided (capped at half the shortest timer duration, so a
#: timer armed now always falls due after the window already scanned).
DEFAULT_HORIZON = DEFAULT_TIMER_HORIZON
#: How late a prepared commit may still fire (recorded at its due time; capped at a
#: tenth of the shortest timer duration).
DEFAULT_TOLERANCE = timedelta(seconds=2)
#: How often the horizon is scanned for timers to decide once a scan found them all
#: (capped at a quarter of the horizon, so each is still decided well before it is due).
#: A scan every tick would put a round trip into every round of a burst of due timers.
DEFAULT_PREPARE_INTERVAL = timedelta(milliseconds=250)
#: A burst: a full batch of prepared timers falling due within this much time (the rate
#: of a batch in 100 ms, 2,000 timers a second with the default batch). Commands wait
#: through it: run beside it, they took the interpreter and Redis from the rounds (the
#: timer benchmark, two runs each: lateness p99 106 and 327 ms with them, 19 and 29 ms
#: without).
BURST_LOOKAHEAD = timedelta(milliseconds=100)


@dataclass
class TimerStats:
    fired: int = 0
    #: Of ``fired``, those the store committed from a prepared commit.
    fired_prepared: int = 0
    #: Timers decided ahead and kept in the store.
    prepared: int = 0
    stale: int = 0
    rejected: int = 0
    max_lateness: timedelta = timedelta(0)
    #: The most recent latenesses (bounded, for percentiles in reports and benchmarks).
    lateness_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))


class TimerRunner:
    def __init__(self, store: RentalStore, queue: TimerQueue, engine: Engine, *,
                 clock: Clock, batch: int = 200, horizon: timedelta = DEFAULT_HORIZON,
                 tolerance: timedelta = DEFAULT_TOLERANCE, owner: str | None = None,
                 prepare_interval: timedelta = DEFAULT_PREPARE_INTERVAL) -> None:
        """``horizon`` zero turns prepared timers off (so does a queue that is not the
        store's own)."""
        if min(horizon, tolerance, prepare_interval) < timedelta(0):
            raise ValueError("horizon, tolerance and prepare_interval must not be negative")
        if horizon > PREPARED_TTL / 2:
            raise ValueError(f"horizon must be at most {PREPARED_TTL / 2}")
        self.store = store
        self.queue = queue
        self.engine = engine
        self.clock = clock
        self.batch = batch
        shortest = min(engine.durations.values(), default=timedelta(0))
        self.horizon = min(horizon, shortest / 2)
        self.tolerance = min(tolerance, shortest / 10)
        self.prepare_interval = min(prepare_interval, self.horizon / 4)
        self.stats = TimerStats()
        self.owner = owner or uuid.uuid4().hex
        self._scanned_to: datetime | None = None
        #: When the last scan reached the end of the horizon (None: it has not yet).
        self._scanned_all_at: datetime | None = None
        #: What this runner prepared, by queue member, until it fires or cannot any more;
        #: ``_planned_order`` holds the members in the order they were prepared (by due).
        self._planned: dict[str, Planned] = {}
        self._planned_order: deque[tuple[datetime, str]] = deque()
        #: Work done by the last ``tick`` (timers fired and prepared), for the loop.
        self.last_work = 0
        #: Clear while the last tick found a full batch due (more is due now) or a burst
        #: is on (``BURST_LOOKAHEAD``): the worker's commands wait for it
        #: (``EffectRunner.defer_to``), so a burst of due timers is committed on time and
        #: its commands follow.
        self.caught_up = threading.Event()
        self.caught_up.set()
        #: The next batch, fired by the store while the last one is handled in Python.
        self._ahead: Future[tuple[TimerRound, datetime]] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._closing = False
        self._lock = threading.Lock()

    @property
    def prepares(self) -> bool:
        """Whether timers are decided ahead and fired inside the store."""
        return (self.horizon > timedelta(0)
                and self.queue is getattr(self.store, "timers", None))

    def tick(self) -> list[DueTimer]:
        """Fire every timer due now (up to ``batch``), then decide the timers falling due
        within the horizon; return those fired.

        Prepared timers are committed by the store as it claims them. The others are
        loaded in one read and committed in one write; a timer whose rental moved in
        between, or a second timer of the same rental, goes through ``_fire`` alone
        afterwards.
        """
        with self._lock:  # an orchestrator's loop and run_pending may tick at once
            return self._tick()

    def _tick(self) -> list[DueTimer]:
        now = self.clock.now()
        fired: list[DueTimer] = []
        if self.prepares:
            ahead, self._ahead = self._ahead, None
            round_, committed_at = ahead.result() if ahead is not None else self._fire_due()
            if ahead is not None and not (round_.fired or round_.claimed):
                # The round fired ahead found nothing then: what is due now?
                round_, committed_at = self._fire_due()
            if (round_.fired or round_.claimed) and not self._closing:
                # Timers are falling due: the store fires the next round while this one is
                # handled here, so a burst costs the larger of the two, not their sum.
                self._ahead = self._executor().submit(self._fire_due)
            for done in round_.fired:
                self._fired_prepared(done, committed_at)
                fired.append(done.due)
            claimed = round_.claimed
            self._forget_planned(now)
            found = len(round_.fired) + len(claimed)
        else:
            claimed = self.queue.claim_due(now, self.batch)
            found = len(claimed)
        if found >= self.batch or (self.prepares and self._burst_ahead(now)):
            self.caught_up.clear()
        else:
            self.caught_up.set()
        if claimed:
            fired += self._fire_claimed(claimed)
        prepared = self.prepare(now) if self.prepares and self._scan_due(now) else 0
        self.last_work = len(fired) + prepared
        return fired

    def _scan_due(self, now: datetime) -> bool:
        """Whether ``prepare`` should scan now: its last scan stopped short of the horizon
        (a batch full), or ``prepare_interval`` has passed since it reached the end. A
        timer armed meanwhile falls due after the horizon already scanned (the horizon is
        at most half the shortest duration), so it is only decided later, never missed."""
        last = self._scanned_all_at
        return last is None or now - last >= self.prepare_interval or now < last

    def pause(self, longest: float) -> float:
        """Seconds the loop may wait, idle, before the next ``step``: until the next timer
        this runner prepared falls due, at most ``longest``. A loop that always waited
        ``longest`` would fire a timer that falls due while it waits that much late."""
        planned, now = self._planned, self.clock.now()
        # Due already but not fired here (another worker fired it, or it goes the
        # ordinary way): the step that just ran saw it, so it is no reason to wake. What
        # fired is off the front of the order already (``_forget_planned``).
        upcoming = next((due for due, text in self._planned_order
                         if due > now and text in planned), None)
        if upcoming is None:
            return longest
        return min((upcoming - now).total_seconds() + 0.001, longest)

    def _fire_due(self) -> tuple[TimerRound, datetime]:
        """One ``fire_due`` now, and when it returned (its timers' commit time)."""
        only_mine = self.owner if self.engine.listeners else None
        round_ = self.store.fire_due(self.clock.now(), self.batch, self.tolerance, only_mine)
        return round_, self.clock.now()

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="rental-fsm-fire-ahead")
        return self._pool

    def close(self) -> None:
        """Handle a batch still being fired ahead (its log lines, listeners, counts),
        firing nothing more ahead."""
        with self._lock:
            self._closing = True
            if self._ahead is not None:
                self._tick()
            self._closing = False
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def step(self) -> int:
        """``tick`` for a loop: how many timers it fired and prepared (0: idle)."""
        with self._lock:
            self._tick()
            return self.last_work

    def prepare(self, now: datetime) -> int:
        """Decide the timers due within the horizon that are not decided yet (up to
        ``batch``) and keep their commits in the store; return how many were kept."""
        until = now + self.horizon
        start = now if self._scanned_to is None else max(self._scanned_to, now)
        if start > until:
            return 0
        upcoming, self._scanned_to = self.store.upcoming_timers(start, until, self.batch, now)
        self._scanned_all_at = now if self._scanned_to >= until else None
        if not upcoming:
            return 0
        rentals = self.store.get_many([due.rental_id for due in upcoming])
        prepared = []
        for due, rental in zip(upcoming, rentals, strict=True):
            if rental is None or not is_current(rental, due):
                continue
            due_at = rental.timers[due.timer].due_at
            if to_ms(due_at) != to_ms(due.due_at):
                continue  # its score is a claim's lease: a claimer is firing it
            due = DueTimer(due_at, due.rental_id, due.timer, due.token)
            try:
                planned = self.engine.plan(rental, due.timer.value, event_id=due.event_id,
                                           inputs=[self._entry(due, due_at)], now=due_at)
            except TransitionError:
                continue  # the ordinary path decides it again when due, and reports
            prepared.append(PreparedTimer(due, planned.commit, transition_fields(planned),
                                          self.owner))
            text = member(due.rental_id, due.timer, due.token)
            self._planned[text] = planned
            self._planned_order.append((due.due_at, text))
        kept = self.store.prepare_timers(prepared)
        self.stats.prepared += kept
        return kept

    def _forget_planned(self, now: datetime) -> None:
        """Drop what can no longer fire from its prepared commit (past the tolerance), and
        what fired, from the front of the order."""
        order, planned = self._planned_order, self._planned
        while order and (order[0][1] not in planned or now - order[0][0] > self.tolerance):
            planned.pop(order.popleft()[1], None)

    def _burst_ahead(self, now: datetime) -> bool:
        """Whether a full batch of the timers this runner prepared falls due by
        ``now + BURST_LOOKAHEAD`` (due already and not fired yet included)."""
        until, planned, count = now + BURST_LOOKAHEAD, self._planned, 0
        for due, text in self._planned_order:  # in due order, as the scans went
            if due > until:
                return False
            if text in planned:
                count += 1
                if count >= self.batch:
                    return True
        return False

    def _fire_claimed(self, claimed: list[DueTimer]) -> list[DueTimer]:
        first: dict[str, DueTimer] = {}
        later: list[DueTimer] = []
        for due in claimed:
            if due.rental_id in first:
                later.append(due)
            else:
                first[due.rental_id] = due
        plans: list[tuple[DueTimer, Planned]] = []
        for due, rental in zip(first.values(), self.store.get_many(list(first)), strict=True):
            if rental is None or not is_current(rental, due):
                self._stale(due)
                continue
            try:
                plans.append((due, self.engine.plan(
                    rental, due.timer.value, event_id=due.event_id,
                    inputs=[self._entry(due)])))
            except TransitionError as exc:
                self._rejected(due, exc)
        results = self.store.write_batch([p.commit for _, p in plans]) if plans else []
        fired = []
        for (due, planned), result in zip(plans, results, strict=True):
            if result is CommitOutcome.APPLIED:
                self.engine.committed(planned)
                self._fired(due)
                fired.append(due)
            elif result is CommitOutcome.DUPLICATE or isinstance(result, RentalNotFound):
                self._stale(due)
            elif isinstance(result, VersionConflict):
                later.append(due)  # the rental moved since the read: load it again
            elif isinstance(result, Exception):
                raise result
        for due in later:
            if self._fire(due):
                fired.append(due)
        return fired

    def _entry(self, due: DueTimer, at: datetime | None = None) -> dict[str, str]:
        return {"kind": "timer", "at": format_time(self.clock.now() if at is None else at),
                "timer": due.timer.value, "due": format_time(due.due_at)}

    def _fired_prepared(self, done: FiredTimer, committed_at: datetime) -> None:
        """What follows a timer the store fired from its prepared commit: what follows
        any committed transition (``Engine.committed``) when this runner decided it, else
        (another worker did) the same log line from the commit's summary; and count it."""
        mine = self._planned.pop(done.member, None)
        self.stats.fired_prepared += 1
        if mine is not None:
            self.engine.committed(mine)
        else:
            try:
                summary = dict(json.loads(done.summary))
            except (ValueError, TypeError):  # only this log line reads it
                summary = {}
            summary.update(rental_id=done.due.rental_id, event_id=done.due.event_id)
            log.info("rental.transitioned", **summary)
        self._fired(done.due, committed_at)

    def _stale(self, due: DueTimer) -> None:
        self.stats.stale += 1
        log.debug("timer.stale", rental_id=due.rental_id, timer=due.timer.value)

    def _rejected(self, due: DueTimer, exc: Exception) -> None:
        # the table's checks make this a bug if it happens
        self.stats.rejected += 1
        log.error("timer.rejected", rental_id=due.rental_id, timer=due.timer.value,
                  reason=str(exc))

    def _fired(self, due: DueTimer, committed_at: datetime | None = None) -> None:
        """Count a committed timer; its lateness is measured once it is committed."""
        lateness = due.lateness(self.clock.now() if committed_at is None else committed_at)
        self.stats.fired += 1
        self.stats.max_lateness = max(self.stats.max_lateness, lateness)
        self.stats.lateness_ms.append(lateness / timedelta(milliseconds=1))
        log.info("timer.fired", rental_id=due.rental_id, timer=due.timer.value,
                 lateness_ms=round(lateness / timedelta(milliseconds=1), 1))

    def _fire(self, due: DueTimer) -> bool:
        """One timer alone: load, check it is still current, apply with retries."""
        try:
            rental = self.store.get(due.rental_id)
        except RentalNotFound:
            self._stale(due)
            return False
        if not is_current(rental, due):
            self._stale(due)
            return False
        try:
            applied = self.engine.apply(due.rental_id, due.timer.value, event_id=due.event_id,
                                        inputs=[self._entry(due)], loaded=rental)
        except TransitionError as exc:
            self._rejected(due, exc)
            return False
        if applied.duplicate:
            self._stale(due)
            return False
        self._fired(due)
        return True
