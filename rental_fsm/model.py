"""Value objects of a rental: states, timers, effects, the rental record, decisions.

Everything here is an immutable value with no I/O, so the machine can decide purely and
the store can persist records as JSON (never pickle). ``Rental.to_dict``/``from_dict`` is
the one place the stored shape is defined; ``RECORD_VERSION`` lets a later release migrate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from enum import Enum
from functools import lru_cache
from typing import Any

#: Version of the stored rental record shape; bump it and migrate in ``from_dict``.
RECORD_VERSION = 1


class RentalState(str, Enum):
    """States of a rental; values are persisted and printed upper-case as in seed 002."""

    IDLE = "IDLE"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PAUSING = "PAUSING"
    STOPOVER = "STOPOVER"
    RESUMING = "RESUMING"
    ENDING = "ENDING"
    ENDED = "ENDED"


#: States in which the rental holds its vehicle and customer (the indexes point at it).
ACTIVE_STATES = frozenset(
    {
        RentalState.STARTING,
        RentalState.RUNNING,
        RentalState.PAUSING,
        RentalState.STOPOVER,
        RentalState.RESUMING,
        RentalState.ENDING,
    }
)


class CustomerStatus(str, Enum):
    """The customer's status as the provider API of seed 002 reports it."""

    IDLE = "IDLE"
    IN_RESERVATION = "IN_RESERVATION"
    IN_RENTAL = "IN_RENTAL"


class EndReason(str, Enum):
    """Why a rental reached ENDED (rental-log.md ``end_reason``)."""

    COMPLETED = "completed"
    AUTO_CANCELLED = "auto_cancelled"
    FORCE_ENDED = "force_ended"
    CANCELLED = "cancelled"


class Timer(str, Enum):
    """Durable timers. A timer's value is also the trigger it fires."""

    START_TIMEOUT = "start_timeout"
    END_TIMEOUT = "end_timeout"
    AUTO_CANCEL = "auto_cancel"
    STOPOVER_TIMEOUT = "stopover_timeout"
    RESUME_TIMEOUT = "resume_timeout"
    STATE_CHECK = "state_check"


#: Default durations. 45 s and 60 s come from seed 002 ("maximum timeout of 45 seconds to
#: rental/start and rental/end"; "does not interact ... in the first 60 seconds").
DEFAULT_DURATIONS: Mapping[Timer, timedelta] = {
    Timer.START_TIMEOUT: timedelta(seconds=45),
    Timer.END_TIMEOUT: timedelta(seconds=45),
    Timer.AUTO_CANCEL: timedelta(seconds=60),
    Timer.STOPOVER_TIMEOUT: timedelta(seconds=45),
    Timer.RESUME_TIMEOUT: timedelta(seconds=45),
    #: Seed 000: when no new state arrives while waiting, request one actively (once).
    Timer.STATE_CHECK: timedelta(seconds=20),
}


class Effect(str, Enum):
    """What a transition asks the outside world to do, after it is committed."""

    #: unlock-and-enable-driving, or unlock-central-lock + enable-driving (seed 000).
    UNLOCK_VEHICLE = "unlock_vehicle"
    #: lock-and-disable-driving, or lock-central-lock + disable-driving (seed 000).
    SECURE_VEHICLE = "secure_vehicle"
    #: PUT rental-status IN_RENTAL (seed 000, "Data protection features").
    SET_IN_RENTAL = "set_in_rental"
    #: PUT rental-status NOT_IN_RENTAL (seed 000, "End rental").
    SET_NOT_IN_RENTAL = "set_not_in_rental"
    #: POST request-vehicle-state, once, when states stop arriving (seed 000).
    REQUEST_VEHICLE_STATE = "request_vehicle_state"
    #: Tell the booking backend about the transition (added to every commit by the
    #: engine when a notifier is configured; seed 002: customer service may end a rental
    #: at any time, and this is how the backend learns it).
    NOTIFY_BOOKING = "notify_booking"


@dataclass(frozen=True)
class Facts:
    """What the guards may know about the vehicle, gathered before deciding.

    Facts are recorded with each transition, which is what makes replay deterministic.
    ``None`` means "cannot be read" (no capability, or no value yet).
    """

    #: The vehicle has the commands needed to unlock it for a rental.
    can_unlock: bool = True
    #: The vehicle has a physical key (VEHICLE_KEY capability); False = keyless.
    has_key: bool = False
    #: Ignition state: True on, False off, None unknown.
    ignition_on: bool | None = None
    #: Names of the end-rental criteria that are not met (empty = all met or uncheckable).
    unmet: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "can_unlock": self.can_unlock,
            "has_key": self.has_key,
            "ignition_on": self.ignition_on,
            "unmet": list(self.unmet),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Facts:
        return cls(
            can_unlock=bool(data.get("can_unlock", True)),
            has_key=bool(data.get("has_key", False)),
            ignition_on=data.get("ignition_on"),
            unmet=tuple(data.get("unmet", ())),
        )


@dataclass(frozen=True)
class ArmedTimer:
    """A timer armed on a rental. ``token`` fences it: a fired timer whose token is not
    the one the rental holds was cancelled or superseded and must be ignored."""

    due_at: datetime
    token: str


@dataclass(frozen=True)
class Rental:
    """The persisted record of one rental."""

    rental_id: str
    vehicle_id: str
    customer_id: str
    state: RentalState = RentalState.IDLE
    version: int = 0
    #: Customer status before the rental started: where a failed start returns to.
    customer_status_before: CustomerStatus = CustomerStatus.IDLE
    billable: bool = False
    end_reason: EndReason | None = None
    #: Why the rental last went back (e.g. "start_timeout", "end_failed: door opened").
    last_reason: str | None = None
    timers: Mapping[Timer, ArmedTimer] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: Free-form fields the flow keeps (pending command, unmet criteria, reachability).
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def customer_status(self) -> CustomerStatus:
        """Seed 002: IN_RENTAL from STARTING on; back to the previous one if it fails."""
        if self.state in ACTIVE_STATES:
            return CustomerStatus.IN_RENTAL
        if self.state is RentalState.ENDED:
            return CustomerStatus.IDLE
        return self.customer_status_before

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready stored form."""
        return {
            "record_version": RECORD_VERSION,
            "rental_id": self.rental_id,
            "vehicle_id": self.vehicle_id,
            "customer_id": self.customer_id,
            "state": self.state.value,
            "version": self.version,
            "customer_status_before": self.customer_status_before.value,
            "billable": self.billable,
            "end_reason": self.end_reason.value if self.end_reason else None,
            "last_reason": self.last_reason,
            "timers": {
                t.value: {"due_at": format_time(a.due_at), "token": a.token}
                for t, a in self.timers.items()
            },
            "created_at": format_time(self.created_at) if self.created_at else None,
            "updated_at": format_time(self.updated_at) if self.updated_at else None,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rental:
        """Inverse of ``to_dict``. Raises ``ValueError``/``KeyError`` on a bad record."""
        if data.get("record_version") != RECORD_VERSION:
            raise ValueError(f"unsupported record_version {data.get('record_version')!r}")
        end_reason = data.get("end_reason")
        return cls(
            rental_id=str(data["rental_id"]),
            vehicle_id=str(data["vehicle_id"]),
            customer_id=str(data["customer_id"]),
            state=RentalState(data["state"]),
            version=int(data["version"]),
            customer_status_before=CustomerStatus(data["customer_status_before"]),
            billable=bool(data["billable"]),
            end_reason=EndReason(end_reason) if end_reason else None,
            last_reason=data.get("last_reason"),
            timers={
                Timer(name): ArmedTimer(parse_time(t["due_at"]), str(t["token"]))
                for name, t in dict(data.get("timers", {})).items()
            },
            created_at=parse_time(data["created_at"]) if data.get("created_at") else None,
            updated_at=parse_time(data["updated_at"]) if data.get("updated_at") else None,
            extra=dict(data.get("extra", {})),
        )


@dataclass(frozen=True)
class TimerChange:
    """A timer armed by a decision, with its absolute deadline."""

    timer: Timer
    due_at: datetime


@dataclass(frozen=True)
class Decision:
    """What the machine decided for one trigger: pure data, nothing executed yet."""

    rental_id: str
    trigger: str
    source: RentalState
    dest: RentalState
    effects: tuple[Effect, ...] = ()
    armed: tuple[TimerChange, ...] = ()
    cancelled: tuple[Timer, ...] = ()
    #: Field updates the row makes on the rental (end_reason, billable, last_reason).
    updates: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, rental: Rental, now: datetime) -> Rental:
        """The rental after this decision: new state, version + 1, timers fenced."""
        version = rental.version + 1
        timers = {t: a for t, a in rental.timers.items() if t not in self.cancelled}
        for change in self.armed:
            timers[change.timer] = ArmedTimer(change.due_at, f"{rental.rental_id}:{version}")
        return replace(
            rental,
            state=self.dest,
            version=version,
            timers=timers,
            updated_at=now,
            **self.updates,
        )


def utc(dt: datetime) -> datetime:
    """Return ``dt`` as an aware UTC datetime; naive values are taken as UTC."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


@lru_cache(maxsize=4096)
def format_time(dt: datetime) -> str:
    """RFC 3339 UTC with ``Z`` and milliseconds, as rental-log.md asks.

    Cached like ``parse_time``: the store and the engine write the same instants again
    (equal instants give equal text, whatever their time zone, so sharing an entry is
    safe). The event path formats "now" with ``format_now``, which never repeats."""
    return format_now(dt)


def format_now(dt: datetime) -> str:
    """``format_time`` without the cache, for an instant that is new every time (a
    clock's now): a cache miss costs more than the formatting, and evicts what repeats."""
    if dt.tzinfo is not timezone.utc:
        dt = utc(dt)
    return dt.isoformat(timespec="milliseconds")[:-6] + "Z"


#: The form ``format_time`` writes: what OneAPI sends and the log holds.
_CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def normalize_time(text: str) -> str:
    """``format_time(parse_time(text))``: a timestamp already in that form is checked
    (``parse_time``) and returned as it is, with no formatting."""
    when = parse_time(text)
    if _CANONICAL.fullmatch(text):
        return text
    return format_time(when)


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (``Z`` or offset) into an aware UTC datetime."""
    if not isinstance(text, str):
        raise ValueError(f"timestamp must be a string, got {type(text).__name__}")
    return _parse_time(text)


@lru_cache(maxsize=4096)
def _parse_time(text: str) -> datetime:
    """Cached: an event's timestamps are parsed by the codec, then again where the store
    orders properties and checks log entries (five times an event); datetimes are
    immutable, and errors are not cached. The canonical form skips the rewriting."""
    if _CANONICAL.fullmatch(text):  # fromisoformat checks the ranges (month 13, ...)
        # "+00:00" gives timezone.utc itself (3.10 has no "Z"); .replace(tzinfo=) would
        # cost four times the parse
        return datetime.fromisoformat(text[:-1] + "+00:00")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return parsed.astimezone(timezone.utc)
