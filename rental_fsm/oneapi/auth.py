"""OAuth2 client credentials for the OneAPI, with a cached token (oneapi.md §2).

The token lives 15 minutes and there is no refresh token, so we fetch a new one about
60 s before the old one runs out, and once more when the API answers 401
``invalid-credentials`` (the client does that retry). The client id, the secret and the
tokens never appear in a repr, an exception message or a log line: the secret stays a
:class:`~rental_fsm.config.Secret` until the moment the Basic header is built.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from .. import jsonfast
from ..clock import Clock, SystemClock
from ..config import Secret
from ..errors import InvalidResponse
from .problems import error_for

TOKEN_PATH = "/auth/oauth/token"
#: Refresh this long before ``expires_in`` runs out (oneapi.md §2 recommendation).
DEFAULT_REFRESH_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class RawResponse:
    """What the transport hands back: enough to map errors, nothing requests-specific."""

    status: int
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    flow_id: str | None


class Transport(Protocol):
    """The client's HTTP seam (implemented in client.py, the only user of requests)."""

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        vehicle_id: str | None = None,
    ) -> RawResponse: ...


class TokenProvider:
    """Fetches and caches bearer tokens; thread-safe."""

    def __init__(
        self,
        transport: Transport,
        client_id: str,
        client_secret: Secret,
        *,
        clock: Clock | None = None,
        refresh_margin: timedelta = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        if not isinstance(client_secret, Secret):
            raise TypeError("client_secret must be a rental_fsm.config.Secret")
        self._transport = transport
        self._client_id = client_id
        self._secret = client_secret
        self._clock = clock or SystemClock()
        self._margin = refresh_margin
        self._lock = threading.Lock()
        self._token: str | None = None
        self._valid_until: datetime | None = None
        #: How many tokens were fetched (observability and tests).
        self.fetches = 0

    def __repr__(self) -> str:
        cached = "cached" if self._token else "none"
        return f"TokenProvider(client_id='***', client_secret='***', token={cached})"

    def token(self) -> str:
        """A valid bearer token, fetched when none is cached or it is about to expire."""
        with self._lock:
            now = self._clock.now()
            if self._token and self._valid_until and now < self._valid_until:
                return self._token
            return self._fetch(now)

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (after a 401); a newer one fetched meanwhile is kept."""
        with self._lock:
            if self._token == token:
                self._token = None
                self._valid_until = None

    def _basic(self) -> str:
        raw = f"{self._client_id}:{self._secret.reveal()}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def _fetch(self, now: datetime) -> str:
        what = f"POST {TOKEN_PATH}"
        response = self._transport.request(
            "POST",
            TOKEN_PATH,
            params={"grant_type": "client_credentials"},
            headers={"Authorization": self._basic()},
        )
        if response.status != 200:
            raise error_for(
                status=response.status,
                body=response.body,
                headers=response.headers,
                flow_id=response.flow_id,
                vehicle_id=None,
                what=what,
                now=now,
            )
        token, lifetime = _parse_token(response, what)
        self.fetches += 1
        # Refresh `margin` early, but never cache a short-lived token for less than half
        # of its life (tests and some gateways issue tokens of a few seconds).
        early = min(self._margin, lifetime / 2)
        self._token = token
        self._valid_until = now + lifetime - early
        return token


def _parse_token(response: RawResponse, what: str) -> tuple[str, timedelta]:
    def bad(reason: str) -> InvalidResponse:
        return InvalidResponse(
            f"{what}: {reason}", status=response.status, flow_id=response.flow_id
        )

    try:
        data = jsonfast.loads(response.body)
    except ValueError as exc:
        raise bad("body is not JSON") from exc
    if not isinstance(data, dict):
        raise bad("expected a JSON object")
    token = data.get("access_token")
    expires_in = data.get("expires_in")
    token_type = data.get("token_type")
    if not isinstance(token, str) or not token:
        raise bad("access_token missing")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise bad("token_type is not bearer")
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
        raise bad("expires_in missing or not a number")
    if expires_in <= 0:
        raise bad("expires_in is not positive")
    return token, timedelta(seconds=float(expires_in))
