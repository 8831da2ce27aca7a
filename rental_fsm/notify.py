"""Telling the booking backend about every state change.

Seed 002 warns that customer service may end a rental at any time, so the backend must be
told, not left to poll. Notifications travel through the outbox (``Effect.NOTIFY_BOOKING``
is added to every commit when a notifier is configured), so a crash between the commit and
the notification delays it but never loses it; consumers dedupe on ``message_id``
(``<rental_id>:<version>``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)

#: The notification's ``type``.
RENTAL_STATE_CHANGED = "RentalStateChanged"


class Notifier(Protocol):
    def publish(self, change: Mapping[str, Any]) -> None: ...


class CallbackNotifier:
    """Calls a function in-process with each change (the embedding callback)."""

    def __init__(self, callback: Callable[[Mapping[str, Any]], None]) -> None:
        self.callback = callback

    def publish(self, change: Mapping[str, Any]) -> None:
        self.callback(change)


class FanOut:
    """Every notifier gets every change; one failing does not stop the others, but the
    failure is raised afterwards so the outbox keeps the notification."""

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = list(notifiers)

    def publish(self, change: Mapping[str, Any]) -> None:
        errors = []
        for notifier in self.notifiers:
            try:
                notifier.publish(change)
            except Exception as exc:
                log.exception("notify.failed", notifier=type(notifier).__name__)
                errors.append(exc)
        if errors:
            raise errors[0]
