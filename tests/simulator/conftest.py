"""Simulator fixtures: a plain one (events recorded only) and one on the real RabbitMQ."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from services import unique
from sim_helpers import Queues

from rental_fsm.simulator import EventRouting, Simulator


def add_fleet(sim: Simulator) -> Simulator:
    sim.add_vehicle("keyless", "CAR1")
    sim.add_vehicle("with_key", "KEY1")
    sim.add_vehicle("separate", "SEP1")
    sim.add_vehicle("moped", "MOP1")
    return sim


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with add_fleet(Simulator()) as simulator:
        yield simulator


@pytest.fixture
def amqp_sim(amqp_connection: Any, amqp_queues: list[str]) -> Iterator[tuple[Simulator, Queues]]:
    """A simulator publishing to the real RabbitMQ on unique queues (deleted afterwards)."""
    routing = EventRouting(
        exchange=unique("rfsm-sim-x"),
        vehicle_state_queue=unique("rfsm-sim-state"),
        vehicle_queue=unique("rfsm-sim-vehicle"),
    )
    assert routing.vehicle_state_queue and routing.vehicle_queue
    amqp_queues += [routing.vehicle_state_queue, routing.vehicle_queue]
    publishing = amqp_connection.clone()  # the server threads get their own connection
    try:
        with add_fleet(Simulator(connection=publishing, routing=routing)) as simulator:
            yield simulator, Queues(amqp_connection, routing)
    finally:
        publishing.release()
