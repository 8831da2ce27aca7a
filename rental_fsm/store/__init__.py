"""Rental persistence: the ``RentalStore`` protocol and its implementations.

``RedisRentalStore`` is imported from ``rental_fsm.store.redis`` so that importing this
package never imports ``redis``.
"""

from __future__ import annotations

from .base import Commit, CommitOutcome, Keys, OutboxEntry, RentalStore, effect_id
from .memory import InMemoryRentalStore

__all__ = [
    "Commit",
    "CommitOutcome",
    "InMemoryRentalStore",
    "Keys",
    "OutboxEntry",
    "RentalStore",
    "effect_id",
]
