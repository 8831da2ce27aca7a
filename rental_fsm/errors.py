"""The whole exception tree of rental_fsm.

Every error the package raises on purpose derives from :class:`RentalFSMError`, so a
booking backend can catch one base class. Third-party errors (redis, kombu, requests) are
translated at the adapter that meets them, with ``raise ... from exc`` to keep the cause.
``transient`` tells a caller whether the same call may succeed if simply tried again later.

::

    RentalFSMError                          .transient = False unless marked
     +-- ConfigurationError                 (also ValueError) bad settings
     +-- InvalidInput                       (also ValueError) bad argument from outside
     +-- DefinitionError                    bad transition table
     +-- TransitionError                    .rental_id .state .trigger
     |    +-- UnknownTrigger                name not in the table
     |    +-- InvalidTransition             not allowed from the current state
     |    +-- GuardRejected                 .reasons (one per vetoing guard)
     |         +-- EndRentalCriteriaNotMet  .unmet: the criteria the customer must fix
     +-- NotAuthorized                      the booking backend's hook denied the customer
     +-- StoreError
     |    +-- RentalNotFound                .rental_id
     |    +-- RentalExists                  .rental_id
     |    +-- VersionConflict               transient: reload and decide again
     |    +-- StoreUnavailable              transient: Redis down or timing out
     |    +-- CorruptRecord                 .key: a stored record does not decode
     |    +-- VehicleBusy                   .vehicle_id .rental_id
     |    +-- CustomerBusy                  .customer_id .rental_id
     +-- EventError
     |    +-- MalformedEvent                .reason: dead-letter it
     |    +-- BrokerUnavailable             transient
     +-- LogFormatError                     .path .line: unreadable rental log
 +-- UnansweredCall                     .method .path: replay found no recorded answer
     +-- OneAPIError                        .status .problem_type .flow_id .vehicle_id
          +-- OutcomeUnknown                timeout / connection / bare 5xx: may have run
          +-- AuthenticationFailed          401
          +-- AuthorizationServerError      403 authorization-server-error, transient
          +-- PermissionDenied              403 forbidden-resource / missing-permissions
          +-- ValidationFailed              400 validation-error / referenced-resource-...
          +-- ResourceNotFound              404
          +-- CommandNotSupported           409 vehicle/command-not-supported
          +-- ConflictingState              409 vehicle/conflicting-state
          +-- ConflictingCommand            409 vehicle/conflicting-command, transient
          +-- SetupNotFinished              409 vehicle/conflicting-setup-status, transient
          +-- SharedWithPartner             409 vehicle/shared-with-partner
          +-- ResourceConflict              409 other conflicts
          +-- RateLimited                   429, transient, .retry_at
          +-- TelematicsUnitError           500 telematics-unit/error, transient
          +-- OneAPIServerError             other 5xx with a problem body, transient
          +-- InvalidResponse               a 2xx whose body is not the expected JSON shape
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


class RentalFSMError(Exception):
    """Base class of every error rental_fsm raises on purpose."""

    #: True when the same operation may succeed if retried later unchanged.
    transient: bool = False


class ConfigurationError(RentalFSMError, ValueError):
    """Raised when settings are missing or invalid; lists every problem at once."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid configuration: " + "; ".join(self.problems))


class InvalidInput(RentalFSMError, ValueError):
    """Raised when an argument from outside (an id, a request field) is malformed."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"invalid {field}: {reason}")


class DefinitionError(RentalFSMError):
    """Raised when the transition table breaks a structural rule."""


class TransitionError(RentalFSMError):
    """Base for a trigger that cannot move a rental; carries where and what."""

    def __init__(self, rental_id: str, state: str, trigger: str, message: str) -> None:
        self.rental_id = rental_id
        self.state = state
        self.trigger = trigger
        super().__init__(f"rental {rental_id!r} in {state}: {message}")


class UnknownTrigger(TransitionError):
    """Raised when the trigger name is not in the transition table."""

    def __init__(self, rental_id: str, state: str, trigger: str) -> None:
        super().__init__(rental_id, state, trigger, f"unknown trigger {trigger!r}")


class InvalidTransition(TransitionError):
    """Raised when the trigger exists but is not allowed from the current state."""

    def __init__(self, rental_id: str, state: str, trigger: str) -> None:
        super().__init__(rental_id, state, trigger, f"{trigger!r} is not allowed in {state}")


class GuardRejected(TransitionError):
    """Raised when every transition for the trigger was vetoed by a guard."""

    def __init__(
        self, rental_id: str, state: str, trigger: str, reasons: Sequence[str]
    ) -> None:
        self.reasons = tuple(reasons)
        super().__init__(
            rental_id, state, trigger, f"{trigger!r} rejected: " + "; ".join(self.reasons)
        )


class EndRentalCriteriaNotMet(GuardRejected):
    """Raised by ``end_rental`` when end-rental criteria are not met (seed 000); ``unmet``
    lists ``{"criterion", "actual", "expected"}`` so the app can tell the customer."""

    def __init__(self, rental_id: str, state: str, unmet: Sequence[dict[str, object]]) -> None:
        self.unmet = [dict(item) for item in unmet]
        reasons = [f"{u['criterion']} is {u['actual']!r}, expected {u['expected']!r}"
                   for u in self.unmet]
        super().__init__(rental_id, state, "end", reasons)


class NotAuthorized(RentalFSMError):
    """Raised when the authorization hook denies a customer the vehicle; nothing is sent
    (seed 000: make sure they are allowed to use the vehicle before sending commands)."""

    def __init__(self, customer_id: str, vehicle_id: str) -> None:
        self.customer_id = customer_id
        self.vehicle_id = vehicle_id
        super().__init__(f"customer {customer_id!r} may not use vehicle {vehicle_id!r}")


class StoreError(RentalFSMError):
    """Base for persistence failures."""


class RentalNotFound(StoreError):
    """Raised when no rental with this id is stored."""

    def __init__(self, rental_id: str) -> None:
        self.rental_id = rental_id
        super().__init__(f"no rental {rental_id!r}")


class RentalExists(StoreError):
    """Raised when creating a rental whose id is already stored."""

    def __init__(self, rental_id: str) -> None:
        self.rental_id = rental_id
        super().__init__(f"rental {rental_id!r} already exists")


class VersionConflict(StoreError):
    """Raised when another writer committed first; reload and decide again."""

    transient = True

    def __init__(self, rental_id: str, expected: int | None = None) -> None:
        self.rental_id = rental_id
        self.expected = expected
        super().__init__(f"rental {rental_id!r} changed concurrently (expected v{expected})")


class StoreUnavailable(StoreError):
    """Raised when the store cannot be reached or timed out."""

    transient = True


class CorruptRecord(StoreError):
    """Raised when a stored record does not decode; the record is left untouched."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"corrupt record at {key!r}: {reason}")


class VehicleBusy(StoreError):
    """Raised when a vehicle already has another active rental."""

    def __init__(self, vehicle_id: str, rental_id: str) -> None:
        self.vehicle_id = vehicle_id
        self.rental_id = rental_id
        super().__init__(f"vehicle {vehicle_id!r} is in active rental {rental_id!r}")


class CustomerBusy(StoreError):
    """Raised when a customer already has another active rental."""

    def __init__(self, customer_id: str, rental_id: str) -> None:
        self.customer_id = customer_id
        self.rental_id = rental_id
        super().__init__(f"customer {customer_id!r} is in active rental {rental_id!r}")


class EventError(RentalFSMError):
    """Base for problems with inbound events and the broker."""


class MalformedEvent(EventError):
    """Raised when an inbound message cannot be decoded or validated; dead-letter it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"malformed event: {reason}")


class BrokerUnavailable(EventError):
    """Raised when the message broker cannot be reached."""

    transient = True


class LogFormatError(RentalFSMError):
    """Raised when a rental log line cannot be read; names the file and line."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        super().__init__(f"{path}:{line}: {reason}")


class UnansweredCall(RentalFSMError):
    """Raised during replay when the orchestrator makes a call the log has no answer for.

    Deliberately not a ``OneAPIError``: nothing in the orchestrator may treat it as a
    vehicle's answer; it stops the replay of that rental.
    """

    def __init__(self, rental_id: str, method: str, path: str, nth: int) -> None:
        self.rental_id = rental_id
        self.method = method
        self.path = path
        self.nth = nth
        super().__init__(f"rental {rental_id}: call #{nth} to {method} {path} has no "
                         "recorded answer")


class OneAPIError(RentalFSMError):
    """Base for errors from the vehicle API; carries the problem ``type`` and flow id."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        problem_type: str | None = None,
        flow_id: str | None = None,
        vehicle_id: str | None = None,
    ) -> None:
        self.status = status
        self.problem_type = problem_type
        self.flow_id = flow_id
        self.vehicle_id = vehicle_id
        details = ", ".join(
            f"{k}={v}"
            for k, v in (
                ("status", status),
                ("type", problem_type),
                ("vehicle", vehicle_id),
                ("flow_id", flow_id),
            )
            if v is not None
        )
        super().__init__(f"{message} ({details})" if details else message)


class OutcomeUnknown(OneAPIError):
    """Raised on a timeout, connection error or bare 5xx: the command may still have run.

    Never retry a state-changing command on this error; reconcile from events instead
    (seed 000, "Command responses").
    """


class AuthenticationFailed(OneAPIError):
    """Raised on 401: credentials missing or invalid even after one token refresh."""


class AuthorizationServerError(OneAPIError):
    """Raised on 403 authorization-server-error: a technical fault, retry with backoff."""

    transient = True


class PermissionDenied(OneAPIError):
    """Raised on 403 forbidden-resource or missing-permissions; never retried."""


class ValidationFailed(OneAPIError):
    """Raised on 400: the request body or a referenced resource is invalid."""


class ResourceNotFound(OneAPIError):
    """Raised on 404: the vehicle or resource does not exist."""


class CommandNotSupported(OneAPIError):
    """Raised on 409 vehicle/command-not-supported: the capability is missing."""


class ConflictingState(OneAPIError):
    """Raised on 409 vehicle/conflicting-state, e.g. the vehicle is moving."""


class ConflictingCommand(OneAPIError):
    """Raised on 409 vehicle/conflicting-command: another command is still running."""

    transient = True


class SetupNotFinished(OneAPIError):
    """Raised on 409 vehicle/conflicting-setup-status: setup is not SUCCEEDED."""

    transient = True


class SharedWithPartner(OneAPIError):
    """Raised on 409 vehicle/shared-with-partner: the owner cannot send commands."""


class ResourceConflict(OneAPIError):
    """Raised on any other 409 problem."""


class RateLimited(OneAPIError):
    """Raised on 429; ``retry_at`` is when the limit resets (from the headers)."""

    transient = True

    def __init__(self, message: str, *, retry_at: datetime | None = None, **kw: object) -> None:
        self.retry_at = retry_at
        super().__init__(message, **kw)  # type: ignore[arg-type]


class TelematicsUnitError(OneAPIError):
    """Raised on 500 telematics-unit/error: the unit is busy or faulty."""

    transient = True


class OneAPIServerError(OneAPIError):
    """Raised on any other 5xx that came with a problem body."""

    transient = True


class InvalidResponse(OneAPIError):
    """Raised when a successful response's body is not the JSON shape the API documents.

    Raised instead of a ``KeyError`` or ``TypeError`` deep in the caller; the message names
    the endpoint and what was wrong, never the body itself (it may hold personal data).
    """
