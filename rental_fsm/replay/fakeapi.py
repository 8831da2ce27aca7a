"""The vehicle API during replay: every call is answered from the rental's log.

rental-log.md: the n-th call with the same method and path gets the n-th recorded ``call``
entry for them. A recorded refusal is raised as the exception class the log names
(``problem``), a missing response (``error``: timeout/connection) as ``OutcomeUnknown``,
so the orchestrator takes exactly the branch it took live. A call the log has no answer
for raises ``UnansweredCall``, which stops the replay of that rental.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from .. import errors
from ..effects import call_entry
from ..errors import OneAPIError, OutcomeUnknown, UnansweredCall
from ..oneapi.resources import Result, Vehicle
from ..oneapi.vehicle_state import Command, VehicleState
from .reader import LogLine

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class LogAPI:
    """Answers ``command``/``set_rental_status``/``get_vehicle`` from ``call`` entries."""

    def __init__(self, rental_id: str, lines: Iterable[LogLine]) -> None:
        self.rental_id = rental_id
        self._answers: dict[tuple[str, str], deque[LogLine]] = defaultdict(deque)
        for line in lines:
            if line.kind == "call":
                key = (str(line.entry["method"]), str(line.entry["path"]))
                self._answers[key].append(line)
        self._asked: dict[tuple[str, str], int] = defaultdict(int)
        #: ``seq`` of every recorded call entry that has been used as an answer.
        self.consumed: set[int] = set()

    # -- the VehicleAPI protocol --------------------------------------------------------

    def command(self, vehicle_id: str, command: Command) -> Result[VehicleState]:
        answer = self._answer(vehicle_id, command.value)
        return Result(_state(answer), "replay", int(answer["status"]))  # type: ignore[arg-type]

    def set_rental_status(
        self, vehicle_id: str, value: str, *, request_new_vehicle_state: bool = True
    ) -> Result[VehicleState | None]:
        answer = self._answer(vehicle_id, f"rental-status {value}",
                              fresh=request_new_vehicle_state)
        return Result(_state(answer), "replay", int(answer["status"]))

    def get_vehicle(self, vehicle_id: str) -> Result[Vehicle]:
        """Never recorded: a start's request entry carries the capabilities instead."""
        raise UnansweredCall(self.rental_id, "GET", f"/vehicles/{vehicle_id}", 1)

    # -- internals -----------------------------------------------------------------------

    def _answer(self, vehicle_id: str, what: str, fresh: bool = True) -> Mapping[str, Any]:
        probe = call_entry(_EPOCH, vehicle_id, what, None, None, None, fresh=fresh)
        key = (probe["method"], probe["path"])
        self._asked[key] += 1
        queue = self._answers.get(key)
        if not queue:
            raise UnansweredCall(self.rental_id, key[0], key[1], self._asked[key])
        line = queue.popleft()
        self.consumed.add(line.seq)
        entry = line.entry
        status = entry.get("status")
        if entry.get("error") or status is None:
            kind = str(entry.get("error") or "timeout")
            raise OutcomeUnknown(f"replayed {kind}: no response", vehicle_id=vehicle_id)
        if not isinstance(status, int) or status >= 400:
            raise _refusal(entry, vehicle_id)
        return entry


def _state(entry: Mapping[str, Any]) -> VehicleState | None:
    body = entry.get("body")
    return VehicleState.from_json(body) if isinstance(body, Mapping) and body else None


def _refusal(entry: Mapping[str, Any], vehicle_id: str) -> OneAPIError:
    """The exception the recorded refusal was: its class by name, else by status."""
    status = entry.get("status")
    cls = getattr(errors, str(entry.get("problem")), None)
    if not (isinstance(cls, type) and issubclass(cls, OneAPIError)):
        cls = OutcomeUnknown if isinstance(status, int) and status >= 500 else OneAPIError
    return cls(f"replayed refusal {status}", status=status if isinstance(status, int) else None,
               vehicle_id=vehicle_id)
