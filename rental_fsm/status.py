"""What the booking backend sees of a rental: ``RentalStatus``, built from the record.

Shaped like the provider API of seed 002: a rental is STARTING until the vehicle confirms,
the customer status is IN_RENTAL meanwhile and falls back to IDLE or IN_RESERVATION if the
start fails; ``pending`` says which confirmation the rental waits for and until when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .model import CustomerStatus, EndReason, Rental, RentalState, Timer, format_time

#: Which confirmation each waiting state expects, and the timer that bounds the wait.
WAITING: dict[RentalState, tuple[str, Timer]] = {
    RentalState.STARTING: ("unlock", Timer.START_TIMEOUT),
    RentalState.RESUMING: ("unlock", Timer.RESUME_TIMEOUT),
    RentalState.PAUSING: ("lock", Timer.STOPOVER_TIMEOUT),
    RentalState.ENDING: ("lock", Timer.END_TIMEOUT),
}


@dataclass(frozen=True)
class Pending:
    """The command a rental waits to see confirmed, and the deadline of that wait."""

    command: str
    deadline: datetime | None


@dataclass(frozen=True)
class RentalStatus:
    rental_id: str
    vehicle_id: str
    customer_id: str
    state: RentalState
    customer_status: CustomerStatus
    billable: bool
    end_reason: EndReason | None
    #: The end-rental criteria that failed at the last end attempt (seed 000).
    unmet: tuple[dict[str, Any], ...]
    pending: Pending | None
    version: int
    created_at: datetime | None
    updated_at: datetime | None
    #: Why the rental last went back (start_timeout, end_failed, ...).
    last_reason: str | None
    #: The vehicle did not answer a state request: the app may fall back to Bluetooth.
    vehicle_unreachable: bool
    #: The last command that failed, e.g. securing the vehicle after a force end.
    last_failure: str | None

    @classmethod
    def of(cls, rental: Rental) -> RentalStatus:
        waiting = WAITING.get(rental.state)
        pending = None
        if waiting is not None:
            armed = rental.timers.get(waiting[1])
            pending = Pending(waiting[0], armed.due_at if armed else None)
        return cls(
            rental_id=rental.rental_id, vehicle_id=rental.vehicle_id,
            customer_id=rental.customer_id, state=rental.state,
            customer_status=rental.customer_status, billable=rental.billable,
            end_reason=rental.end_reason,
            unmet=tuple(dict(u) for u in rental.extra.get("unmet", ())),
            pending=pending, version=rental.version, created_at=rental.created_at,
            updated_at=rental.updated_at, last_reason=rental.last_reason,
            vehicle_unreachable=bool(rental.extra.get("vehicle_unreachable", False)),
            last_failure=rental.extra.get("last_failure"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for HTTP responses and notifications."""
        return {
            "rental_id": self.rental_id, "vehicle_id": self.vehicle_id,
            "customer_id": self.customer_id, "state": self.state.value,
            "customer_status": self.customer_status.value, "billable": self.billable,
            "end_reason": self.end_reason.value if self.end_reason else None,
            "unmet": [dict(u) for u in self.unmet],
            "pending": None if self.pending is None else {
                "command": self.pending.command,
                "deadline": format_time(self.pending.deadline) if self.pending.deadline
                else None},
            "version": self.version,
            "created_at": format_time(self.created_at) if self.created_at else None,
            "updated_at": format_time(self.updated_at) if self.updated_at else None,
            "last_reason": self.last_reason, "vehicle_unreachable": self.vehicle_unreachable,
            "last_failure": self.last_failure,
        }
