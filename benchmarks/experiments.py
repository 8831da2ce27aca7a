"""Measured gains of proposed worker optimizations, without changing rental_fsm.

``python -m benchmarks.experiments``: the same event stream through ``EventHandler.handle``
in this process (no AMQP, so only the handler's own cost is compared), once with the stock
``RedisRentalStore`` and once with ``PrefetchingStore``, a prototype that fetches what the
handler reads for one event in two pipelined round trips instead of four (vehicle index +
capabilities, then dedupe set + record). py-spy shows the worker spends most of its time
waiting on Redis round trips (about six per recorded event), so fewer round trips is where
the time is. The prototype is for measurement only (a per-event read cache, consumed once).

Second: timers fired per second by ``Worker.turn`` (fire, then sweep the outbox, in one
loop) against ``TimerRunner.tick`` alone: the gain of giving the outbox its own thread.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import datetime, timezone
from typing import Any

from rental_fsm.clock import SystemClock
from rental_fsm.engine import Engine
from rental_fsm.events.handler import EventHandler
from rental_fsm.model import Rental
from rental_fsm.store import Keys
from rental_fsm.store.dead_letters import RedisDeadLetters
from rental_fsm.store.redis import RedisRentalStore

from .common import drop_namespace, interleaved, redis_client, seed_running, unique


class PrefetchingStore(RedisRentalStore):
    """Reads of one event batched: active_rental also fetches the capabilities;
    was_applied also fetches the record. Each prefetched value is used at most once."""

    _caps: dict[str, Any]
    _records: dict[str, Rental]

    def active_rental(self, vehicle_id: str) -> str | None:
        pipe = self._client.pipeline(transaction=False)
        pipe.get(self.keys.vehicle_active(vehicle_id))
        pipe.get(self.keys.capabilities(vehicle_id))
        rid, caps = pipe.execute()
        self._caps = {vehicle_id: None if caps is None else json.loads(caps)}
        return None if rid is None else rid.decode()

    def capabilities(self, vehicle_id: str) -> dict[str, Any] | None:
        cached = getattr(self, "_caps", {})
        if vehicle_id in cached:
            return cached.pop(vehicle_id)  # type: ignore[no-any-return]
        return super().capabilities(vehicle_id)

    def was_applied(self, rental_id: str, event_id: str) -> bool:
        pipe = self._client.pipeline(transaction=False)
        pipe.sismember(self.keys.applied(rental_id), event_id)
        pipe.get(self.keys.rental(rental_id))
        applied, raw = pipe.execute()
        if raw is not None:
            self._records = {rental_id: Rental.from_dict(json.loads(raw))}
        return bool(applied)

    def get(self, rental_id: str) -> Rental:
        cached = getattr(self, "_records", {})
        if rental_id in cached:
            return cached.pop(rental_id)
        return super().get(rental_id)


def handler_rate(store_cls: type[RedisRentalStore], vehicles: int, per_vehicle: int) -> float:
    namespace = unique("exp")
    client = redis_client()
    keys = Keys(namespace)
    clock = SystemClock()
    store = store_cls(client, keys)
    engine = Engine(store, clock=clock)
    handler = EventHandler(store, engine, RedisDeadLetters(client, keys, clock), clock=clock)
    try:
        rentals = seed_running(store, vehicles, "x")
        bodies = interleaved([r.vehicle_id for r in rentals], per_vehicle,
                             datetime.now(timezone.utc))
        started = time.perf_counter()
        for body in bodies:
            handler.handle(body, content_type="application/json", queue="q")
        rate = len(bodies) / (time.perf_counter() - started)
        assert handler.counts["applied"] == vehicles, handler.counts
        return rate
    finally:
        drop_namespace(client, namespace)
        client.close()


def _alternate(a: Any, b: Any, runs: int) -> tuple[list[float], list[float]]:
    """A and B alternately, so both see the same background load (the box is shared)."""
    first, second = [], []
    for _ in range(runs):
        first.append(a())
        second.append(b())
    return first, second


def main() -> int:
    from rental_fsm.logs import configure_logging

    from . import timers

    configure_logging(level="error")
    stock, fetch = _alternate(lambda: handler_rate(RedisRentalStore, 1000, 5),
                              lambda: handler_rate(PrefetchingStore, 1000, 5), 5)
    ratios = sorted(b / a for a, b in zip(stock, fetch, strict=True))
    print(json.dumps({"handler_events_per_s_stock": [round(x) for x in stock],
                      "handler_events_per_s_prefetching": [round(x) for x in fetch],
                      "gain_median_of_pairs": round(statistics.median(ratios), 3)}))
    turn, tick = _alternate(
        lambda: timers.run(False, sizes=(20_000, 10_000))["fire_rate_per_s"]["value"],
        lambda: timers.run(False, sizes=(20_000, 10_000), sweep=False)["fire_rate_per_s"]
        ["value"], 3)
    ratios = sorted(b / a for a, b in zip(turn, tick, strict=True))
    print(json.dumps({"timers_per_s_turn_with_outbox_sweep": turn,
                      "timers_per_s_fire_only": tick,
                      "gain_median_of_pairs": round(statistics.median(ratios), 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
