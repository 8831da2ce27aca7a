"""Transition coverage: which edges of the table the logs exercised, and which never.

An edge is one (trigger, source, dest) of a row; a row with several sources has one edge
per source, as in the diagrams. Coverage reads the recorded ``transition`` entries, so it
needs no replay and works on any log, golden or production.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..machine import TRANSITIONS, Row
from .reader import LogLine

Edge = tuple[str, str, str]


def table_edges(rows: Iterable[Row] = TRANSITIONS) -> list[Edge]:
    """Every (trigger, source, dest) of the table, in table order."""
    return [(row.trigger, src.value, row.dest.value) for row in rows for src in row.source]


@dataclass
class Coverage:
    edges: list[Edge]
    hits: Counter[Edge] = field(default_factory=Counter)
    #: Transitions in the logs that the table does not have (an older release's rows).
    unknown: Counter[Edge] = field(default_factory=Counter)

    @property
    def covered(self) -> list[Edge]:
        return [e for e in self.edges if self.hits[e]]

    @property
    def missing(self) -> list[Edge]:
        return [e for e in self.edges if not self.hits[e]]

    @property
    def complete(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict[str, object]:
        def row(e: Edge) -> dict[str, object]:
            return {"trigger": e[0], "source": e[1], "dest": e[2], "count": self.hits[e]}
        return {"covered": [row(e) for e in self.covered],
                "missing": [row(e) for e in self.missing],
                "unknown": [{"trigger": e[0], "source": e[1], "dest": e[2], "count": n}
                            for e, n in sorted(self.unknown.items())],
                "ratio": f"{len(self.covered)}/{len(self.edges)}"}

    def summary(self) -> str:
        lines = [f"{len(self.covered)}/{len(self.edges)} transitions covered"]
        for e in self.edges:
            mark = f"{self.hits[e]:>5}" if self.hits[e] else "never"
            lines.append(f"  {mark}  {e[1]} --{e[0]}--> {e[2]}")
        for e, n in sorted(self.unknown.items()):
            lines.append(f"  {n:>5}  {e[1]} --{e[0]}--> {e[2]}  (not in the table)")
        return "\n".join(lines) + "\n"


def coverage(lines: Iterable[LogLine], rows: Iterable[Row] = TRANSITIONS) -> Coverage:
    """Count the recorded transitions of ``lines`` against the table's edges."""
    result = Coverage(table_edges(rows))
    known = set(result.edges)
    for line in lines:
        if line.kind != "transition":
            continue
        e = line.entry
        edge = (str(e["trigger"]), str(e["source"]), str(e["dest"]))
        (result.hits if edge in known else result.unknown)[edge] += 1
    return result
