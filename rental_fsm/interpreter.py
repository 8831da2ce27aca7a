"""What a vehicle's new state means for its rental: the trigger, if any. Pure.

Seed 000 "Command responses": do not rely on command responses alone, "validate the
processing of a command by waiting for relevant events" (CentralLockChanged,
VehicleStateRecorded). So confirmations come from state: the properties an event or a
command response just brought (``touched``), read together with the merged latest state
of the vehicle and judged only on what its capabilities can show.

A property confirms a command only if it was captured after the rental began to wait
(``rental.extra["waiting_since"]``, minus a small allowance for unit clocks), so an old
UNLOCKED can never confirm a new start. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from .model import Facts, Rental, RentalState, Timer, parse_time
from .oneapi.vehicle_state import Capabilities

S = RentalState
State = Mapping[str, Mapping[str, Any]]

#: How far a telematics unit's clock may lag ours and still confirm a command.
CLOCK_ALLOWANCE = timedelta(seconds=5)

UNLOCK_COMMANDS = frozenset(
    {"UNLOCK_AND_ENABLE_DRIVING", "UNLOCK_CENTRAL_LOCK", "ENABLE_DRIVING"}
)


#: What a vehicle with no stored capabilities can do and show: nothing.
NO_CAPABILITIES = Capabilities(frozenset(), frozenset())


def capabilities(stored: Mapping[str, Any] | None) -> Capabilities:
    """A vehicle's stored capabilities (``RentalStore.capabilities``), or none at all."""
    return Capabilities.from_json(stored) if stored is not None else NO_CAPABILITIES


def has_key(caps: Capabilities) -> bool:
    """A physical key shows as the VEHICLE_KEY state capability (seed 000)."""
    return caps.can_read("VEHICLE_KEY")


def value(state: State, prop: str) -> Any:
    entry = state.get(prop)
    return entry.get("value") if isinstance(entry, Mapping) else None


def vehicle_facts(
    caps: Capabilities, state: State, unmet: Collection[str] = ()
) -> Facts:
    """The facts the guards read, from capabilities and the latest state."""
    ignition = value(state, "ignition") if caps.can_read("IGNITION") else None
    return Facts(
        can_unlock=bool(caps.commands & UNLOCK_COMMANDS),
        has_key=has_key(caps),
        ignition_on=None if ignition is None else ignition == "ON",
        unmet=tuple(unmet),
    )


class Reading(NamedTuple):
    """One vehicle state update as seen by a rental (a NamedTuple: built per event)."""

    #: The properties this update brought that are now the newest known.
    touched: State
    #: The merged latest state of the vehicle after the update.
    state: State
    caps: Capabilities


def _fresh(reading: Reading, props: Collection[str], since: datetime | None) -> bool:
    """Did this update bring at least one of ``props``, captured after ``since``?"""
    for prop in props:
        entry = reading.touched.get(prop)
        if not isinstance(entry, Mapping):
            continue
        if since is None:
            return True
        try:
            if parse_time(entry["timestamp"]) >= since - CLOCK_ALLOWANCE:
                return True
        except (KeyError, TypeError, ValueError):
            continue
    return False


def _readable(reading: Reading, *props: str) -> list[str]:
    return [p for p in props if reading.caps.can_read(p)]


def unlocked(reading: Reading) -> bool:
    """Central lock UNLOCKED and driving enabled, as far as the vehicle can tell."""
    checks = {"central_lock": "UNLOCKED", "driving_enabled": True}
    readable = _readable(reading, *checks)
    return bool(readable) and all(value(reading.state, p) == checks[p] for p in readable)


def secured(reading: Reading) -> bool:
    """Central lock LOCKED and driving disabled, as far as the vehicle can tell."""
    checks = {"central_lock": "LOCKED", "driving_enabled": False}
    readable = _readable(reading, *checks)
    return bool(readable) and all(value(reading.state, p) == checks[p] for p in readable)


def accessible(reading: Reading) -> bool:
    """Open to anyone: the central lock UNLOCKED, or, without one, driving enabled."""
    if reading.caps.can_read("CENTRAL_LOCK"):
        return bool(value(reading.state, "central_lock") == "UNLOCKED")
    return reading.caps.can_read("DRIVING_ENABLED") and bool(
        value(reading.state, "driving_enabled") is True)


def interacted(reading: Reading) -> bool:
    """Seed 002's 'interact within the vehicle': a door opened, ignition on, key taken."""
    signs = {"doors_status": "OPEN", "ignition": "ON", "vehicle_key": "NOT_PRESENT"}
    return any(
        value(reading.touched, prop) == expected for prop, expected in signs.items()
    )


def interpret(
    state: RentalState, reading: Reading, *, waiting_since: datetime | None,
    timers: Collection[Timer] = (), last_reason: str | None = None,
) -> str | None:
    """The trigger this reading causes for a rental in ``state``, or None."""
    lock_props = ("central_lock", "driving_enabled")
    if state in (S.STARTING, S.RESUMING):
        if unlocked(reading) and _fresh(reading, lock_props, waiting_since):
            return "start_confirmed" if state is S.STARTING else "resume_confirmed"
        return None
    if state is S.PAUSING:
        if secured(reading) and _fresh(reading, lock_props, waiting_since):
            return "stopover_confirmed"
        return None
    if state is S.ENDING:
        # Seed 002: "door is opened right after triggering end rental" fails the end.
        if value(reading.touched, "doors_status") == "OPEN" and _fresh(
            reading, ("doors_status",), waiting_since
        ):
            return "end_failed"
        if secured(reading) and _fresh(reading, lock_props, waiting_since):
            return "end_confirmed"
        return None
    if state is S.RUNNING:
        if last_reason == "end_timeout" and secured(reading) and _fresh(
            reading, lock_props, waiting_since
        ):
            return "late_end_confirmed"
        if has_key(reading.caps) and _parked(reading):
            return "vehicle_parked"
        if Timer.AUTO_CANCEL in timers and interacted(reading):
            return "customer_interacted"
        return None
    if state is S.IDLE and waiting_since is not None:
        # Rule 2: the start gave up, but the unlock it sent happened after all.
        if accessible(reading) and _fresh(reading, lock_props, waiting_since):
            return "unlock_after_abort"
        return None
    if state is S.STOPOVER and has_key(reading.caps):
        resumed = value(reading.touched, "central_lock") == "UNLOCKED" or value(
            reading.touched, "ignition") == "ON"
        return "vehicle_resumed" if resumed else None
    return None


def _parked(reading: Reading) -> bool:
    """Seed 000: with a key, a stopover shows as ignition off and the central lock locked."""
    if not (reading.caps.can_read("IGNITION") and reading.caps.can_read("CENTRAL_LOCK")):
        return False
    return (
        value(reading.state, "ignition") == "OFF"
        and value(reading.state, "central_lock") == "LOCKED"
        and _fresh(reading, ("ignition", "central_lock"), None)
    )


def interpret_for(rental: Rental, reading: Reading) -> str | None:
    """``interpret`` with what the rental record knows: its state, when it began to wait,
    its armed timers, and why it last went back."""
    waiting = rental.extra.get("waiting_since")
    return interpret(rental.state, reading,
                     waiting_since=parse_time(waiting) if isinstance(waiting, str) else None,
                     timers=rental.timers, last_reason=rental.last_reason)
