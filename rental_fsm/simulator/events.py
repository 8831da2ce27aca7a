"""OneAPI events as the simulator publishes them: envelope, AMQP properties, topics.

The envelope and its copy into AMQP properties follow oneapi.md §8.4, so a consumer can
route and de-duplicate before parsing. Each event type goes to its topic's routing key
(VehicleState: VehicleStateRecorded and CentralLockChanged; Vehicle: VehicleChanged).
The broker is an injected ``kombu.Connection`` (``amqp://`` or ``memory://``); without
one, events are only recorded in :attr:`EventPublisher.published`.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import structlog

from ..model import format_time

log = structlog.get_logger(__name__)

VEHICLE_STATE_RECORDED = "VehicleStateRecorded"
CENTRAL_LOCK_CHANGED = "CentralLockChanged"
VEHICLE_CHANGED = "VehicleChanged"
SCHEMA_MAJOR_VERSION = 1
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, as ULIDs use


def new_ulid(now: datetime | None = None) -> str:
    """A ULID-shaped id: 48-bit ms timestamp + 80 random bits, 26 Crockford chars."""
    ms = int((now or datetime.now(timezone.utc)).timestamp() * 1000)
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


def connect(amqp_url: str) -> Any:
    """A ``kombu.Connection`` for ``amqp_url`` (kombu stays inside this package)."""
    from kombu.connection import Connection

    return Connection(amqp_url)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class EventRouting:
    """Where events go; every name configurable so tests can use unique ones."""

    exchange: str = "oneapi.simulator"
    vehicle_state_key: str = "VehicleState"
    vehicle_key: str = "Vehicle"
    #: When set, the simulator declares these queues and binds them (local use, tests).
    vehicle_state_queue: str | None = None
    vehicle_queue: str | None = None
    #: Durable exchange and queues and persistent messages: they survive a broker restart
    #: (the chaos run). Off by default: test queues should vanish with the broker.
    durable: bool = False

    def routing_key(self, event_type: str) -> str:
        return self.vehicle_key if event_type == VEHICLE_CHANGED else self.vehicle_state_key


def envelope(
    event_type: str, data: dict[str, Any], flow_id: str, occurred_at: datetime
) -> dict[str, Any]:
    return {
        "metadata": {
            "id": new_ulid(occurred_at),
            "type": event_type,
            "schema_major_version": SCHEMA_MAJOR_VERSION,
            "occurred_at": format_time(occurred_at),
            "flow_id": flow_id,
        },
        "data": data,
    }


class EventPublisher:
    """Publishes envelopes through kombu; thread-safe (one lock around the producer)."""

    def __init__(self, connection: Any | None = None, routing: EventRouting | None = None) -> None:
        self.routing = routing or EventRouting()
        self._connection = connection
        self._lock = threading.Lock()
        self._producer: Any = None
        self._exchange: Any = None
        #: Every envelope actually published, in publish order (duplicates included).
        self.published: list[dict[str, Any]] = []
        #: Envelopes the broker did not take (e.g. it was restarting): never delivered.
        self.failed: list[dict[str, Any]] = []

    def open(self) -> None:
        """Declare the exchange (and queues when configured)."""
        if self._connection is None:
            return
        from kombu.entity import Exchange, Queue

        r = self.routing
        self._exchange = Exchange(  # type: ignore[no-untyped-call]
            r.exchange, type="topic", durable=r.durable, auto_delete=not r.durable
        )
        self._producer = self._connection.Producer(serializer="json")
        self._exchange(self._producer.channel).declare()
        for name, key in ((r.vehicle_state_queue, r.vehicle_state_key),
                          (r.vehicle_queue, r.vehicle_key)):
            if name:
                queue = Queue(  # type: ignore[no-untyped-call]
                    name, self._exchange, routing_key=key, durable=r.durable
                )
                queue(self._producer.channel).declare()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close()
                self._producer = None

    def publish(self, event: dict[str, Any]) -> None:
        meta = event["metadata"]
        with self._lock:
            if self._producer is None:
                self.published.append(event)
                return
            occurred = datetime.fromisoformat(meta["occurred_at"].replace("Z", "+00:00"))
            try:
                self._send(event, meta, occurred)
            except Exception as exc:  # the broker is away: OneAPI's problem, not a crash
                self.failed.append(event)
                log.warning("sim_event_not_published", id=meta["id"], error=str(exc))
                return
            self.published.append(event)
        log.debug("sim_event_published", type=meta["type"], id=meta["id"])

    def _send(self, event: dict[str, Any], meta: dict[str, Any], occurred: datetime) -> None:
        self._producer.publish(
            json.dumps(event),
            exchange=self._exchange,
            routing_key=self.routing.routing_key(meta["type"]),
            content_type="application/json",
            content_encoding="utf-8",
            message_id=meta["id"],
            type=meta["type"],
            timestamp=int(occurred.timestamp()),
            correlation_id=meta["flow_id"],
            headers={"schema_major_version": meta["schema_major_version"]},
            delivery_mode=2 if self.routing.durable else 1,
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.1, "interval_step": 0.2},
        )
