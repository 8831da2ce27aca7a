"""The timer queue seam: durable timers shared by every worker, with fencing tokens.

A timer is identified by (rental id, timer name) and carries the token of the
``ArmedTimer`` the rental holds. ``claim_due(now)`` hands each due timer to exactly one
caller, and a token fires at most once. Claiming is not enough to act on it, though: a
transition may cancel or re-arm the timer between the claim and the caller's load, so the
caller must check :func:`is_current` against the freshly loaded rental and drop the timer
when it says False. Stale timers therefore never fire, whatever the interleaving.

Time is always passed in (``now``), never read here; after a restart, timers that fell due
while no worker ran are simply claimed by the first ``claim_due``. ``DueTimer.lateness``
tells how late that was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

from ..model import ArmedTimer, Rental, Timer, utc

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

#: How long a claimed timer is held for its claimer. A timer still armed on its rental
#: when the lease runs out (the claimer died before its commit) is due again.
CLAIM_LEASE = timedelta(seconds=30)


@dataclass(frozen=True, order=True)
class DueTimer:
    """A timer handed out by ``claim_due``."""

    due_at: datetime
    rental_id: str
    timer: Timer
    token: str

    def lateness(self, now: datetime) -> timedelta:
        """How long after its due time the timer was claimed (zero if not late)."""
        return max(utc(now) - self.due_at, timedelta(0))

    @property
    def event_id(self) -> str:
        """The event id a fired timer commits under: one per token, so a timer that is
        claimed again after a crash is recognised as a duplicate by the store."""
        return f"timer:{self.timer.value}:{self.token}"


def is_current(rental: Rental, due: DueTimer) -> bool:
    """True when ``rental`` still holds the timer ``due`` was claimed for.

    False means it was cancelled or superseded (re-armed with a new token) after it was
    queued: drop it without deciding anything.
    """
    armed = rental.timers.get(due.timer)
    return armed is not None and rental.rental_id == due.rental_id and armed.token == due.token


def to_ms(when: datetime) -> int:
    """Epoch milliseconds, the queue's score."""
    return (utc(when) - _EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def member(rental_id: str, timer: Timer, token: str) -> str:
    """The queue member of one armed timer: JSON, so no id can break the encoding."""
    return json.dumps([rental_id, timer.value, token], separators=(",", ":"))


def parse_member(text: str, score_ms: int) -> DueTimer:
    rental_id, name, token = json.loads(text)
    return DueTimer(from_ms(score_ms), str(rental_id), Timer(name), str(token))


class TimerQueue(Protocol):
    """Durable timers. All methods are atomic and safe across threads and processes."""

    def schedule(self, rental_id: str, timer: Timer, token: str, due_at: datetime) -> None:
        """Arm ``timer`` for the rental with ``token``, replacing any other token for it.
        Idempotent: scheduling the token it already holds does nothing (even once that
        token has been claimed, so a token never fires twice)."""
        ...

    def cancel(self, rental_id: str, timer: Timer) -> None:
        """Disarm the rental's ``timer``; nothing happens if it is not armed."""
        ...

    def sync_rental(self, rental_id: str, timers: Mapping[Timer, ArmedTimer]) -> None:
        """Make the rental's armed timers exactly ``timers`` (the store calls this with
        ``rental.timers``; the Redis store does the same inside its commit script)."""
        ...

    def claim_due(self, now: datetime, limit: int = 100) -> list[DueTimer]:
        """Return up to ``limit`` timers due at ``now``, earliest first, each leased to
        this caller for ``CLAIM_LEASE``: a timer its rental still holds when the lease
        ends (the claimer died before its commit) is due again. Timers the rental no
        longer holds are dropped here."""
        ...

    def pending(self) -> int:
        """How many timers are queued (armed and not yet claimed)."""
        ...
