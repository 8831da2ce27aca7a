"""End-rental criteria (seed 000 "End rental conditions"), evaluated purely.

Seed 000 lists, roughly by priority: ignition off (IGNITION); parked inside the business
area (POSITION); key and cardholder cards present (VEHICLE_KEY, CLOUDBOXX_CARDHOLDER_CARDS,
"not applicable for keyless go vehicles"); doors and windows closed (DOORS_STATUS,
WINDOWS_STATUS); parking brake engaged (PARKING_BRAKE_ENGAGED); headlights off
(HEADLIGHTS). "The conditions you can check depend on the capabilities of the vehicle":
each criterion is checked only where the vehicle's state capabilities include it.

Every criterion gets one of four statuses: met, unmet, not checkable (no capability, or no
business area configured), unknown (value missing, or older than ``max_age``). Unmet ones
block the end; unknown ones block it only when the policy says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from .model import parse_time


class Status(str, Enum):
    MET = "met"
    UNMET = "unmet"
    NOT_CHECKABLE = "not_checkable"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Circle:
    """A radius in metres around a home location."""

    lat: float
    lon: float
    radius_m: float


@dataclass(frozen=True)
class BusinessArea:
    """Where rentals may end: any of the polygons (rings of (lat, lon)) or circles."""

    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()
    circles: tuple[Circle, ...] = ()

    def contains(self, lat: float, lon: float) -> bool:
        return any(_in_polygon(lat, lon, ring) for ring in self.polygons) or any(
            _distance_m(lat, lon, c.lat, c.lon) <= c.radius_m for c in self.circles
        )


@dataclass(frozen=True)
class EndPolicy:
    """How strictly to check; configurable per fleet, areas per vehicle."""

    #: A value older than this (against the decision time) is unknown.
    max_age: timedelta = timedelta(minutes=10)
    #: Treat unknown like unmet (strict) or only report it (default).
    unknown_blocks: bool = False
    #: The fleet's business area; None = POSITION not checkable.
    area: BusinessArea | None = None
    #: Per-vehicle areas that override the fleet's.
    vehicle_areas: Mapping[str, BusinessArea] = field(default_factory=dict)

    def area_for(self, vehicle_id: str) -> BusinessArea | None:
        return self.vehicle_areas.get(vehicle_id, self.area)


@dataclass(frozen=True)
class CriterionResult:
    criterion: str
    status: Status
    actual: Any = None
    expected: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"criterion": self.criterion, "status": self.status.value,
                "actual": self.actual, "expected": self.expected}


@dataclass(frozen=True)
class CriteriaReport:
    results: tuple[CriterionResult, ...]
    unknown_blocks: bool = False

    @property
    def blocking(self) -> tuple[CriterionResult, ...]:
        bad = {Status.UNMET} | ({Status.UNKNOWN} if self.unknown_blocks else set())
        return tuple(r for r in self.results if r.status in bad)

    @property
    def ok(self) -> bool:
        return not self.blocking

    def unmet(self) -> list[dict[str, Any]]:
        """The rental-log form: ``[{"criterion", "actual", "expected"}, ...]``."""
        return [{"criterion": r.criterion, "actual": r.actual, "expected": r.expected}
                for r in self.blocking]


_Check = Callable[[Any], bool]


@dataclass(frozen=True)
class _Criterion:
    capability: str
    prop: str
    expected: Any
    check: _Check


def _equals(expected: Any) -> _Check:
    return lambda value: value == expected


#: Seed 000's list in its order; values per ../shared/spec/oneapi.md (assumptions table).
CRITERIA: tuple[_Criterion, ...] = (
    _Criterion("IGNITION", "ignition", "OFF", _equals("OFF")),
    _Criterion("VEHICLE_KEY", "vehicle_key", "PRESENT", _equals("PRESENT")),
    _Criterion("CLOUDBOXX_CARDHOLDER_CARDS", "cloudboxx_cardholder_cards", "PRESENT",
               _equals("PRESENT")),
    _Criterion("DOORS_STATUS", "doors_status", "CLOSED", _equals("CLOSED")),
    _Criterion("WINDOWS_STATUS", "windows_status", "CLOSED", _equals("CLOSED")),
    _Criterion("PARKING_BRAKE_ENGAGED", "parking_brake_engaged", True, _equals(True)),
    _Criterion("HEADLIGHTS", "headlights", "OFF", _equals("OFF")),
)
POSITION = "POSITION"


def evaluate(
    vehicle_id: str,
    state: Mapping[str, Mapping[str, Any]],
    state_capabilities: Collection[str],
    *,
    now: datetime,
    policy: EndPolicy | None = None,
) -> CriteriaReport:
    """Evaluate every end-rental criterion on the freshest known vehicle state.

    Args:
        vehicle_id: selects a per-vehicle business area.
        state: ``{property: {"timestamp", "value"}}`` as OneAPI sends it.
        state_capabilities: the vehicle's ``capabilities.vehicle_state`` names.
        now: the decision time (for ``max_age``).
    """
    policy = policy or EndPolicy()
    caps = frozenset(state_capabilities)
    results: list[CriterionResult] = []
    for criterion in CRITERIA[:1]:
        results.append(_simple(criterion, state, caps, now, policy))
    results.append(_position(vehicle_id, state, caps, now, policy))
    for criterion in CRITERIA[1:]:
        results.append(_simple(criterion, state, caps, now, policy))
    return CriteriaReport(tuple(results), policy.unknown_blocks)


def _fresh_value(
    prop: str, state: Mapping[str, Mapping[str, Any]], now: datetime, policy: EndPolicy
) -> tuple[bool, Any]:
    entry = state.get(prop)
    if not isinstance(entry, Mapping) or "value" not in entry:
        return False, None
    try:
        stamp = parse_time(entry.get("timestamp"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False, entry.get("value")
    return now - stamp <= policy.max_age, entry["value"]


def _simple(
    criterion: _Criterion, state: Mapping[str, Mapping[str, Any]], caps: frozenset[str],
    now: datetime, policy: EndPolicy,
) -> CriterionResult:
    if criterion.capability not in caps:
        return CriterionResult(criterion.capability, Status.NOT_CHECKABLE, None, criterion.expected)
    fresh, value = _fresh_value(criterion.prop, state, now, policy)
    if not fresh:
        return CriterionResult(criterion.capability, Status.UNKNOWN, value, criterion.expected)
    status = Status.MET if criterion.check(value) else Status.UNMET
    return CriterionResult(criterion.capability, status, value, criterion.expected)


def _position(
    vehicle_id: str, state: Mapping[str, Mapping[str, Any]], caps: frozenset[str],
    now: datetime, policy: EndPolicy,
) -> CriterionResult:
    area = policy.area_for(vehicle_id)
    expected = "inside business area"
    if POSITION not in caps or area is None:
        return CriterionResult(POSITION, Status.NOT_CHECKABLE, None, expected)
    fresh, value = _fresh_value("position", state, now, policy)
    try:
        lat, lon = float(value["lat"]), float(value["lon"])
    except (TypeError, KeyError, ValueError):
        return CriterionResult(POSITION, Status.UNKNOWN, value, expected)
    if not fresh:
        return CriterionResult(POSITION, Status.UNKNOWN, value, expected)
    status = Status.MET if area.contains(lat, lon) else Status.UNMET
    return CriterionResult(POSITION, status, {"lat": lat, "lon": lon}, expected)


def _in_polygon(lat: float, lon: float, ring: Sequence[tuple[float, float]]) -> bool:
    """Ray casting on (lat, lon) treated as plane coordinates: fine at city scale."""
    inside = False
    count = len(ring)
    for i in range(count):
        lat1, lon1 = ring[i]
        lat2, lon2 = ring[(i + 1) % count]
        if (lon1 > lon) != (lon2 > lon):
            crossing = lat1 + (lon - lon1) * (lat2 - lat1) / (lon2 - lon1)
            if lat < crossing:
                inside = not inside
    return inside


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) in metres."""
    radius = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * radius * math.asin(math.sqrt(a))
