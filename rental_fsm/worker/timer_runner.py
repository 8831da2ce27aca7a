"""Fire due timers through the same engine as events: same dedupe, log and notifications.

Each claimed timer is checked against its rental's current token (``is_current``): a timer
cancelled or re-armed after it was queued is dropped, so it never fires late. A timer that
was claimed but not applied because the worker died is not lost either: a claim is a
lease (``CLAIM_LEASE``), and a timer its rental still holds is due again when the lease
ends; the store's commit refuses its event id twice, so it never fires twice. Lateness
(commit time minus due time) is logged and counted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from ..clock import Clock
from ..engine import Engine, Planned
from ..errors import RentalNotFound, TransitionError, VersionConflict
from ..model import format_time
from ..store.base import CommitOutcome, RentalStore
from ..timers.base import DueTimer, TimerQueue, is_current

log = structlog.get_logger(__name__)


@dataclass
class TimerStats:
    fired: int = 0
    stale: int = 0
    rejected: int = 0
    max_lateness: timedelta = timedelta(0)
    #: The most recent latenesses (bounded, for percentiles in reports and benchmarks).
    lateness_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))


class TimerRunner:
    def __init__(self, store: RentalStore, queue: TimerQueue, engine: Engine, *,
                 clock: Clock, batch: int = 200) -> None:
        self.store = store
        self.queue = queue
        self.engine = engine
        self.clock = clock
        self.batch = batch
        self.stats = TimerStats()

    def tick(self) -> list[DueTimer]:
        """Claim and fire every timer due now (up to ``batch``); return those fired.

        The batch is loaded in one read and committed in one write; a timer whose rental
        moved in between, or a second timer of the same rental, goes through ``_fire``
        alone afterwards.
        """
        claimed = self.queue.claim_due(self.clock.now(), self.batch)
        if not claimed:
            return []
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

    def _entry(self, due: DueTimer) -> dict[str, str]:
        return {"kind": "timer", "at": format_time(self.clock.now()),
                "timer": due.timer.value, "due": format_time(due.due_at)}

    def _stale(self, due: DueTimer) -> None:
        self.stats.stale += 1
        log.debug("timer.stale", rental_id=due.rental_id, timer=due.timer.value)

    def _rejected(self, due: DueTimer, exc: Exception) -> None:
        # the table's checks make this a bug if it happens
        self.stats.rejected += 1
        log.error("timer.rejected", rental_id=due.rental_id, timer=due.timer.value,
                  reason=str(exc))

    def _fired(self, due: DueTimer) -> None:
        """Count a committed timer; its lateness is measured once it is committed."""
        lateness = due.lateness(self.clock.now())
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
