"""A OneAPI simulator: HTTP endpoints, AMQP events and fault knobs for tests and demos.

Import :class:`Simulator` and drive it from Python, or run ``rental-fsm simulator``.
"""

from __future__ import annotations

from .events import EventRouting
from .faults import Fault, VehicleFaults
from .fleet import HOME, OUTSIDE
from .models import CLOUDBOXX_KEYLESS, CLOUDBOXX_WITH_KEY, KEYLESS_SEPARATE, MODELS, MOPED
from .sim import Simulator

__all__ = [
    "CLOUDBOXX_KEYLESS",
    "CLOUDBOXX_WITH_KEY",
    "HOME",
    "KEYLESS_SEPARATE",
    "MODELS",
    "MOPED",
    "OUTSIDE",
    "EventRouting",
    "Fault",
    "Simulator",
    "VehicleFaults",
]
