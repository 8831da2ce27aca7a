"""Validation of ids that come from outside (booking backend, events, API responses).

An id ends up in Redis keys and in OneAPI URL paths, so it must not be able to address
another key or another path: a small charset, no separators used in our key layout
(``:`` ``{`` ``}``), no ``/``, bounded length.
"""

from __future__ import annotations

import re

from .errors import InvalidInput

#: Letters, digits, ``_``, ``.`` and ``-``, 1 to 128 characters (UUIDs, ULIDs, "JQ7RP").
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def check_id(field: str, value: object) -> str:
    """Return ``value`` if it is a valid id, else raise ``InvalidInput`` naming ``field``."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, got {type(value).__name__}")
    if not ID_PATTERN.match(value) or value in (".", ".."):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise InvalidInput(
            field, f"{shown!r} must be 1-128 characters of letters, digits and _ . -"
        )
    return value
