"""Dead letters: malformed inbound messages, kept with the reason for inspection.

A message the codec refuses is never dropped: the worker acks it only after it is stored
here (a Redis stream in production, a list in memory). The body is kept as received: as
text when it is UTF-8, base64 otherwise; headers are redacted like log lines.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

import redis

from ..clock import Clock, SystemClock
from ..logs import redact_value
from ..model import format_time
from ..timers.redis import redis_errors
from .base import Keys


def letter(body: bytes, *, reason: str, queue: str, headers: Mapping[str, Any] | None,
           now: datetime) -> dict[str, str]:
    """The stored form of one dead letter (flat strings, as a stream entry wants)."""
    try:
        text, encoding = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(body).decode(), "base64"
    return {
        "at": format_time(now), "queue": queue, "reason": reason, "encoding": encoding,
        "body": text, "headers": json.dumps(redact_value(dict(headers or {})), default=str),
    }


class InMemoryDeadLetters:
    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self.letters: list[dict[str, str]] = []

    def put(self, body: bytes, *, reason: str, queue: str,
            headers: Mapping[str, Any] | None = None) -> str:
        with self._lock:
            self.letters.append(letter(body, reason=reason, queue=queue, headers=headers,
                                       now=self._clock.now()))
            return str(len(self.letters))

    def list(self, limit: int = 100) -> list[dict[str, str]]:
        with self._lock:
            return [dict(item) for item in self.letters[:limit]]


class RedisDeadLetters:
    """Dead letters in the stream ``{ns}:dead-letters`` (never trimmed automatically)."""

    def __init__(self, client: redis.Redis, keys: Keys | None = None,
                 clock: Clock | None = None) -> None:
        self._client = client
        self._key = (keys or Keys()).dead_letters
        self._clock = clock or SystemClock()

    def put(self, body: bytes, *, reason: str, queue: str,
            headers: Mapping[str, Any] | None = None) -> str:
        fields = letter(body, reason=reason, queue=queue, headers=headers,
                        now=self._clock.now())
        with redis_errors("store dead letter"):
            entry_id = self._client.xadd(self._key, fields)  # type: ignore[arg-type]
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def list(self, limit: int = 100) -> list[dict[str, str]]:
        with redis_errors("read dead letters"):
            rows = cast(list[tuple[bytes, dict[bytes, bytes]]],
                        self._client.xrange(self._key, count=limit))
        return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in rows]
