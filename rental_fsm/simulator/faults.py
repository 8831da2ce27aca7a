"""The simulator's fault knobs, one small explicit field each.

Every misbehaviour the seeds describe is a knob on a vehicle's :class:`VehicleFaults`:
a command that times out but runs later (or never), a central lock that confirms late,
doors reopened right after the lock, lost / duplicated / reordered events, and each
problem response of oneapi.md §3.3. ``next_command`` fires once; ``every_command`` stays
until cleared (e.g. a vehicle in an underground car park). All delays are in seconds and
are multiplied by the simulator's ``time_scale``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Fault(Enum):
    """What the next command (or every command) does instead of succeeding.

    Problem faults carry ``(status, problem type, title)``; the two connectivity faults
    carry ``None`` and are handled by the server (see :class:`VehicleFaults`).
    """

    #: The HTTP call hangs for ``hang_seconds`` (past the client's read timeout), then 504.
    TIMEOUT = None, "hang"
    #: The gateway answers a bare 504 at once (no problem body).
    GATEWAY_TIMEOUT = None, "504"
    VALIDATION_ERROR = (400, "/problems/validation-error", "The request body is invalid.")
    REFERENCED_RESOURCE_NOT_FOUND = (
        400, "/problems/referenced-resource-not-found", "A referenced resource does not exist."
    )
    INVALID_CREDENTIALS = (401, "/problems/invalid-credentials", "The credentials are invalid.")
    MISSING_CREDENTIALS = (401, "/problems/missing-credentials", "Credentials are missing.")
    AUTHORIZATION_SERVER_ERROR = (
        403, "/problems/authorization-server-error", "The token could not be validated."
    )
    FORBIDDEN_RESOURCE = (403, "/problems/forbidden-resource", "The token lacks the scope.")
    MISSING_PERMISSIONS = (
        403, "/problems/missing-permissions", "The client lacks the permission."
    )
    NOT_FOUND = (404, "/problems/resource-not-found", "The resource does not exist.")
    COMMAND_NOT_SUPPORTED = (
        409, "/problems/vehicle/command-not-supported", "The vehicle lacks the capability."
    )
    CONFLICTING_STATE = (
        409, "/problems/vehicle/conflicting-state",
        "The command cannot be executed due to the current state of the vehicle.",
    )
    CONFLICTING_COMMAND = (
        409, "/problems/vehicle/conflicting-command", "Another command is still running."
    )
    CONFLICTING_SETUP_STATUS = (
        409, "/problems/vehicle/conflicting-setup-status", "The vehicle setup is not finished."
    )
    SHARED_WITH_PARTNER = (
        409, "/problems/vehicle/shared-with-partner", "The vehicle is shared with a partner."
    )
    CONFLICTING_RESOURCE = (409, "/problems/conflicting-resource", "The resource conflicts.")
    INCOMPATIBLE_TELEMATICS_UNIT_MODEL = (
        409, "/problems/incompatible-telematics-unit-model", "Not supported by this unit."
    )
    TOO_MANY_REQUESTS = (429, "/problems/too-many-requests", "Too many requests.")
    TELEMATICS_UNIT_ERROR = (
        500, "/problems/telematics-unit/error", "CloudBoxx resource state is incomplete or busy."
    )
    INTERNAL_SERVER_ERROR = (500, "/problems/internal-server-error", "Internal server error.")
    #: A 500 with a plain-text body (no problem details): the outcome is unknown.
    BARE_500 = None, "500"

    @property
    def status(self) -> int | None:
        return self.value[0]  # type: ignore[no-any-return]

    @property
    def problem_type(self) -> str | None:
        return self.value[1] if self.value[0] is not None else None  # type: ignore[no-any-return]

    @property
    def title(self) -> str:
        return self.value[2] if len(self.value) > 2 else self.name  # type: ignore[no-any-return]


@dataclass
class VehicleFaults:
    """Per-vehicle knobs; change them at any time (``sim.faults(vehicle_id)``)."""

    #: Applied to the next command or rental-status call only, then cleared.
    next_command: Fault | None = None
    #: Applied to every command and rental-status call until set back to None.
    every_command: Fault | None = None
    #: TIMEOUT: how long the HTTP call hangs before the 504.
    hang_seconds: float = 2.0
    #: TIMEOUT / GATEWAY_TIMEOUT: the command still runs after this delay; None = never.
    execute_after: float | None = 0.0
    #: Lock commands answer at once, but ``central_lock`` changes only after this delay
    #: (the response omits it, events follow with the command's flow id).
    central_lock_delay: float = 0.0
    #: After the next lock command, a door is opened (and the lock pops) after this delay.
    reopen_doors_after_lock: float | None = None
    #: The next N events are lost (never published).
    lose_events: int = 0
    #: The next N events are published twice (same ``metadata.id``).
    duplicate_events: int = 0
    #: The next N events are each held back and published after the event that follows.
    reorder_events: int = 0
    #: TOO_MANY_REQUESTS: seconds in ``Retry-After`` (None = send only X-Rate-Limit-Reset).
    retry_after: float | None = 1.0

    def take_fault(self) -> Fault | None:
        """The fault for this call: the one-shot first, then the standing one."""
        fault, self.next_command = self.next_command, None
        return fault or self.every_command
