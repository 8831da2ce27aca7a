"""Read rental logs (rental-log.md v1) and refuse anything replay could misread.

Every line is checked before a single entry is replayed: JSON object, ``v`` = 1, a known
``kind``, ``seq`` per rental from 1 without gaps, ``at`` in RFC 3339, and the fields the
kind needs. A bad line fails the whole file with ``LogFormatError`` naming the file, the
line and the reason, because replaying half a log would report a divergence that is
really a damaged file. Unknown fields are kept and ignored (later versions add fields).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import jsonfast
from ..errors import LogFormatError
from ..model import parse_time
from ..store.base import LOG_FORMAT_VERSION, LOG_KINDS

#: rental-log.md: the booking-backend operations a ``request`` entry may name.
REQUEST_OPS = frozenset({"start", "end", "begin_stopover", "end_stopover", "force_end",
                         "cancel"})
#: Kinds replay compares against (the others are inputs it feeds in).
OUTPUT_KINDS = frozenset({"timer", "transition"})

_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "request": ("op",),
    "event": ("event",),
    "call": ("method", "path"),
    "clock": (),
    "timer": ("timer",),
    "transition": ("trigger", "source", "dest"),
}


@dataclass(frozen=True)
class LogLine:
    """One validated entry and where it came from (for error messages and reports)."""

    path: str
    line: int
    entry: Mapping[str, Any]

    @property
    def seq(self) -> int:
        return int(self.entry["seq"])

    @property
    def kind(self) -> str:
        return str(self.entry["kind"])

    @property
    def rental_id(self) -> str:
        return str(self.entry["rental_id"])


def parse_lines(lines: Iterable[str], path: str = "<log>") -> Iterator[LogLine]:
    """Validate and yield the entries of a log given as text lines (blank lines skipped).

    Raises:
        LogFormatError: the first bad line, with ``path``, its 1-based number and why.
    """
    expected: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        entry = _entry(text, path, number)
        rental_id = entry["rental_id"]
        want = expected.get(rental_id, 1)
        if entry["seq"] != want:
            raise LogFormatError(path, number, f"seq {entry['seq']} of rental {rental_id!r}, "
                                               f"expected {want} (sequence must have no gaps)")
        expected[rental_id] = want + 1
        yield LogLine(path, number, entry)


def read_log(path: str | Path) -> list[LogLine]:
    """Read and validate a whole log file. Raises LogFormatError (also for I/O errors)."""
    name = str(path)
    try:
        with open(path, encoding="utf-8") as stream:
            return list(parse_lines(stream, name))
    except OSError as exc:
        raise LogFormatError(name, 0, f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise LogFormatError(name, 0, f"not UTF-8: {exc.reason}") from exc


def by_rental(lines: Iterable[LogLine]) -> dict[str, list[LogLine]]:
    """Group entries per rental, each rental's in ``seq`` order (first-seen rental order)."""
    groups: dict[str, list[LogLine]] = {}
    for line in lines:
        groups.setdefault(line.rental_id, []).append(line)
    for entries in groups.values():
        entries.sort(key=lambda e: e.seq)
    return groups


def _entry(text: str, path: str, number: int) -> dict[str, Any]:
    try:
        entry = jsonfast.loads(text)
    except ValueError as exc:
        raise LogFormatError(path, number, f"not JSON: {exc}") from None
    if not isinstance(entry, dict):
        raise LogFormatError(path, number, "not a JSON object")
    if entry.get("v") != LOG_FORMAT_VERSION:
        raise LogFormatError(path, number, f"unsupported version v={entry.get('v')!r} "
                                           f"(this reader knows v={LOG_FORMAT_VERSION})")
    kind = entry.get("kind")
    if not isinstance(kind, str) or kind not in LOG_KINDS:  # a list or object is unhashable
        raise LogFormatError(path, number, f"unknown kind {kind!r}")
    rental_id = entry.get("rental_id")
    if not isinstance(rental_id, str) or not rental_id:
        raise LogFormatError(path, number, "rental_id must be a non-empty string")
    seq = entry.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise LogFormatError(path, number, f"seq must be a positive integer, got {seq!r}")
    at = entry.get("at")
    try:
        parse_time(at)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise LogFormatError(path, number, f"at {at!r} is not an RFC 3339 UTC time") from None
    for name in _REQUIRED[kind]:
        if name not in entry:
            raise LogFormatError(path, number, f"{kind} entry without {name!r}")
    if kind == "request" and not (isinstance(entry["op"], str)
                                  and entry["op"] in REQUEST_OPS):
        raise LogFormatError(path, number, f"unknown request op {entry['op']!r}")
    if kind == "event" and not isinstance(entry["event"], dict):
        raise LogFormatError(path, number, "event must be a JSON object")
    return entry
