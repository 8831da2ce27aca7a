"""Problem ``type`` -> exception class: the one table that turns API errors into ours.

INVERS asks clients to branch on ``type`` and never on ``detail`` (oneapi.md §3.3), so
this module reads ``type`` (relative ``/problems/...`` or the full documentation URL),
falls back on the HTTP status only when the type is unknown, and treats every reply
that cannot prove the request was refused (a gateway status, a 5xx without a problem
body) as :class:`OutcomeUnknown`: the vehicle may have executed the command.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from .. import jsonfast
from ..errors import (
    AuthenticationFailed,
    AuthorizationServerError,
    CommandNotSupported,
    ConflictingCommand,
    ConflictingState,
    OneAPIError,
    OneAPIServerError,
    OutcomeUnknown,
    PermissionDenied,
    RateLimited,
    ResourceConflict,
    ResourceNotFound,
    SetupNotFinished,
    SharedWithPartner,
    TelematicsUnitError,
    ValidationFailed,
)

#: Problem type (relative path) -> exception class (oneapi.md §2 and §3.3).
PROBLEM_TYPES: Mapping[str, type[OneAPIError]] = {
    "/problems/validation-error": ValidationFailed,
    "/problems/referenced-resource-not-found": ValidationFailed,
    "/problems/missing-credentials": AuthenticationFailed,
    "/problems/invalid-credentials": AuthenticationFailed,
    "/problems/authorization-server-error": AuthorizationServerError,
    "/problems/forbidden-resource": PermissionDenied,
    "/problems/missing-permissions": PermissionDenied,
    # Assumption: no public 404 type exists (oneapi.md §3.3); the simulator uses this one.
    "/problems/resource-not-found": ResourceNotFound,
    "/problems/vehicle/command-not-supported": CommandNotSupported,
    "/problems/vehicle/conflicting-state": ConflictingState,
    "/problems/vehicle/conflicting-command": ConflictingCommand,
    "/problems/vehicle/conflicting-setup-status": SetupNotFinished,
    "/problems/vehicle/shared-with-partner": SharedWithPartner,
    "/problems/conflicting-resource": ResourceConflict,
    "/problems/incompatible-telematics-unit-model": ResourceConflict,
    "/problems/too-many-requests": RateLimited,
    "/problems/telematics-unit/error": TelematicsUnitError,
    # The problem page is named telematics-unit-error (oneapi.md §14 S12); accept both.
    "/problems/telematics-unit-error": TelematicsUnitError,
    "/problems/internal-server-error": OneAPIServerError,
}

#: Used when the type is missing or unknown.
_BY_STATUS: Mapping[int, type[OneAPIError]] = {
    400: ValidationFailed,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: ResourceNotFound,
    409: ResourceConflict,
    429: RateLimited,
}
#: Gateway statuses: the API did not (or could not) tell us what happened on the vehicle.
GATEWAY_STATUSES = frozenset({502, 503, 504})
INVALID_CREDENTIALS = "/problems/invalid-credentials"


def normalise_type(problem_type: object) -> str | None:
    """``https://developers.invers.com/problems/x`` and ``/problems/x`` -> ``/problems/x``."""
    if not isinstance(problem_type, str) or not problem_type:
        return None
    path = urlsplit(problem_type).path if "://" in problem_type else problem_type
    return path.rstrip("/") or None


def parse_problem(body: bytes) -> Mapping[str, object] | None:
    """The problem-details object, or None when the body is not one."""
    try:
        data = jsonfast.loads(body) if body else None
    except ValueError:
        return None
    if isinstance(data, Mapping) and isinstance(data.get("type"), str):
        return data
    return None


def retry_at(headers: Mapping[str, str], now: datetime) -> datetime | None:
    """When a 429 lifts: ``Retry-After`` (seconds or HTTP date), else ``X-Rate-Limit-Reset``.

    ``headers`` must be case-insensitive (requests' ``CaseInsensitiveDict``).
    """
    raw = headers.get("Retry-After")
    if raw:
        raw = raw.strip()
        try:
            return now + timedelta(seconds=float(raw))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    reset = headers.get("X-Rate-Limit-Reset")
    if reset:
        try:
            return datetime.fromtimestamp(float(reset.strip()), tz=timezone.utc)
        except (ValueError, OverflowError, OSError):
            return None
    return None


def error_for(
    *,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    flow_id: str | None,
    vehicle_id: str | None,
    what: str,
    now: datetime,
) -> OneAPIError:
    """The exception for a non-2xx response. ``what`` names the call, e.g. ``POST /x``."""
    problem = parse_problem(body)
    problem_type = normalise_type(problem.get("type")) if problem else None
    if problem and not flow_id and isinstance(problem.get("flow_id"), str):
        flow_id = str(problem["flow_id"])
    title = problem.get("title") if problem else None
    message = f"{what} failed" + (f": {title}" if isinstance(title, str) and title else "")
    cls = PROBLEM_TYPES.get(problem_type or "")
    if cls is None:
        if status in GATEWAY_STATUSES or (status >= 500 and problem is None):
            cls = OutcomeUnknown
            message = f"{what}: HTTP {status}, the outcome on the vehicle is unknown"
        elif status >= 500:
            cls = OneAPIServerError
        else:
            cls = _BY_STATUS.get(status, OneAPIError)
    kwargs = {
        "status": status,
        "problem_type": problem_type,
        "flow_id": flow_id,
        "vehicle_id": vehicle_id,
    }
    if cls is RateLimited:
        return RateLimited(message, retry_at=retry_at(headers, now), **kwargs)
    return cls(message, **kwargs)  # type: ignore[arg-type]
