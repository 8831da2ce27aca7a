"""Scenario 2: publish-to-commit latency at a paced rate.

A publisher in a separate process (so it does not share the worker's GIL) publishes at a
fixed rate, stamping each message with its publish time (an AMQP header). The worker is
the real ``Worker`` (kombu consumer + ``EventHandler`` + store) running in this process:
its handler is wrapped so the time is taken when ``handle_batch`` returns, i.e. after the
store's commit of the message's batch and before the ack.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import datetime, timezone
from typing import Any

from kombu import Connection

from rental_fsm.clock import SystemClock
from rental_fsm.effects import EffectRunner
from rental_fsm.engine import Engine
from rental_fsm.events.handler import EventHandler
from rental_fsm.store import Keys
from rental_fsm.store.dead_letters import RedisDeadLetters
from rental_fsm.store.redis import RedisRentalStore
from rental_fsm.worker.amqp_reader import connection as amqp_connection
from rental_fsm.worker.process import Parts, Worker

from .common import (
    AMQP_URL,
    amqp,
    declare,
    delete_queues,
    drop_namespace,
    figure,
    interleaved,
    percentiles,
    redis_client,
    seed_running,
    unique,
)
from .stubs import NullAPI


def _paced_publisher(queue: str, bodies: list[bytes], rate: float) -> None:
    with Connection(AMQP_URL, heartbeat=0) as conn, conn.Producer() as producer:
        start = time.perf_counter()
        for i, body in enumerate(bodies):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            producer.publish(body, exchange="", routing_key=queue,
                             content_type="application/json", content_encoding="binary",
                             delivery_mode=2, headers={"x-bench-t": time.time()})


def measure(rate: float, seconds: float, vehicles: int) -> dict[str, Any]:
    namespace, queue = unique("lat"), unique("lat-q")
    client = redis_client()
    keys = Keys(namespace)
    clock = SystemClock()
    store = RedisRentalStore(client, keys)
    engine = Engine(store, clock=clock)
    handler = EventHandler(store, engine, RedisDeadLetters(client, keys, clock), clock=clock)
    parts = Parts(store=store, timers=store.timers, engine=engine, handler=handler,
                  effects=EffectRunner(store, engine, NullAPI(), clock=clock, owner="bench"),
                  connection=amqp_connection(AMQP_URL, heartbeat=0), queues=(queue,),
                  prefetch=100)
    samples: list[float] = []
    batches: list[int] = []  # messages a handle_batch call
    original = handler.handle_batch

    def timed(messages: Any) -> Any:
        result = original(messages)
        done = time.time()
        batches.append(len(messages))
        for message in messages:
            sent = (message.headers or {}).get("x-bench-t")
            if sent is not None:
                samples.append((done - float(sent)) * 1000)
        return result

    handler.handle_batch = timed  # type: ignore[method-assign]
    total = int(rate * seconds)
    try:
        rentals = seed_running(store, vehicles, "l")
        per_vehicle = -(-total // vehicles)
        bodies = interleaved([r.vehicle_id for r in rentals], per_vehicle,
                             datetime.now(timezone.utc))[:total]
        with amqp() as conn:
            declare(conn, queue)
        worker = Worker(parts)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        worker.consumer.ready.wait(10)
        publisher = multiprocessing.get_context("spawn").Process(
            target=_paced_publisher, args=(queue, bodies, rate))
        publisher.start()
        publisher.join(seconds * 3 + 60)
        deadline = time.monotonic() + 120
        while len(samples) < total and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.stop()
        thread.join(30)
    finally:
        drop_namespace(client, namespace)
        delete_queues([queue])
        client.close()
    return {"rate_per_s": rate, "events": total, "ms": percentiles(samples),
            "samples_ms": [round(s, 2) for s in samples],
            "batch_sizes": percentiles(batches)}


def run(quick: bool, capacity: float | None = None) -> dict[str, Any]:
    seconds = 2.0 if quick else 15.0
    vehicles = 100 if quick else 1000
    main = measure(1000.0, seconds, vehicles)
    out: dict[str, Any] = {
        "mode": "in-process Worker (consumer thread + background loop), publisher process",
        "rate_per_s": 1000,
        "p50_ms": figure(main["ms"].get("p50"), 1, events=main["events"]),
        "p99_ms": figure(main["ms"].get("p99"), 1, events=main["events"]),
        "p99_9_ms": figure(main["ms"].get("p99_9"), 1, events=main["events"]),
        "max_ms": figure(main["ms"].get("max"), 1, events=main["events"]),
        "batch_sizes": main["batch_sizes"],
        "histogram_ms": main["samples_ms"],
    }
    if capacity and capacity < 1000:
        # 1,000/s is above what one worker sustains here: the queue grows and latency is
        # queueing delay. Also measured at half the measured capacity.
        half = round(capacity / 2)
        low = measure(float(half), seconds, vehicles)
        out["at_half_capacity"] = {"rate_per_s": half, **{
            k: figure(low["ms"].get(k), 1, events=low["events"])
            for k in ("p50", "p99", "p99_9", "max")}}
    return out
