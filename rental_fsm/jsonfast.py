"""JSON on the hot path: orjson's speed, the standard library's reach.

Every event is decoded once, and its log entry, vehicle state and rental record are
encoded and decoded again in the store; with the stdlib ``json`` that was about a fifth
of the worker's consumer thread (a py-spy profile, 2026-12-02). orjson is several times
faster but refuses a few things ``json`` takes (integers beyond 64 bits, non-string keys,
lone surrogates); those go to the standard library, so nothing that was accepted
before is refused now.

One difference on purpose: ``NaN`` and ``Infinity`` are not JSON (RFC 8259 §6), and
``loads`` refuses them (the stdlib accepts them); an event carrying one is dead-lettered
with the reason instead of being stored as something no other JSON reader can parse.
Every reader of outside input (events, OneAPI responses, replayed logs) goes through
``loads``, so no NaN reaches ``dumps``, which would write it as ``null`` (orjson's
choice). ``dumps`` also writes Enum members by value and UUIDs as strings, which the
stdlib refused; nothing of ours hands it either.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import orjson

#: orjson's own encoding of datetimes and dataclasses is switched off: they raise
#: ``TypeError`` and go to ``json``, which refuses them as it always did.
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | \
    orjson.OPT_PASSTHROUGH_DATACLASS


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def loads(data: bytes | bytearray | str) -> Any:
    """Parse JSON; raises ``ValueError`` (``json.JSONDecodeError`` or
    ``UnicodeDecodeError``, both subclasses) for what is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # big integers, or not JSON: the stdlib decides
        return json.loads(data, parse_constant=_no_constant)


def dumps(value: Any) -> str:
    """Compact JSON with non-ASCII characters kept, as
    ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)`` writes it."""
    try:
        return orjson.dumps(value, option=_OPTIONS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
