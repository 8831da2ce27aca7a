"""The store contract fixture: every test runs on the in-memory and the Redis store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from store_helpers import T0

from rental_fsm.clock import ManualClock
from rental_fsm.store import InMemoryRentalStore, Keys
from rental_fsm.store.base import RentalStore


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[RentalStore]:
    if request.param == "memory":
        yield InMemoryRentalStore(clock=clock)
    else:  # ask for Redis only here, so memory runs never skip for want of a server
        from rental_fsm.store.redis import RedisRentalStore

        client = request.getfixturevalue("redis_client")
        namespace = request.getfixturevalue("redis_namespace")
        yield RedisRentalStore(client, Keys(namespace))
