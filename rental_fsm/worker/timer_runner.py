"""Fire due timers through the same engine as events: same dedupe, log and notifications.

Each claimed timer is checked against its rental's current token (``is_current``): a timer
cancelled or re-armed after it was queued is dropped, so it never fires late. A timer that
was claimed but not applied because the worker died is not lost either: the rental still
holds it, and the store's commit refuses its event id twice, so re-arming on recovery is
harmless. Lateness (claim time minus due time) is logged and counted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from ..clock import Clock
from ..engine import Engine
from ..errors import RentalNotFound, TransitionError
from ..model import format_time
from ..store.base import RentalStore
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
        """Claim and fire every timer due now (up to ``batch``); return those fired."""
        now = self.clock.now()
        fired = []
        for due in self.queue.claim_due(now, self.batch):
            if self._fire(due):
                fired.append(due)
        return fired

    def _fire(self, due: DueTimer) -> bool:
        try:
            rental = self.store.get(due.rental_id)
        except RentalNotFound:
            self.stats.stale += 1
            return False
        if not is_current(rental, due):
            self.stats.stale += 1
            log.debug("timer.stale", rental_id=due.rental_id, timer=due.timer.value)
            return False
        now = self.clock.now()
        lateness = due.lateness(now)
        entry = {"kind": "timer", "at": format_time(now), "timer": due.timer.value,
                 "due": format_time(due.due_at)}
        try:
            self.engine.apply(due.rental_id, due.timer.value, event_id=due.event_id,
                              inputs=[entry], loaded=rental)
        except TransitionError as exc:  # the table's checks make this a bug if it happens
            self.stats.rejected += 1
            log.error("timer.rejected", rental_id=due.rental_id, timer=due.timer.value,
                      reason=str(exc))
            return False
        self.stats.fired += 1
        self.stats.max_lateness = max(self.stats.max_lateness, lateness)
        self.stats.lateness_ms.append(lateness / timedelta(milliseconds=1))
        log.info("timer.fired", rental_id=due.rental_id, timer=due.timer.value,
                 lateness_ms=round(lateness / timedelta(milliseconds=1), 1))
        return True
