"""Reading the simulator's topic queues on the real RabbitMQ, with bounded waits."""

from __future__ import annotations

import json
import time
from typing import Any

from kombu.entity import Queue

from rental_fsm.simulator import EventRouting


class Queues:
    """Reads the simulator's two topic queues with bounded waits."""

    def __init__(self, connection: Any, routing: EventRouting) -> None:
        self.connection = connection
        self.routing = routing

    def get(self, queue: str, count: int, timeout: float = 5.0) -> list[Any]:
        """Exactly the first ``count`` messages (fails the test after ``timeout``)."""
        channel = self.connection.channel()
        bound = Queue(queue, channel=channel)
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while len(got) < count and time.monotonic() < deadline:
                message = bound.get(no_ack=True)
                if message is None:
                    time.sleep(0.02)
                else:
                    got.append(message)
        finally:
            channel.close()
        assert len(got) == count, f"{queue}: got {len(got)} of {count} messages in {timeout}s"
        return got

    def state(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        return [json.loads(m.body) for m in self.raw_state(count, timeout)]

    def raw_state(self, count: int, timeout: float = 5.0) -> list[Any]:
        assert self.routing.vehicle_state_queue
        return self.get(self.routing.vehicle_state_queue, count, timeout)

    def vehicle(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        assert self.routing.vehicle_queue
        return [json.loads(m.body) for m in self.get(self.routing.vehicle_queue, count, timeout)]

    def assert_quiet(self, wait: float = 0.3) -> None:
        """Nothing else arrives on either queue within ``wait`` seconds."""
        time.sleep(wait)
        for queue in (self.routing.vehicle_state_queue, self.routing.vehicle_queue):
            channel = self.connection.channel()
            try:
                extra = Queue(queue, channel=channel).get(no_ack=True)
                assert extra is None, f"unexpected message on {queue}: {extra.body!r}"
            finally:
                channel.close()
