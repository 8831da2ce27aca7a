"""Simulated vehicle models: each one a set of capabilities, as OneAPI derives them.

The four models cover the rental flows that differ (seed 000): a keyless CloudBoxx car
with the combined commands, a car with a physical key and card holder, a keyless car
that only has the separate commands, and a moped without central lock or doors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..oneapi.vehicle_state import Command

_END_RENTAL_STATE = (
    "IGNITION",
    "POSITION",
    "DOORS_STATUS",
    "WINDOWS_STATUS",
    "PARKING_BRAKE_ENGAGED",
    "HEADLIGHTS",
    "CENTRAL_LOCK",
    "DRIVING_ENABLED",
    "STATE_OF_CHARGE_OR_FUEL_LEVEL_IN_PERCENT",
    "MILEAGE_IN_KILOMETERS",
)
_ALL_CAR_COMMANDS = tuple(c.capability for c in Command)
_SEPARATE_COMMANDS = (
    Command.UNLOCK_CENTRAL_LOCK.capability,
    Command.LOCK_CENTRAL_LOCK.capability,
    Command.ENABLE_DRIVING.capability,
    Command.DISABLE_DRIVING.capability,
    Command.REQUEST_VEHICLE_STATE.capability,
)


@dataclass(frozen=True)
class VehicleModel:
    id: str  # ULID-shaped, like the real vehicle_model_id
    name: str
    brand: str  # telematics brand
    vehicle_type: str
    commands: tuple[str, ...]
    vehicle_state: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The ``available-vehicle-models`` item (oneapi.md §7.2)."""
        return {
            "id": self.id,
            "vehicle_brand": "SIMULATED",
            "vehicle_model": self.name,
            "vehicle_type": self.vehicle_type,
            "regions": ["Europe"],
            "version": 1,
            "documents": [],
            "capabilities": self.capabilities(),
        }

    def capabilities(self) -> dict[str, list[str]]:
        return {"commands": list(self.commands), "vehicle_state": list(self.vehicle_state)}


#: (a) keyless CloudBoxx car, combined commands, every end-rental state capability.
CLOUDBOXX_KEYLESS = VehicleModel(
    "01SIMCAR0KEY1ESS0000000001", "CloudBoxx keyless car", "CLOUDBOXX", "CAR",
    _ALL_CAR_COMMANDS, _END_RENTAL_STATE,
)
#: (b) car with a physical key in a holder and a card holder.
CLOUDBOXX_WITH_KEY = VehicleModel(
    "01SIMCAR0WITHKEY0000000002", "CloudBoxx car with key", "CLOUDBOXX", "CAR",
    _ALL_CAR_COMMANDS, (*_END_RENTAL_STATE, "VEHICLE_KEY", "CLOUDBOXX_CARDHOLDER_CARDS"),
)
#: (c) keyless car whose unit has no combined commands.
KEYLESS_SEPARATE = VehicleModel(
    "01SIMCAR0SEPARATE000000003", "Keyless car, separate commands", "OEMCLOUD", "CAR",
    _SEPARATE_COMMANDS, _END_RENTAL_STATE,
)
#: (d) moped: no central lock, no doors; driving on/off only.
MOPED = VehicleModel(
    "01SIMM0PED0000000000000004", "Moped", "NIU", "MOPED",
    (Command.ENABLE_DRIVING.capability, Command.DISABLE_DRIVING.capability),
    ("IGNITION", "POSITION", "DRIVING_ENABLED", "STATE_OF_CHARGE_OR_FUEL_LEVEL_IN_PERCENT"),
)

MODELS: dict[str, VehicleModel] = {
    m.id: m for m in (CLOUDBOXX_KEYLESS, CLOUDBOXX_WITH_KEY, KEYLESS_SEPARATE, MOPED)
}
#: Short names for the CLI, the control endpoint and tests.
MODEL_NAMES: dict[str, VehicleModel] = {
    "keyless": CLOUDBOXX_KEYLESS,
    "with_key": CLOUDBOXX_WITH_KEY,
    "separate": KEYLESS_SEPARATE,
    "moped": MOPED,
}
