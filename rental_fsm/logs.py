"""Logging: structlog configured once, at the edge (the CLI), with secrets redacted.

Library modules only call ``structlog.get_logger(__name__)``. ``configure_logging`` sets
JSON lines for machines or a readable console renderer for people, routes the standard
library's loggers (kombu, redis, urllib3) through the same pipeline, and puts
``redact_secrets`` last before rendering, so nothing, tracebacks included, escapes it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "***"

#: Keys whose values are always secrets, compared case-insensitively, '-' as '_'.
SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "bearer",
        "client_secret",
        "oneapi_client_secret",
        "secret",
        "password",
        "passwd",
        "api_key",
        "x_api_key",
        "cookie",
        "set_cookie",
    }
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization header values written inline.
    (re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    # key=value and "key": "value" forms of the sensitive keys (query strings, JSON text).
    (
        re.compile(
            r"""(?i)(["']?(?:access_token|refresh_token|id_token|client_secret|password|"""
            r"""secret|token|authorization)["']?\s*[:=]\s*["']?)(?!(?:Bearer|Basic)\s)"""
            r"""([^"'&\s,}]+)"""
        ),
        r"\1" + REDACTED,
    ),
    # JWTs (OneAPI access tokens start with "eyJ"), wherever they stand.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    # user:password@host in URLs.
    (re.compile(r"(://[^:/@\s]+:)([^@/\s]+)(@)"), r"\1" + REDACTED + r"\3"),
)


def _sensitive(key: object) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") in SENSITIVE_KEYS


def redact_text(text: str) -> str:
    """Remove tokens, secrets and URL passwords from free text."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any, _depth: int = 0) -> Any:
    """Redact secrets anywhere inside ``value`` (dicts by key, strings by pattern)."""
    if _depth > 20:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if _sensitive(k) and v else redact_value(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v, _depth + 1) for v in value)
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the last line of defence before a log line is rendered."""
    for key in list(event_dict):
        value = event_dict[key]
        if _sensitive(key) and value:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact_value(value)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(
    *, fmt: str = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog and the standard library's logging for this process.

    Args:
        fmt: ``json``, ``console`` or ``auto`` (console on a TTY, JSON otherwise).
        level: ``debug``, ``info``, ``warning`` or ``error``.
        stream: where lines go (default ``sys.stderr``).
    """
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    tail: list[Processor] = [
        # No local variables in tracebacks: a local may hold a secret under any name.
        structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        if as_json
        else structlog.processors.format_exc_info,
        redact_secrets,
    ]
    numeric = getattr(logging, level.upper())
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            *tail,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), *tail],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_rental_fsm", False):
            root.removeHandler(old)
    handler._rental_fsm = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(numeric)

