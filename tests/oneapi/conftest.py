"""A running simulator and a client pointed at it, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rental_fsm.oneapi import OneAPIClient
from rental_fsm.simulator import Simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """No broker: events are only recorded in ``sim.published``."""
    simulator = Simulator()
    simulator.add_vehicle("keyless", "CAR1")
    simulator.add_vehicle("with_key", "KEY1")
    simulator.add_vehicle("separate", "SEP1")
    simulator.add_vehicle("moped", "MOP1")
    with simulator:
        yield simulator


@pytest.fixture
def make_client(sim: Simulator) -> Callable[..., OneAPIClient]:
    def make(**kwargs: Any) -> OneAPIClient:
        kwargs.setdefault("read_timeout", 5.0)
        return OneAPIClient(sim.url, sim.client_id, sim.client_secret, **kwargs)

    return make


@pytest.fixture
def client(make_client: Callable[..., OneAPIClient]) -> OneAPIClient:
    return make_client()
