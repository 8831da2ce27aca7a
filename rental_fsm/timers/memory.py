"""``InMemoryTimerQueue``: the TimerQueue contract on a heap, for tests and the simulator.

It mirrors the Redis layout: ``_armed`` is the per-rental map (timer -> member) and
``_queued`` the sorted set (member -> due ms). The heap may hold stale entries (cancelled
or re-scheduled); ``claim_due`` skips any entry ``_queued`` no longer agrees with.
"""

from __future__ import annotations

import heapq
import json
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta

from ..model import ArmedTimer, Timer
from .base import CLAIM_LEASE, DueTimer, member, parse_member, to_ms


class InMemoryTimerQueue:
    """Heap-based timer queue; one lock makes every method atomic."""

    def __init__(self, *, lease: timedelta = CLAIM_LEASE) -> None:
        #: How long a claim holds a timer (``CLAIM_LEASE``).
        self.lease = lease
        self._lease_ms = lease // timedelta(milliseconds=1)
        self._lock = threading.RLock()
        self._heap: list[tuple[int, str]] = []
        self._queued: dict[str, int] = {}
        self._armed: dict[str, dict[Timer, str]] = {}

    def schedule(self, rental_id: str, timer: Timer, token: str, due_at: datetime) -> None:
        with self._lock:
            new = member(rental_id, timer, token)
            armed = self._armed.setdefault(rental_id, {})
            current = armed.get(timer)
            if current == new:
                return
            if current is not None:
                self._queued.pop(current, None)
            armed[timer] = new
            due = to_ms(due_at)
            self._queued[new] = due
            heapq.heappush(self._heap, (due, new))

    def cancel(self, rental_id: str, timer: Timer) -> None:
        with self._lock:
            armed = self._armed.get(rental_id, {})
            current = armed.pop(timer, None)
            if current is not None:
                self._queued.pop(current, None)
            if not armed:
                self._armed.pop(rental_id, None)

    def sync_rental(self, rental_id: str, timers: Mapping[Timer, ArmedTimer]) -> None:
        with self._lock:
            for timer, armed in timers.items():
                self.schedule(rental_id, timer, armed.token, armed.due_at)
            for timer in list(self._armed.get(rental_id, {})):
                if timer not in timers:
                    self.cancel(rental_id, timer)

    def claim_due(self, now: datetime, limit: int = 100) -> list[DueTimer]:
        cutoff = to_ms(now)
        claimed: list[DueTimer] = []
        leased: list[str] = []
        with self._lock:
            while self._heap and len(claimed) < limit and self._heap[0][0] <= cutoff:
                due, text = heapq.heappop(self._heap)
                if self._queued.get(text) != due:
                    continue  # cancelled or re-scheduled since it was pushed
                timer = parse_member(text, due)
                if self._armed.get(timer.rental_id, {}).get(timer.timer) != text:
                    del self._queued[text]  # the rental no longer holds it
                    continue
                claimed.append(timer)
                leased.append(text)
            for text in leased:  # due again after the lease, unless fired or cancelled
                self._queued[text] = cutoff + self._lease_ms
                heapq.heappush(self._heap, (cutoff + self._lease_ms, text))
        return claimed

    def queued_between(self, start_ms: int, until_ms: int) -> list[tuple[int, str]]:
        """(score, member) of the armed timers scored in [start_ms, until_ms], earliest
        first (``InMemoryRentalStore.upcoming_timers``)."""
        with self._lock:
            found = [(due, text) for text, due in self._queued.items()
                     if start_ms <= due <= until_ms and self.holds(text)]
        return sorted(found)

    def holds(self, text: str) -> bool:
        """True when the member's rental still holds it (armed, not superseded)."""
        rental_id, name, _ = json.loads(text)
        with self._lock:
            return self._armed.get(rental_id, {}).get(Timer(name)) == text

    def pending(self) -> int:
        with self._lock:
            return len(self._queued)
