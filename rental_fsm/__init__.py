"""rental_fsm: run every vehicle rental as an explicit, persisted finite-state machine."""

from __future__ import annotations

__version__ = "0.1.0"

from .clock import Clock, ManualClock, SystemClock
from .config import Secret, Settings
from .criteria import BusinessArea, Circle, EndPolicy
from .errors import (
    ConfigurationError,
    CorruptRecord,
    CustomerBusy,
    DefinitionError,
    EndRentalCriteriaNotMet,
    GuardRejected,
    InvalidInput,
    InvalidTransition,
    NotAuthorized,
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
from .orchestrator import Orchestrator
from .status import Pending, RentalStatus

__all__ = [
    "ArmedTimer",
    "BusinessArea",
    "Circle",
    "Clock",
    "ConfigurationError",
    "CorruptRecord",
    "CustomerBusy",
    "CustomerStatus",
    "Decision",
    "DefinitionError",
    "Effect",
    "EndPolicy",
    "EndReason",
    "EndRentalCriteriaNotMet",
    "Facts",
    "GuardRejected",
    "InvalidInput",
    "InvalidTransition",
    "MACHINE",
    "ManualClock",
    "NotAuthorized",
    "OneAPIError",
    "Orchestrator",
    "OutcomeUnknown",
    "Pending",
    "Rental",
    "RentalExists",
    "RentalFSMError",
    "RentalMachine",
    "RentalNotFound",
    "RentalState",
    "RentalStatus",
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
