"""Typed views of a OneAPI vehicle state, the capabilities and the command names.

A vehicle state is a JSON object whose every key is a property and every value a
``{timestamp, value}`` pair, each with its own timestamp (oneapi.md §5.1). The same shape
comes back from commands, the latest-state endpoint and ``VehicleStateRecorded`` events,
so one parser serves all three. Enum-like values are *open*: the known constants below
are what the docs show, but any other string is kept as it is, because the API may add
values without notice (oneapi.md §8.6). Parsing errors raise ``ValueError`` with a clear
message; the client turns them into ``InvalidResponse``, an event reader into
``MalformedEvent``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from ..model import format_time, parse_time


class Command(str, Enum):
    """The vehicle commands; the value is the kebab-case path suffix (oneapi.md §6.1)."""

    UNLOCK_AND_ENABLE_DRIVING = "unlock-and-enable-driving"
    UNLOCK_CENTRAL_LOCK = "unlock-central-lock"
    ENABLE_DRIVING = "enable-driving"
    LOCK_AND_DISABLE_DRIVING = "lock-and-disable-driving"
    LOCK_CENTRAL_LOCK = "lock-central-lock"
    DISABLE_DRIVING = "disable-driving"
    REQUEST_VEHICLE_STATE = "request-vehicle-state"

    @property
    def capability(self) -> str:
        """The command capability name, e.g. ``UNLOCK_AND_ENABLE_DRIVING``."""
        return self.value.upper().replace("-", "_")

    @classmethod
    def from_capability(cls, name: str) -> Command:
        return cls(name.lower().replace("_", "-"))


# Open enums: known constants, any other string is accepted and kept (oneapi.md, table of
# working assumptions). Each is one line to change when the real values are known.
class CentralLock:
    LOCKED = "LOCKED"
    UNLOCKED = "UNLOCKED"


class OnOff:
    """``ignition`` and ``headlights``."""

    ON = "ON"
    OFF = "OFF"


class OpenClosed:
    """``doors_status`` and ``windows_status``."""

    OPEN = "OPEN"
    CLOSED = "CLOSED"


class Presence:
    """``vehicle_key`` and ``cloudboxx_cardholder_cards``."""

    PRESENT = "PRESENT"
    NOT_PRESENT = "NOT_PRESENT"


#: Older and current names of the fuel / charge level (oneapi.md §5.1): accept both.
FUEL_LEVEL_NAMES = ("state_of_charge_or_fuel_level_in_percent", "fuel_level_in_percent")
_ENUM_PROPERTIES = frozenset(
    {
        "central_lock",
        "ignition",
        "headlights",
        "doors_status",
        "windows_status",
        "vehicle_key",
        "cloudboxx_cardholder_cards",
    }
)
_BOOL_PROPERTIES = frozenset({"driving_enabled", "parking_brake_engaged"})
_NUMBER_PROPERTIES = frozenset(
    {*FUEL_LEVEL_NAMES, "mileage_in_kilometers", "remaining_range_in_kilometers"}
)


@dataclass(frozen=True)
class Position:
    lat: float
    lon: float


@dataclass(frozen=True)
class Property:
    """One property reading: the value and when the telematics unit captured it."""

    value: Any
    timestamp: datetime


def _check_value(name: str, value: Any) -> Any:
    if name in _ENUM_PROPERTIES and not isinstance(value, str):
        raise ValueError(f"{name}: expected a string, got {type(value).__name__}")
    if name in _BOOL_PROPERTIES and not isinstance(value, bool):
        raise ValueError(f"{name}: expected a boolean, got {type(value).__name__}")
    if name in _NUMBER_PROPERTIES and (
        isinstance(value, bool) or not isinstance(value, (int, float))
    ):
        raise ValueError(f"{name}: expected a number, got {type(value).__name__}")
    if name == "position":
        if not isinstance(value, Mapping):
            raise ValueError("position: expected an object with lat and lon")
        try:
            return Position(lat=float(value["lat"]), lon=float(value["lon"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"position: needs numeric lat and lon ({exc})") from exc
    return value


class VehicleState(Mapping[str, Property]):
    """An immutable mapping of property name (lower snake case) to :class:`Property`."""

    __slots__ = ("_props",)

    def __init__(self, props: Mapping[str, Property] | None = None) -> None:
        self._props: dict[str, Property] = dict(props or {})

    @classmethod
    def from_json(cls, data: object) -> VehicleState:
        """Parse the wire shape; raises ``ValueError`` naming the bad property."""
        if not isinstance(data, Mapping):
            raise ValueError(f"vehicle state: expected an object, got {type(data).__name__}")
        props: dict[str, Property] = {}
        for name, item in data.items():
            if not isinstance(item, Mapping) or "value" not in item or "timestamp" not in item:
                raise ValueError(f"{name}: expected {{timestamp, value}}")
            try:
                timestamp = parse_time(item["timestamp"])
            except ValueError as exc:
                raise ValueError(f"{name}: bad timestamp {item['timestamp']!r}: {exc}") from exc
            props[str(name)] = Property(_check_value(str(name), item["value"]), timestamp)
        return cls(props)

    def to_json(self) -> dict[str, Any]:
        """The wire shape again (positions as ``{lat, lon}``)."""
        out: dict[str, Any] = {}
        for name, prop in self._props.items():
            value = prop.value
            if isinstance(value, Position):
                value = {"lat": value.lat, "lon": value.lon}
            out[name] = {"timestamp": format_time(prop.timestamp), "value": value}
        return out

    def __getitem__(self, name: str) -> Property:
        return self._props[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._props)

    def __len__(self) -> int:
        return len(self._props)

    def __repr__(self) -> str:
        return f"VehicleState({ {k: p.value for k, p in self._props.items()} !r})"

    def value(self, name: str) -> Any:
        """The property's value, or None when the state does not carry it."""
        prop = self._props.get(name)
        return None if prop is None else prop.value

    # Typed accessors; from_json already checked the types, isinstance only narrows.
    def _text(self, name: str) -> str | None:
        value = self.value(name)
        return value if isinstance(value, str) else None

    def _flag(self, name: str) -> bool | None:
        value = self.value(name)
        return value if isinstance(value, bool) else None

    @property
    def central_lock(self) -> str | None:
        return self._text("central_lock")

    @property
    def ignition(self) -> str | None:
        return self._text("ignition")

    @property
    def doors_status(self) -> str | None:
        return self._text("doors_status")

    @property
    def windows_status(self) -> str | None:
        return self._text("windows_status")

    @property
    def headlights(self) -> str | None:
        return self._text("headlights")

    @property
    def vehicle_key(self) -> str | None:
        return self._text("vehicle_key")

    @property
    def cloudboxx_cardholder_cards(self) -> str | None:
        return self._text("cloudboxx_cardholder_cards")

    @property
    def driving_enabled(self) -> bool | None:
        return self._flag("driving_enabled")

    @property
    def parking_brake_engaged(self) -> bool | None:
        return self._flag("parking_brake_engaged")

    @property
    def position(self) -> Position | None:
        value = self.value("position")
        return value if isinstance(value, Position) else None

    @property
    def fuel_level(self) -> Property | None:
        """The fuel / charge level under either name; the newer reading wins."""
        found = [self._props[n] for n in FUEL_LEVEL_NAMES if n in self._props]
        return max(found, key=lambda p: p.timestamp) if found else None


_FUEL_LEVEL_CAPABILITIES = frozenset(n.upper() for n in FUEL_LEVEL_NAMES)


#: ``Capabilities.from_json``'s parsed capability sets, by content. Bounded: a fleet has a
#: handful of vehicle models; a flood of distinct ones only restarts the cache.
_KNOWN_CAPABILITIES: dict[tuple[tuple[str, ...], tuple[str, ...]], Capabilities] = {}
_KNOWN_CAPABILITIES_MAX = 1024


def _upper(name: str) -> str:
    return name.upper().replace("-", "_")


@dataclass(frozen=True)
class Capabilities:
    """What a vehicle can do (command capabilities) and report (state capabilities)."""

    commands: frozenset[str]
    vehicle_state: frozenset[str]

    @classmethod
    def from_json(cls, data: object) -> Capabilities:
        if not isinstance(data, (dict, Mapping)):
            raise ValueError("capabilities: expected an object")
        lists = (data.get("commands", []), data.get("vehicle_state", []))
        # The event path parses a vehicle's stored capabilities for every event, and a
        # fleet has few distinct ones: remember them by content (lists only, so a string
        # never poses as the tuple of its letters; only validated content is stored).
        key = None
        if type(lists[0]) is list and type(lists[1]) is list:
            key = (tuple(lists[0]), tuple(lists[1]))
            try:
                known = _KNOWN_CAPABILITIES.get(key)
            except TypeError:  # an unhashable item: not a string, refused below
                key = known = None
            if known is not None:
                return known
        for items in lists:
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ValueError("capabilities: commands and vehicle_state must be lists")
        parsed = cls(frozenset(lists[0]), frozenset(lists[1]))
        if key is not None:
            if len(_KNOWN_CAPABILITIES) >= _KNOWN_CAPABILITIES_MAX:
                _KNOWN_CAPABILITIES.clear()
            _KNOWN_CAPABILITIES[key] = parsed
        return parsed

    def supports(self, command: Command | str) -> bool:
        """``supports(Command.ENABLE_DRIVING)`` or ``supports("ENABLE_DRIVING")``."""
        name = command.capability if isinstance(command, Command) else _upper(command)
        return name in self.commands

    def can_read(self, prop: str) -> bool:
        """``can_read("DOORS_STATUS")`` or ``can_read("doors_status")``.

        Either fuel-level name answers for both, as the API renamed it (oneapi.md §5.1).
        """
        name = _upper(prop)
        if name in _FUEL_LEVEL_CAPABILITIES:
            return not _FUEL_LEVEL_CAPABILITIES.isdisjoint(self.vehicle_state)
        return name in self.vehicle_state
