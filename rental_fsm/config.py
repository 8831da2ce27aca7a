"""Settings: one frozen object, read from ``RENTAL_FSM_*`` environment variables.

Nothing reads the environment at import time; the CLI (the composition root) calls
``Settings.from_env()`` and passes the result down. Every problem in the environment is
reported at once in a single ``ConfigurationError``. Secrets never show in reprs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError
from .model import DEFAULT_DURATIONS, Timer

PREFIX = "RENTAL_FSM_"
#: Production OneAPI (../shared/spec/oneapi.md §1).
DEFAULT_ONEAPI_URL = "https://api.invers.com"
DEFAULT_NAMESPACE = "rental_fsm"
DEFAULT_RETENTION_DAYS = 30
DEFAULT_PREFETCH = 100
#: worker/timer_runner.py: how far ahead timers are decided and kept in the store.
DEFAULT_TIMER_HORIZON = timedelta(seconds=10)
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class Secret:
    """A string that never shows itself in ``repr``/``str``; call ``reveal()`` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def redact_url(url: str | None) -> str | None:
    """``amqp://user:pw@host`` -> ``amqp://user:***@host``."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class Settings:
    """Everything a worker or an embedded orchestrator needs to know."""

    #: Redis URL; None = not configured (the demo then uses an in-memory store).
    redis_url: str | None = None
    #: AMQP URL (amqp:// or amqps://); None = not configured (demo: kombu memory://).
    amqp_url: str | None = None
    #: Queues the worker consumes (OneAPI creates them: one per subscribed topic).
    event_queues: tuple[str, ...] = ()
    #: Declare the queues instead of consuming passively (local development only).
    declare_queues: bool = False
    prefetch: int = DEFAULT_PREFETCH
    oneapi_url: str = DEFAULT_ONEAPI_URL
    oneapi_client_id: str = ""
    oneapi_client_secret: Secret = field(default_factory=lambda: Secret(""))
    start_timeout: timedelta = DEFAULT_DURATIONS[Timer.START_TIMEOUT]
    end_timeout: timedelta = DEFAULT_DURATIONS[Timer.END_TIMEOUT]
    auto_cancel: timedelta = DEFAULT_DURATIONS[Timer.AUTO_CANCEL]
    namespace: str = DEFAULT_NAMESPACE
    #: Exchange for RentalStateChanged notifications; None = no AMQP notifications.
    notify_exchange: str | None = None
    retention: timedelta = timedelta(days=DEFAULT_RETENTION_DAYS)
    #: How far ahead the timer loop decides timers (zero: never ahead; TimerRunner).
    timer_horizon: timedelta = DEFAULT_TIMER_HORIZON
    log_format: str = "auto"
    log_level: str = "info"

    def durations(self) -> dict[Timer, timedelta]:
        """Timer durations, with the configured start/end/auto-cancel values."""
        result = dict(DEFAULT_DURATIONS)
        result[Timer.START_TIMEOUT] = self.start_timeout
        result[Timer.END_TIMEOUT] = self.end_timeout
        result[Timer.AUTO_CANCEL] = self.auto_cancel
        # Stopover and resume wait as long as a start or end; the state check at ~half.
        result[Timer.STOPOVER_TIMEOUT] = self.end_timeout
        result[Timer.RESUME_TIMEOUT] = self.start_timeout
        result[Timer.STATE_CHECK] = min(self.start_timeout, self.end_timeout) * 4 / 9
        return result

    def redacted(self) -> dict[str, Any]:
        """The effective settings, safe to print or log."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("redis_url", "amqp_url"):
                value = redact_url(value)
            elif isinstance(value, Secret):
                value = "***" if value else ""
            elif isinstance(value, timedelta):
                value = value.total_seconds()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({body})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``RENTAL_FSM_*`` variables; unset ones keep their defaults.

        Raises:
            ConfigurationError: listing every invalid variable.
        """
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        kwargs: dict[str, Any] = {
            "redis_url": reader.url("REDIS_URL", ("redis", "rediss", "unix")),
            "amqp_url": reader.url("AMQP_URL", ("amqp", "amqps", "memory", "redis")),
            "event_queues": reader.names("EVENT_QUEUES"),
            "declare_queues": reader.boolean("DECLARE_QUEUES"),
            "prefetch": reader.integer("PREFETCH", 1, 65535),
            "oneapi_url": reader.url("ONEAPI_URL", ("http", "https")),
            "oneapi_client_id": reader.text("ONEAPI_CLIENT_ID"),
            "oneapi_client_secret": Secret(env.get(PREFIX + "ONEAPI_CLIENT_SECRET", "")),
            "start_timeout": reader.seconds("START_TIMEOUT_S"),
            "end_timeout": reader.seconds("END_TIMEOUT_S"),
            "auto_cancel": reader.seconds("AUTO_CANCEL_S"),
            "namespace": reader.pattern("NAMESPACE", _NAMESPACE_RE),
            "notify_exchange": reader.pattern("NOTIFY_EXCHANGE", _NAMESPACE_RE),
            "retention": reader.days("RETENTION_DAYS"),
            "timer_horizon": reader.seconds("TIMER_HORIZON_S", zero=True, most=240),
            "log_format": reader.choice("LOG_FORMAT", LOG_FORMATS),
            "log_level": reader.choice("LOG_LEVEL", LOG_LEVELS),
        }
        if reader.problems:
            raise ConfigurationError(reader.problems)
        return cls(**{k: v for k, v in kwargs.items() if v is not None})


class _Reader:
    """Reads one variable at a time, collecting problems instead of raising."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def _raw(self, name: str) -> str | None:
        value = self.env.get(PREFIX + name)
        return None if value is None or value.strip() == "" else value.strip()

    def _bad(self, name: str, why: str) -> None:
        self.problems.append(f"{PREFIX}{name}: {why}")

    def text(self, name: str) -> str | None:
        return self._raw(name)

    def url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return None
        scheme = urlsplit(raw).scheme
        if scheme not in schemes:
            got = scheme or "none"
            self._bad(name, f"scheme must be one of {', '.join(schemes)} (got {got!r})")
            return None
        return raw

    def names(self, name: str) -> tuple[str, ...] | None:
        raw = self._raw(name)
        if raw is None:
            return None
        items = tuple(part.strip() for part in raw.split(","))
        if any(not item for item in items):
            self._bad(name, "empty queue name in the comma-separated list")
            return None
        return items

    def boolean(self, name: str) -> bool | None:
        raw = self._raw(name)
        if raw is None:
            return None
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        self._bad(name, f"expected true or false, got {raw!r}")
        return None

    def integer(self, name: str, low: int, high: int) -> int | None:
        raw = self._raw(name)
        if raw is None:
            return None
        try:
            value = int(raw)
        except ValueError:
            self._bad(name, f"expected an integer, got {raw!r}")
            return None
        if not low <= value <= high:
            self._bad(name, f"must be between {low} and {high}, got {value}")
            return None
        return value

    def _positive(self, name: str, *, zero: bool = False,
                  most: float = float("inf")) -> float | None:
        raw = self._raw(name)
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            self._bad(name, f"expected a number, got {raw!r}")
            return None
        low_ok = value >= 0 if zero else value > 0
        if not low_ok or value != value or value == float("inf"):
            kind = "a number >= 0" if zero else "a positive number"
            self._bad(name, f"must be {kind}, got {raw!r}")
            return None
        if value > most:
            self._bad(name, f"must be at most {most:g}, got {raw!r}")
            return None
        return value

    def seconds(self, name: str, *, zero: bool = False,
                most: float = float("inf")) -> timedelta | None:
        value = self._positive(name, zero=zero, most=most)
        return None if value is None else timedelta(seconds=value)

    def days(self, name: str) -> timedelta | None:
        value = self._positive(name)
        return None if value is None else timedelta(days=value)

    def choice(self, name: str, options: tuple[str, ...]) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return None
        if raw.lower() not in options:
            self._bad(name, f"must be one of {', '.join(options)}, got {raw!r}")
            return None
        return raw.lower()

    def pattern(self, name: str, regex: re.Pattern[str]) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return None
        if not regex.match(raw):
            self._bad(name, f"must match {regex.pattern}, got {raw!r}")
            return None
        return raw
