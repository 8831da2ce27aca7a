"""The OneAPI REST client: every endpoint rental_fsm uses, errors translated at this edge.

One injected ``requests.Session`` carries every call, always with a ``(connect, read)``
timeout. Retry policy, kept deliberately small (oneapi.md §2, §6.4):

* a 401 ``invalid-credentials`` refreshes the token once and retries once (the request
  was refused before it reached the vehicle, so this is safe even for commands);
* nothing else is retried here. A 403 never is. A timeout, a connection error or a
  gateway / bare 5xx raises :class:`OutcomeUnknown`: the command may have run, so the
  caller reconciles from events instead of blindly resending.

Each call logs one line (method, path, status, flow id, duration), never headers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import requests
import structlog

from .. import jsonfast
from ..clock import Clock, SystemClock
from ..config import Secret
from ..errors import InvalidResponse, OutcomeUnknown
from .auth import DEFAULT_REFRESH_MARGIN, RawResponse, TokenProvider
from .problems import INVALID_CREDENTIALS, error_for, normalise_type, parse_problem
from .resources import PAGINATION, Result, SetupStatus, Vehicle, items_of
from .vehicle_state import Command, VehicleState

log = structlog.get_logger(__name__)
T = TypeVar("T")
FLOW_ID_HEADER = "X-INVERS-Flow-ID"  # requests' headers are case-insensitive
DEFAULT_PAGE_SIZE = 100


class _RequestsTransport:
    """Sends one request, measures and logs it, and turns requests errors into ours."""

    def __init__(
        self, base_url: str, session: requests.Session, timeout: tuple[float, float]
    ) -> None:
        self._base = base_url.rstrip("/")
        self._session = session
        self._timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        vehicle_id: str | None = None,
    ) -> RawResponse:
        started = time.perf_counter()
        send_headers = {"Content-Type": "application/json", "Accept": "application/json"}
        send_headers.update(headers)
        data = b"" if json_body is None else json.dumps(json_body).encode()

        def line(status: int | None, flow_id: str | None, **extra: Any) -> None:
            level = log.info if status is not None and status < 400 else log.warning
            level(
                "oneapi_call",
                method=method,
                path=path,
                status=status,
                flow_id=flow_id,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                **extra,
            )

        try:
            response = self._session.request(
                method,
                self._base + path,
                params=dict(params) if params else None,
                data=data,
                headers=send_headers,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            line(None, None, error="timeout")
            raise OutcomeUnknown(
                f"{method} {path}: timed out, the outcome is unknown", vehicle_id=vehicle_id
            ) from exc
        except requests.RequestException as exc:  # connection refused / reset, bad chunk
            line(None, None, error=type(exc).__name__)
            raise OutcomeUnknown(
                f"{method} {path}: {type(exc).__name__}, the outcome is unknown",
                vehicle_id=vehicle_id,
            ) from exc
        flow_id = response.headers.get(FLOW_ID_HEADER)
        extra: dict[str, Any] = {}
        if response.status_code >= 400:
            problem = parse_problem(response.content)
            extra["problem_type"] = normalise_type(problem.get("type")) if problem else None
        line(response.status_code, flow_id, **extra)
        return RawResponse(response.status_code, response.headers, response.content, flow_id)


class OneAPIClient:
    """A thread-safe client for the OneAPI REST endpoints (oneapi.md §2-§7)."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: Secret,
        *,
        session: requests.Session | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 45.0,
        clock: Clock | None = None,
        token_refresh_margin: timedelta = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        self._clock = clock or SystemClock()
        self._base = base_url.rstrip("/")
        self._transport = _RequestsTransport(
            self._base, session or requests.Session(), (connect_timeout, read_timeout)
        )
        self._auth = TokenProvider(
            self._transport,
            client_id,
            client_secret,
            clock=self._clock,
            refresh_margin=token_refresh_margin,
        )

    def __repr__(self) -> str:
        return f"OneAPIClient({self._base!r}, client_id='***', client_secret='***')"

    @property
    def auth(self) -> TokenProvider:
        return self._auth

    # -- commands and rental status ---------------------------------------------------

    def command(self, vehicle_id: str, command: Command) -> Result[VehicleState]:
        """Send a vehicle command; the 200 body is the updated vehicle state.

        Raises:
            OutcomeUnknown: timeout / connection error / gateway status. Do not resend.
            CommandNotSupported, ConflictingState, ConflictingCommand, ...: see problems.py.
        """
        command = Command(command)
        path = f"/vehicles/{_seg(vehicle_id)}/commands/{command.value}"
        return self._call("POST", path, VehicleState.from_json, vehicle_id=vehicle_id)

    def request_vehicle_state(self, vehicle_id: str) -> Result[VehicleState]:
        return self.command(vehicle_id, Command.REQUEST_VEHICLE_STATE)

    def set_rental_status(
        self, vehicle_id: str, value: str, *, request_new_vehicle_state: bool = True
    ) -> Result[VehicleState | None]:
        """``IN_RENTAL`` / ``NOT_IN_RENTAL``; returns the fresh state when one is requested."""

        def parse(data: Any) -> VehicleState | None:
            if not request_new_vehicle_state and data is None:
                return None
            return VehicleState.from_json(data)

        return self._call(
            "PUT",
            f"/vehicles/{_seg(vehicle_id)}/rental-status",
            parse,
            params={"request_new_vehicle_state": str(request_new_vehicle_state).lower()},
            json_body={"value": value},
            vehicle_id=vehicle_id,
            allow_empty=not request_new_vehicle_state,
        )

    # -- vehicles -----------------------------------------------------------------------

    def get_vehicle(self, vehicle_id: str) -> Result[Vehicle]:
        path = f"/vehicles/{_seg(vehicle_id)}"
        return self._call("GET", path, Vehicle.from_json, vehicle_id=vehicle_id)

    def latest_vehicle_state(self, vehicle_id: str) -> Result[VehicleState]:
        path = f"/vehicles/{_seg(vehicle_id)}/latest-vehicle-state"
        return self._call("GET", path, VehicleState.from_json, vehicle_id=vehicle_id)

    def iter_vehicles(self, *, limit: int = DEFAULT_PAGE_SIZE) -> Iterator[Vehicle]:
        """Every vehicle of the fleet, following the cursor page by page (lazily)."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params = {"limit": str(limit)}
            if cursor is not None:
                params[PAGINATION.request_param] = cursor
            page = self._call("GET", "/vehicles", _parse_page, params=params).value
            yield from page[0]
            cursor = page[1]
            if cursor is None:
                return
            if cursor in seen:  # a server bug must not make us loop forever
                raise InvalidResponse("GET /vehicles: the cursor repeats", status=200)
            seen.add(cursor)

    def add_vehicle(self, vehicle: Mapping[str, Any]) -> Result[Vehicle]:
        """``POST /vehicles`` (oneapi.md §7.1); 201 with the vehicle incl. capabilities."""
        return self._call(
            "POST", "/vehicles", Vehicle.from_json, json_body=dict(vehicle), expect=201
        )

    def setup_telematics_unit(self, vehicle_id: str, vehicle_model_id: str) -> Result[SetupStatus]:
        return self._call(
            "PUT",
            f"/vehicles/{_seg(vehicle_id)}/telematics-unit/setup",
            SetupStatus.from_json,
            json_body={"vehicle_model_id": vehicle_model_id},
            vehicle_id=vehicle_id,
        )

    # -- telematics brands ----------------------------------------------------------------

    def available_vehicle_models(self, brand: str) -> Result[list[Mapping[str, Any]]]:
        return self._brand_list(brand, "available-vehicle-models")

    def available_credentials(self, brand: str) -> Result[list[Mapping[str, Any]]]:
        return self._brand_list(brand, "available-credentials")

    def available_telematics_units(self, brand: str) -> Result[list[Mapping[str, Any]]]:
        return self._brand_list(brand, "available-telematics-unit")

    def _brand_list(self, brand: str, what: str) -> Result[list[Mapping[str, Any]]]:
        return self._call("GET", f"/telematics-brands/{_seg(brand)}/{what}", items_of)

    # -- the one request path -------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], T],
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        vehicle_id: str | None = None,
        expect: int = 200,
        allow_empty: bool = False,
    ) -> Result[T]:
        response = self._send(method, path, params, json_body, vehicle_id)
        what = f"{method} {path}"
        if response.status != expect and not (allow_empty and response.status == 204):
            raise error_for(
                status=response.status,
                body=response.body,
                headers=response.headers,
                flow_id=response.flow_id,
                vehicle_id=vehicle_id,
                what=what,
                now=self._clock.now(),
            )
        try:
            data = jsonfast.loads(response.body) if response.body.strip() else None
        except ValueError as exc:
            raise self._invalid(what, "body is not JSON", response, vehicle_id) from exc
        if data is None and not allow_empty:
            raise self._invalid(what, "empty body", response, vehicle_id)
        try:
            value = parse(data)
        except (ValueError, TypeError, KeyError) as exc:
            raise self._invalid(what, str(exc), response, vehicle_id) from exc
        return Result(value, response.flow_id, response.status)

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        vehicle_id: str | None,
    ) -> RawResponse:
        token = self._auth.token()
        for attempt in (1, 2):
            response = self._transport.request(
                method,
                path,
                headers={"Authorization": f"Bearer {token}"},
                params=params,
                json_body=json_body,
                vehicle_id=vehicle_id,
            )
            if attempt == 1 and response.status == 401 and _is_invalid_credentials(response):
                self._auth.invalidate(token)
                token = self._auth.token()
                continue
            return response
        return response

    @staticmethod
    def _invalid(
        what: str, reason: str, response: RawResponse, vehicle_id: str | None
    ) -> InvalidResponse:
        return InvalidResponse(
            f"{what}: unexpected response body: {reason}",
            status=response.status,
            flow_id=response.flow_id,
            vehicle_id=vehicle_id,
        )


def _is_invalid_credentials(response: RawResponse) -> bool:
    problem = parse_problem(response.body)
    return problem is not None and normalise_type(problem.get("type")) == INVALID_CREDENTIALS


def _parse_page(data: Any) -> tuple[list[Vehicle], str | None]:
    vehicles = [Vehicle.from_json(item) for item in items_of(data)]
    cursor = data.get(PAGINATION.response_field)
    if cursor is not None and (not isinstance(cursor, str) or not cursor):
        raise ValueError(f"{PAGINATION.response_field} must be a non-empty string or null")
    return vehicles, cursor


def _seg(value: str) -> str:
    """A path segment, percent-encoded (client and vehicle ids may contain '#')."""
    if not isinstance(value, str) or not value:
        raise ValueError("path segment must be a non-empty string")
    return quote(value, safe="")
