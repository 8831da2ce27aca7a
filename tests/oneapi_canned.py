"""A requests adapter answering from a table: OneAPI responses no simulator would send."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from rental_fsm.config import Secret
from rental_fsm.oneapi.client import OneAPIClient

TOKEN = (200, b'{"access_token": "t0k", "token_type": "bearer", "expires_in": 900}')


class CannedAdapter(BaseAdapter):
    def __init__(self, routes: Mapping[str, tuple[int, bytes]]) -> None:
        super().__init__()
        self.routes = routes

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        path = (request.path_url or "").split("?")[0]
        status, body = self.routes.get(path, (404, b""))
        response = requests.Response()
        response.status_code, response._content = status, body
        response.headers = CaseInsensitiveDict({"x-invers-flow-id": "flow-1"})
        response.request, response.url = request, request.url or ""
        return response

    def close(self) -> None:
        pass


def canned_client(routes: Mapping[str, tuple[int, bytes]]) -> OneAPIClient:
    session = requests.Session()
    session.mount("https://", CannedAdapter({"/auth/oauth/token": TOKEN, **routes}))
    return OneAPIClient("https://api.test", "id", Secret("s"), session=session)
