"""Result wrappers and the vehicle resource, parsed and validated from the wire.

Every client call returns a :class:`Result` so the response's flow id travels with the
value: it ties a command to the ``VehicleStateRecorded`` event it caused (oneapi.md
§3.1). The vehicle object is only partly typed (id, capabilities, life and rental status);
everything else stays in ``raw`` because its fields are not settled (oneapi.md §4.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .vehicle_state import Capabilities

T = TypeVar("T")


@dataclass(frozen=True)
class Pagination:
    """Cursor field names for ``GET /vehicles``: unknown (oneapi.md §3.2, §13 item 12)."""

    request_param: str
    response_field: str


#: THE one place to change when the real cursor names are known.
PAGINATION = Pagination(request_param="cursor", response_field="next_cursor")

#: Rental status values (oneapi.md §4.2).
IN_RENTAL = "IN_RENTAL"
NOT_IN_RENTAL = "NOT_IN_RENTAL"


@dataclass(frozen=True)
class Result(Generic[T]):
    """A parsed response body plus the ``X-INVERS-Flow-ID`` it came with."""

    value: T
    flow_id: str | None
    status: int


@dataclass(frozen=True)
class Vehicle:
    id: str
    capabilities: Capabilities
    life_status: str | None
    rental_status: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: object) -> Vehicle:
        """Parse a vehicle object; raises ``ValueError`` naming what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError("vehicle: expected an object")
        vehicle_id = data.get("id")
        if not isinstance(vehicle_id, str) or not vehicle_id:
            raise ValueError("vehicle: id missing")
        caps = Capabilities.from_json(data.get("capabilities", {}))
        return cls(
            id=vehicle_id,
            capabilities=caps,
            life_status=_status_value(data, "life_status"),
            rental_status=_status_value(data, "rental_status"),
            raw=data,
        )


@dataclass(frozen=True)
class SetupStatus:
    vehicle_model_id: str
    status: str

    @classmethod
    def from_json(cls, data: object) -> SetupStatus:
        if not isinstance(data, Mapping):
            raise ValueError("setup: expected an object")
        model, status = data.get("vehicle_model_id"), data.get("status")
        if not isinstance(model, str) or not isinstance(status, str):
            raise ValueError("setup: vehicle_model_id and status must be strings")
        return cls(model, status)


def _status_value(data: Mapping[str, Any], key: str) -> str | None:
    item = data.get(key)
    if item is None:
        return None
    if not isinstance(item, Mapping) or not isinstance(item.get("value"), str):
        raise ValueError(f"vehicle: {key} must be {{value: string}}")
    return str(item["value"])


def items_of(data: object) -> list[Mapping[str, Any]]:
    """The ``items`` of a list response, each an object."""
    if not isinstance(data, Mapping) or not isinstance(data.get("items"), list):
        raise ValueError("expected {items: [...]}")
    items = data["items"]
    if not all(isinstance(item, Mapping) for item in items):
        raise ValueError("every item must be an object")
    return list(items)
