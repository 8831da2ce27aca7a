"""Durable, fenced timers: the ``TimerQueue`` protocol and its implementations.

``RedisTimerQueue`` is imported from ``rental_fsm.timers.redis`` so that importing this
package never imports ``redis``.
"""

from __future__ import annotations

from .base import DueTimer, TimerQueue, is_current
from .memory import InMemoryTimerQueue

__all__ = ["DueTimer", "InMemoryTimerQueue", "TimerQueue", "is_current"]
