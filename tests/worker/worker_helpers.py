"""Helpers for the worker tests: envelopes, a recording vehicle API, in-process parts."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from kombu import Connection, Queue

from rental_fsm.clock import SystemClock
from rental_fsm.effects import EffectRunner
from rental_fsm.engine import Engine
from rental_fsm.events.handler import EventHandler
from rental_fsm.model import Rental, format_time
from rental_fsm.oneapi.resources import Result
from rental_fsm.oneapi.vehicle_state import Command, VehicleState
from rental_fsm.store import Keys
from rental_fsm.store.dead_letters import RedisDeadLetters
from rental_fsm.store.redis import RedisRentalStore
from rental_fsm.worker.process import Parts

KEYLESS_CAR = {
    "commands": ["UNLOCK_AND_ENABLE_DRIVING", "LOCK_AND_DISABLE_DRIVING",
                 "REQUEST_VEHICLE_STATE"],
    "vehicle_state": ["CENTRAL_LOCK", "DRIVING_ENABLED", "IGNITION", "DOORS_STATUS"],
}


def stamp(when: datetime) -> str:
    return format_time(when)


def envelope(vehicle_id: str, props: dict[str, Any], at: datetime, *,
             event_id: str | None = None, type_: str = "VehicleStateRecorded") -> dict[str, Any]:
    return {
        "metadata": {"id": event_id or uuid.uuid4().hex, "type": type_,
                     "schema_major_version": 2, "occurred_at": stamp(at),
                     "flow_id": uuid.uuid4().hex},
        "data": {"vehicle_id": vehicle_id, "vehicle_state": {
            k: {"timestamp": stamp(at), "value": v} for k, v in props.items()}},
    }


class RecordingAPI:
    """Stands in for OneAPIClient: records every call, answers with an empty state."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def command(self, vehicle_id: str, command: Command) -> Result[VehicleState]:
        with self._lock:
            self.calls.append((vehicle_id, command.value))
        return Result(VehicleState({}), "flow", 200)

    def set_rental_status(self, vehicle_id: str, value: str, *,
                          request_new_vehicle_state: bool = True) -> Result[VehicleState | None]:
        with self._lock:
            self.calls.append((vehicle_id, f"rental-status {value}"))
        return Result(VehicleState({}), "flow", 200)


def redis_parts(redis_client: Any, namespace: str, amqp_url: str, queues: Iterable[str],
                api: Any, *, owner: str = "test-worker", prefetch: int = 200) -> Parts:
    clock = SystemClock()
    keys = Keys(namespace)
    store = RedisRentalStore(redis_client, keys)
    engine = Engine(store, clock=clock)
    return Parts(
        store=store, timers=store.timers, engine=engine,
        handler=EventHandler(store, engine, RedisDeadLetters(redis_client, keys, clock),
                             clock=clock),
        effects=EffectRunner(store, engine, api, clock=clock, owner=owner),
        connection=Connection(amqp_url, heartbeat=0), queues=tuple(queues),
        prefetch=prefetch,
    )


def started_rentals(parts: Parts, count: int, prefix: str,
                    caps: dict[str, Any] = KEYLESS_CAR) -> list[Rental]:
    """``count`` rentals, each started (STARTING), their unlock already sent."""
    rentals = []
    for i in range(count):
        vehicle = f"{prefix}V{i}"
        parts.store.set_capabilities(vehicle, caps)
        parts.store.create(Rental(f"{prefix}R{i}", vehicle, f"{prefix}C{i}"))
        applied = parts.engine.apply(f"{prefix}R{i}", "start", event_id=f"start-{i}")
        for entry in parts.store.pending_effects(f"{prefix}R{i}"):
            parts.store.complete_effect(entry.rental_id, entry.effect_id)
        rentals.append(applied.rental)
    return rentals


def publish(connection: Connection, queue: str, bodies: Iterable[bytes | dict[str, Any]], *,
            content_type: str = "application/json") -> int:
    count = 0
    target = Queue(queue, durable=True, auto_delete=False)
    with connection.Producer() as producer:
        target(producer.channel).declare()
        for body in bodies:
            raw = json.dumps(body).encode() if isinstance(body, dict) else body
            producer.publish(raw, exchange="", routing_key=queue, content_type=content_type,
                             content_encoding="binary", delivery_mode=2)
            count += 1
    return count


def now_plus(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)
