"""What a replay found: per rental the outcome, and the first divergence if any.

``ReplayReport.to_dict`` is the ``--json`` shape of rental-log.md. Outputs are compared
as projections (``project``): a transition by trigger/source/dest, a timer by name (and
outcome, if any), a request by its result (ok, or the error class and the unmet
criteria), never by time or wording, which a new release may change without changing
behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model import Rental


def project(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an output entry that replay compares."""
    kind = entry.get("kind")
    if kind == "transition":
        return {"kind": kind, "trigger": entry.get("trigger"), "source": entry.get("source"),
                "dest": entry.get("dest")}
    if kind == "timer":
        timer = {"kind": kind, "timer": entry.get("timer")}
        if "outcome" in entry:  # overtaken: due, but an input disarmed it first
            timer["outcome"] = entry.get("outcome")
        return timer
    result = entry.get("result")
    shown: dict[str, Any] = {"ok": True}
    if isinstance(result, Mapping) and "error" in result:
        shown = {"error": result.get("error")}
        if result.get("unmet"):
            shown["unmet"] = result.get("unmet")
    return {"kind": kind, "op": entry.get("op"), "result": shown}


@dataclass(frozen=True)
class Divergence:
    """The first output that differs: ``seq`` is the recorded entry's."""

    rental_id: str
    seq: int
    recorded: Mapping[str, Any] | None
    replayed: Mapping[str, Any] | None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"rental_id": self.rental_id, "seq": self.seq,
                "recorded": _plain(self.recorded), "replayed": _plain(self.replayed),
                "reason": self.reason}

    def __str__(self) -> str:
        text = (f"rental {self.rental_id}: diverges at seq {self.seq}: recorded "
                f"{_show(self.recorded)}, replayed {_show(self.replayed)}")
        return f"{text} ({self.reason})" if self.reason else text


def first_divergence(
    rental_id: str, recorded: Sequence[tuple[int, Mapping[str, Any]]],
    replayed: Sequence[Mapping[str, Any]], *, last_seq: int, complete: bool = True,
) -> Divergence | None:
    """Compare recorded outputs ``(seq, projection)`` with replayed projections in order.

    With ``complete=False`` (the replay stopped early) missing replayed outputs at the end
    are not a divergence: the caller reports why it stopped instead.
    """
    for index, (seq, want) in enumerate(recorded):
        if index >= len(replayed):
            if not complete:
                return None
            return Divergence(rental_id, seq, want, None, "the replay did not produce it")
        if dict(replayed[index]) != dict(want):
            return Divergence(rental_id, seq, want, replayed[index])
    if len(replayed) > len(recorded):
        return Divergence(rental_id, last_seq, None, replayed[len(recorded)],
                          "the replay produced more than was recorded")
    return None


@dataclass
class RentalReplay:
    """One rental after replay: where it ended up and what it did."""

    rental_id: str
    state: str | None
    billable: bool | None
    end_reason: str | None
    transitions: list[dict[str, Any]]
    timers: list[str]
    calls: list[dict[str, Any]]
    divergence: Divergence | None
    #: The log the replay's own store recorded (rental-log.md v1 entries).
    log: list[dict[str, Any]] = field(repr=False, default_factory=list)

    @classmethod
    def of(cls, rental_id: str, rental: Rental | None, log: list[dict[str, Any]],
           divergence: Divergence | None) -> RentalReplay:
        return cls(
            rental_id=rental_id,
            state=rental.state.value if rental else None,
            billable=rental.billable if rental else None,
            end_reason=rental.end_reason.value if rental and rental.end_reason else None,
            transitions=[{k: e[k] for k in ("trigger", "source", "dest")}
                         for e in log if e["kind"] == "transition"],
            timers=[str(e["timer"]) for e in log  # fired, not overtaken
                    if e["kind"] == "timer" and "outcome" not in e],
            calls=[{"method": e["method"], "path": e["path"]}
                   for e in log if e["kind"] == "call"],
            divergence=divergence, log=log)

    @property
    def triggers(self) -> list[str]:
        return [t["trigger"] for t in self.transitions]

    @property
    def states(self) -> list[str]:
        """Every state the rental went through, from the first source on."""
        if not self.transitions:
            return [self.state] if self.state else []
        return [self.transitions[0]["source"], *(t["dest"] for t in self.transitions)]

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "billable": self.billable, "end_reason": self.end_reason,
                "transitions": self.transitions, "calls": self.calls,
                "divergence": self.divergence.to_dict() if self.divergence else None}


@dataclass
class ReplayReport:
    """Every replayed rental, in the order the logs first named them."""

    rentals: dict[str, RentalReplay] = field(default_factory=dict)

    @property
    def divergences(self) -> list[Divergence]:
        return [r.divergence for r in self.rentals.values() if r.divergence is not None]

    @property
    def ok(self) -> bool:
        return not self.divergences

    def to_dict(self) -> dict[str, Any]:
        return {"rentals": {rid: r.to_dict() for rid, r in self.rentals.items()}}

    def summary(self) -> str:
        """Human-readable text: one line per rental, then each divergence."""
        lines = []
        for rid, r in self.rentals.items():
            mark = "DIVERGES" if r.divergence else "ok"
            path = " -> ".join(r.states) or "(no transition)"
            lines.append(f"{rid}: {mark}: {path}")
        lines.extend(str(d) for d in self.divergences)
        lines.append(f"{len(self.rentals)} rental(s), {len(self.divergences)} divergence(s)")
        return "\n".join(lines) + "\n"


def _plain(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


def _show(value: Mapping[str, Any] | None) -> str:
    if value is None:
        return "nothing"
    return " ".join(f"{k}={v}" for k, v in value.items() if k != "kind") or str(value)
