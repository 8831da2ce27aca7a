"""rental_fsm: run every vehicle rental as an explicit, persisted finite-state machine."""

from __future__ import annotations

__version__ = "0.1.0"

from .clock import Clock, ManualClock, SystemClock
from .config import Secret, Settings
from .errors import (
    ConfigurationError,
    CorruptRecord,
    CustomerBusy,
    DefinitionError,
    GuardRejected,
    InvalidInput,
    InvalidTransition,
    OneAPIError,
    OutcomeUnknown,
    RentalExists,
    RentalFSMError,
    RentalNotFound,
    StoreError,
    StoreUnavailable,
    TransitionError,
    UnknownTrigger,
    VehicleBusy,
    VersionConflict,
)
from .machine import MACHINE, TRANSITIONS, RentalMachine, Row, decide
from .model import (
    ArmedTimer,
    CustomerStatus,
    Decision,
    Effect,
    EndReason,
    Facts,
    Rental,
    RentalState,
    Timer,
)

__all__ = [
    "ArmedTimer",
    "Clock",
    "ConfigurationError",
    "CorruptRecord",
    "CustomerBusy",
    "CustomerStatus",
    "Decision",
    "DefinitionError",
    "Effect",
    "EndReason",
    "Facts",
    "GuardRejected",
    "InvalidInput",
    "InvalidTransition",
    "MACHINE",
    "ManualClock",
    "OneAPIError",
    "OutcomeUnknown",
    "Rental",
    "RentalExists",
    "RentalFSMError",
    "RentalMachine",
    "RentalNotFound",
    "RentalState",
    "Row",
    "Secret",
    "Settings",
    "StoreError",
    "StoreUnavailable",
    "SystemClock",
    "TRANSITIONS",
    "Timer",
    "TransitionError",
    "UnknownTrigger",
    "VehicleBusy",
    "VersionConflict",
    "__version__",
    "decide",
]
