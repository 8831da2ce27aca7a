"""The whole stack for the rule scenarios (see flow_helpers.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flow_helpers import AREA, SHORT, Stack, _Recorder
from services import unique

from rental_fsm.clock import SystemClock
from rental_fsm.criteria import EndPolicy
from rental_fsm.events.handler import EventHandler
from rental_fsm.oneapi.client import OneAPIClient
from rental_fsm.orchestrator import Orchestrator
from rental_fsm.simulator import EventRouting, Simulator
from rental_fsm.store import InMemoryRentalStore
from rental_fsm.store.dead_letters import InMemoryDeadLetters
from rental_fsm.worker.process import Parts, Worker


@pytest.fixture
def stack(amqp_connection: Any, amqp_queues: list[str]) -> Iterator[Stack]:
    routing = EventRouting(exchange=unique("rfsm-flow-x"),
                           vehicle_state_queue=unique("rfsm-flow-state"),
                           vehicle_queue=unique("rfsm-flow-vehicle"))
    assert routing.vehicle_state_queue and routing.vehicle_queue
    amqp_queues += [routing.vehicle_state_queue, routing.vehicle_queue]
    publishing = amqp_connection.clone()
    sim = Simulator(connection=publishing, routing=routing)
    for model, vid in (("keyless", "CAR1"), ("with_key", "KEY1"), ("separate", "SEP1"),
                       ("moped", "MOP1"), ("keyless", "CAR2")):
        sim.add_vehicle(model, vid)
    sim.start()
    sim.set_faults("CAR1", hang_seconds=0.3)
    clock = SystemClock()
    store = InMemoryRentalStore(clock=clock)
    api = OneAPIClient(sim.url, sim.client_id, sim.client_secret, read_timeout=5.0)
    holder: dict[str, Stack] = {}
    orch = Orchestrator(store, api, clock=clock, durations=SHORT,
                        authorize=lambda c, v: (c, v) in holder["stack"].allowed,
                        end_policy=EndPolicy(area=AREA),
                        notifier=_Recorder(holder))
    parts = Parts(store=store, timers=store.timers, engine=orch.engine,
                  handler=EventHandler(store, orch.engine, InMemoryDeadLetters(), clock=clock),
                  effects=orch.effects, connection=amqp_connection.clone(),
                  queues=(routing.vehicle_state_queue, routing.vehicle_queue), prefetch=50)
    worker = Worker(parts)
    holder["stack"] = stack = Stack(sim, orch, worker)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert worker.consumer.ready.wait(30), "the worker never started consuming"
    try:
        yield stack
    finally:
        worker.stop()
        thread.join(30)
        sim.stop()
        parts.connection.release()
        publishing.release()


