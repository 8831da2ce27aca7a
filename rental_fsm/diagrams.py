"""State diagrams generated from the transition table, for review.

The table is walked into a small list of :class:`Edge` values, which two renderers turn
into Mermaid (renders on code hosts) and Graphviz DOT text with no dependency. SVG comes
from the ``dot`` program. Every DOT file carries a hash of the table as the graph comment,
which Graphviz copies into the SVG, so ``check`` can tell a stale SVG too.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from .machine import INITIAL, TERMINAL, TRANSITIONS, WAITING_STATES, Row
from .model import DEFAULT_DURATIONS, RentalState, Timer

FORMATS = ("mermaid", "dot", "svg")
#: Colour of the path a rental took (``Highlight``).
PATH_COLOUR = "#1f6feb"
FILENAMES = {"mermaid": "rental.mmd", "dot": "rental.dot", "svg": "rental.svg"}


class DiagramError(RuntimeError):
    """Raised when a diagram cannot be rendered (e.g. Graphviz is not installed)."""


@dataclass(frozen=True)
class Edge:
    source: RentalState
    dest: RentalState
    trigger: str
    guards: tuple[str, ...]
    arms: tuple[str, ...]
    cancels: tuple[str, ...]
    effects: tuple[str, ...]
    #: Set when the edge is taken because a timer fired: its duration.
    timer_after: timedelta | None

    @property
    def label(self) -> str:
        return " ".join(self.label_parts())

    def label_parts(self) -> list[str]:
        """Trigger (or timer), guards, and actions: one part per line in DOT."""
        head = self.trigger
        if self.timer_after is not None:
            head = f"after {_seconds(self.timer_after)} ({self.trigger})"
        parts = [head]
        if self.guards:
            parts.append("[" + ", ".join(self.guards) + "]")
        actions = list(self.effects) + [f"arm {a}" for a in self.arms]
        if self.cancels:
            actions.append("cancel " + ", ".join(self.cancels))
        if actions:
            parts.append("/ " + ", ".join(actions))
        return parts


@dataclass(frozen=True)
class Highlight:
    """One rental's path: the edges it took (with the step numbers) and its states.

    Edges are keyed by ``(trigger, source, dest)`` values, as rental logs record them.
    """

    edges: Mapping[tuple[str, str, str], tuple[int, ...]]
    states: frozenset[RentalState]

    @classmethod
    def from_transitions(cls, transitions: Iterable[Mapping[str, object]]) -> Highlight:
        """From ``transition`` log entries (or dicts with trigger/source/dest)."""
        steps: dict[tuple[str, str, str], list[int]] = {}
        states: set[RentalState] = set()
        for number, t in enumerate(transitions, start=1):
            key = (str(t["trigger"]), str(t["source"]), str(t["dest"]))
            steps.setdefault(key, []).append(number)
            states.update((RentalState(key[1]), RentalState(key[2])))
        return cls({k: tuple(v) for k, v in steps.items()}, frozenset(states))

    def steps(self, edge: Edge) -> tuple[int, ...]:
        return self.edges.get((edge.trigger, edge.source.value, edge.dest.value), ())


def _step_label(steps: tuple[int, ...]) -> str:
    return "#" + ",".join(str(n) for n in steps)


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():g} s"


def edges(
    rows: Iterable[Row] = TRANSITIONS,
    durations: Mapping[Timer, timedelta] = DEFAULT_DURATIONS,
) -> list[Edge]:
    """The table as diagram edges, one per (row, source state), in table order."""
    timer_names = {t.value: t for t in Timer}
    result = []
    for row in rows:
        timer = timer_names.get(row.trigger)
        for source in row.source:
            result.append(
                Edge(
                    source=source,
                    dest=row.dest,
                    trigger=row.trigger,
                    guards=tuple(guard.__name__ for guard in row.guards),
                    arms=tuple(f"{t.value} {_seconds(durations[t])}" for t in row.arms),
                    cancels=tuple(t.value for t in row.cancels)
                    if len(row.cancels) < len(Timer) else ("all timers",),
                    effects=tuple(e.value for e in row.effects),
                    timer_after=durations[timer] if timer else None,
                )
            )
    return result


def table_hash(rows: Iterable[Row] = TRANSITIONS) -> str:
    """A short hash of everything the diagrams show."""
    text = "\n".join(f"{e.source.value}>{e.dest.value}:{e.label}" for e in edges(rows))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def to_mermaid(rows: Iterable[Row] = TRANSITIONS, highlight: Highlight | None = None) -> str:
    """Mermaid text; with ``highlight``, taken edges carry their step numbers and the
    visited states the ``visited`` class (Mermaid cannot colour single transitions)."""
    rows = tuple(rows)
    lines = [
        f"%% Generated from rental_fsm/machine.py (table {table_hash(rows)}).",
        "%% Do not edit: run `make diagrams`.",
        "stateDiagram-v2",
        f"    [*] --> {INITIAL.value}",
    ]
    for edge in edges(rows):
        label = edge.label
        if highlight is not None and highlight.steps(edge):
            label = f"{_step_label(highlight.steps(edge))} {label}"
        lines.append(f"    {edge.source.value} --> {edge.dest.value} : {label}")
    for state in sorted(TERMINAL, key=lambda s: s.value):
        lines.append(f"    {state.value} --> [*]")
    for state in sorted(WAITING_STATES, key=lambda s: s.value):
        lines.append(f"    class {state.value} waiting")
    lines.append("    classDef waiting fill:#fff4d6,stroke:#b58900")
    if highlight is not None:
        for state in sorted(highlight.states, key=lambda s: s.value):
            lines.append(f"    class {state.value} visited")
        lines.append(f"    classDef visited stroke:{PATH_COLOUR},stroke-width:3px")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    """A DOT string literal; newlines become centred line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped + '"'


def to_dot(rows: Iterable[Row] = TRANSITIONS, highlight: Highlight | None = None) -> str:
    """DOT text; with ``highlight``, the path is drawn bold and coloured, with its step
    numbers, and everything else greyed out."""
    rows = tuple(rows)
    lines = [
        "// Generated from rental_fsm/machine.py. Do not edit: run `make diagrams`.",
        "digraph rental {",
        f"    comment={_dot_quote('rental_fsm table ' + table_hash(rows))};",
        '    rankdir=TB; nodesep=0.4; ranksep=0.6; fontname="Helvetica";',
        '    node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=9];',
        '    __start [shape=point, width=0.15, label=""];',
        f"    __start -> {INITIAL.value};",
    ]
    for state in RentalState:
        attrs = []
        if state in WAITING_STATES:
            attrs.append('fillcolor="#fff4d6"')
        if state in TERMINAL:
            attrs.append("peripheries=2")
        if highlight is not None:
            attrs += ([f'color="{PATH_COLOUR}"', "penwidth=3"] if state in highlight.states
                      else ['fontcolor="#999999"', 'color="#bbbbbb"'])
        if attrs:
            lines.append(f"    {state.value} [{', '.join(attrs)}];")
    for edge in edges(rows):
        parts = edge.label_parts()
        steps = highlight.steps(edge) if highlight is not None else ()
        if steps:
            parts = [_step_label(steps), *parts]
        attrs = [f"label={_dot_quote(chr(10).join(parts))}"]
        if edge.timer_after is not None:
            attrs += ["style=dashed", 'color="#b22222"', 'fontcolor="#b22222"']
        if highlight is not None:
            attrs = [a for a in attrs if not a.startswith(("color=", "fontcolor="))]
            attrs += ([f'color="{PATH_COLOUR}"', f'fontcolor="{PATH_COLOUR}"', "penwidth=3"]
                      if steps else ['color="#cccccc"', 'fontcolor="#aaaaaa"'])
        lines.append(f"    {edge.source.value} -> {edge.dest.value} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(rows: Iterable[Row] = TRANSITIONS, highlight: Highlight | None = None) -> str:
    """Render with Graphviz's ``dot``; raises DiagramError when it is missing."""
    dot = shutil.which("dot")
    if dot is None:
        raise DiagramError("Graphviz 'dot' not found: install graphviz (apt-get install graphviz)")
    proc = subprocess.run(
        [dot, "-Tsvg"], input=to_dot(rows, highlight), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise DiagramError(f"dot failed: {proc.stderr.strip()}")
    return proc.stdout


def render(fmt: str, rows: Iterable[Row] = TRANSITIONS,
           highlight: Highlight | None = None) -> str:
    if fmt == "mermaid":
        return to_mermaid(rows, highlight)
    if fmt == "dot":
        return to_dot(rows, highlight)
    if fmt == "svg":
        return to_svg(rows, highlight)
    raise ValueError(f"unknown diagram format {fmt!r}; choose one of {', '.join(FORMATS)}")


def write_all(directory: Path, rows: Iterable[Row] = TRANSITIONS) -> list[Path]:
    """Write rental.mmd, rental.dot and rental.svg into ``directory``."""
    rows = tuple(rows)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in FORMATS:
        path = directory / FILENAMES[fmt]
        path.write_text(render(fmt, rows), encoding="utf-8")
        written.append(path)
    return written


def check(directory: Path, rows: Iterable[Row] = TRANSITIONS) -> list[str]:
    """Problems with the committed diagrams in ``directory`` (empty list = fresh)."""
    rows = tuple(rows)
    problems = []
    for fmt in ("mermaid", "dot"):
        path = directory / FILENAMES[fmt]
        if not path.exists():
            problems.append(f"{path} is missing")
        elif path.read_text(encoding="utf-8") != render(fmt, rows):
            problems.append(f"{path} is stale")
    svg = directory / FILENAMES["svg"]
    if not svg.exists():
        problems.append(f"{svg} is missing")
    elif f"rental_fsm table {table_hash(rows)}" not in svg.read_text(encoding="utf-8"):
        problems.append(f"{svg} is stale (rendered from another table)")
    if problems:
        problems.append("run `make diagrams` and commit the result")
    return problems
