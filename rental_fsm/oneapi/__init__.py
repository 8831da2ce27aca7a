"""The INVERS OneAPI: a REST client, the typed vehicle state and the problem table.

Only :mod:`rental_fsm.oneapi.client` (with :mod:`.auth` behind it) talks HTTP; the rest of
the package is pure data, so event readers can reuse :class:`VehicleState` without
pulling in requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import FLOW_ID_HEADER, OneAPIClient
from .problems import PROBLEM_TYPES
from .resources import IN_RENTAL, NOT_IN_RENTAL, PAGINATION, Result, SetupStatus, Vehicle
from .vehicle_state import (
    Capabilities,
    CentralLock,
    Command,
    OnOff,
    OpenClosed,
    Position,
    Presence,
    Property,
    VehicleState,
)

__all__ = [
    "FLOW_ID_HEADER",
    "IN_RENTAL",
    "NOT_IN_RENTAL",
    "PAGINATION",
    "PROBLEM_TYPES",
    "Capabilities",
    "CentralLock",
    "Command",
    "OnOff",
    "OneAPIClient",
    "OpenClosed",
    "Position",
    "Presence",
    "Property",
    "Result",
    "SetupStatus",
    "Vehicle",
    "VehicleState",
]


def __getattr__(name: str) -> Any:
    """Import the HTTP client (and requests) only when it is asked for."""
    if name in ("OneAPIClient", "FLOW_ID_HEADER"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
