"""``RentalStateChanged`` notifications over AMQP for the booking backend's other services."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange

#: Routing key of every notification on the configured exchange.
ROUTING_KEY = "rental.state_changed"


class KombuNotifier:
    """Publishes each change as persistent JSON to a durable topic exchange."""

    def __init__(self, connection: Connection, exchange: str) -> None:
        self.connection = connection
        self.exchange = Exchange(exchange, type="topic", durable=True)  # type: ignore[no-untyped-call]

    @classmethod
    def from_url(cls, amqp_url: str, exchange: str) -> KombuNotifier:
        return cls(Connection(amqp_url), exchange)  # type: ignore[no-untyped-call]

    def publish(self, change: Mapping[str, Any]) -> None:
        with self.connection.Producer() as producer:  # type: ignore[no-untyped-call]
            producer.publish(
                json.dumps(dict(change)), exchange=self.exchange, routing_key=ROUTING_KEY,
                declare=[self.exchange], content_type="application/json",
                content_encoding="utf-8", message_id=str(change.get("message_id")),
                type=str(change.get("type")), delivery_mode=2, retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.1, "interval_step": 0.5},
            )
