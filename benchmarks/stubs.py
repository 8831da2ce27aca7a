"""A vehicle API that answers every command at once and keeps nothing (no growth)."""

from __future__ import annotations

from rental_fsm.oneapi.resources import Result
from rental_fsm.oneapi.vehicle_state import Command, VehicleState


class NullAPI:
    """Stands in for OneAPIClient where commands are not what is measured."""

    def __init__(self) -> None:
        self.calls = 0

    def command(self, vehicle_id: str, command: Command) -> Result[VehicleState]:
        self.calls += 1
        return Result(VehicleState({}), "flow", 200)

    def set_rental_status(self, vehicle_id: str, value: str, *,
                          request_new_vehicle_state: bool = True) -> Result[VehicleState | None]:
        self.calls += 1
        return Result(VehicleState({}), "flow", 200)
