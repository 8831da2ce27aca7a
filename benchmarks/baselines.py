"""The two baselines every throughput figure is divided by, measured in the same run.

``raw_limit``: a bare kombu consumer that writes each message with one Lua call, the calls
of a batch pipelined in one round trip, then acks the batch (``multiple=True``): no
parsing, no state machine. Same prefetch and batch size as the worker's prefetch: the
physical limit of kombu + RabbitMQ + redis-py on this machine.

``naive``: the obvious implementation: prefetch 1, one message at a time, the JSON parsed,
then the worker's reads and writes one round trip each (merge the vehicle state, find the
active rental, check the event id, load the rental and the capabilities, save the rental,
append the log), with a ``transitions.Machine`` built for every event from the product's
own transition table.
"""

from __future__ import annotations

import json
import time
from typing import Any

from kombu import Consumer, Queue
from transitions import Machine

from rental_fsm.machine import TRANSITIONS
from rental_fsm.model import RentalState

from .common import amqp, declare, publish, redis_client

_RAW_LUA = """
redis.call('SET', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
"""


def _consume(queue: str, prefetch: int, expected: int, on_message: Any,
             flush: Any = None, timeout_s: float = 300.0) -> float:
    """Consume until ``expected`` messages are done; returns seconds from first to last."""
    done = {"n": 0, "first": 0.0}
    with amqp() as conn:
        channel = conn.channel()

        def callback(message: Any) -> None:
            if not done["first"]:
                done["first"] = time.perf_counter()
            done["n"] += on_message(message)

        consumer = Consumer(channel, queues=[Queue(queue, no_declare=True)],
                            accept=["json"], prefetch_count=prefetch, no_ack=False,
                            on_message=callback)
        deadline = time.monotonic() + timeout_s
        with consumer:
            while done["n"] < expected and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=0.02)
                except TimeoutError:
                    if flush is not None:
                        done["n"] += flush()
        if flush is not None:
            done["n"] += flush()
        channel.close()
    return time.perf_counter() - done["first"]


def raw_limit(bodies: list[bytes], queue: str, namespace: str, prefetch: int) -> float:
    """events/s of consume -> pipelined Lua write -> batch ack."""
    with amqp() as conn:
        publish(conn, queue, bodies)
    client = redis_client()
    script = client.register_script(_RAW_LUA)
    pending: list[Any] = []

    def flush() -> int:
        if not pending:
            return 0
        pipe = client.pipeline(transaction=False)
        for message in pending:
            slot = message.delivery_tag % 1000
            script(keys=[f"{{{namespace}}}:raw:{slot}", f"{{{namespace}}}:rawlog:{slot}"],
                   args=[message.body], client=pipe)
        pipe.execute()
        pending[-1].ack(multiple=True)
        n = len(pending)
        pending.clear()
        return n

    def on_message(message: Any) -> int:
        pending.append(message)
        return flush() if len(pending) >= prefetch else 0

    script(keys=[f"{{{namespace}}}:raw:w", f"{{{namespace}}}:rawlog:w"], args=["warm"])
    elapsed = _consume(queue, prefetch, len(bodies), on_message, flush)
    client.close()
    return len(bodies) / elapsed


#: The product's own transition table (8 states, its edges), as a naive worker would
#: hand it to ``transitions`` on every event.
_TRANSITIONS = [{"trigger": row.trigger, "source": [s.value for s in row.source],
                 "dest": row.dest.value} for row in TRANSITIONS]
_STATES = [state.value for state in RentalState]


class _Model:
    state: str


def naive(bodies: list[bytes], vehicles: list[str], queue: str, namespace: str) -> float:
    """events/s of the obvious implementation (see the module docstring)."""
    client = redis_client()
    ns = f"{{{namespace}}}"
    pipe = client.pipeline(transaction=False)
    for i, vehicle in enumerate(vehicles):
        pipe.set(f"{ns}:naive-active:{vehicle}", f"R{i}")
        pipe.set(f"{ns}:naive-caps:{vehicle}", json.dumps({"commands": [], "vehicle_state": []}))
        pipe.set(f"{ns}:naive-rental:R{i}", json.dumps(
            {"rental_id": f"R{i}", "vehicle_id": vehicle, "state": "RUNNING", "version": 2,
             "interacted": False}))
    pipe.execute()
    with amqp() as conn:
        declare(conn, queue)
        publish(conn, queue, bodies)

    def on_message(message: Any) -> int:
        event = json.loads(message.body)
        data = event["data"]
        vehicle = data["vehicle_id"]
        props = data.get("vehicle_state") or {"central_lock": data.get("central_lock")}
        # the same reads and writes as the worker, one round trip each
        client.hset(f"{ns}:naive-vstate:{vehicle}",
                    mapping={k: json.dumps(v) for k, v in props.items()})
        rid = client.get(f"{ns}:naive-active:{vehicle}")
        if rid is None:
            message.ack()
            return 1
        rental_id = rid.decode()
        if client.sismember(f"{ns}:naive-applied:{rental_id}", event["metadata"]["id"]):
            message.ack()
            return 1
        key = f"{ns}:naive-rental:{rental_id}"
        record = json.loads(client.get(key))  # type: ignore[arg-type]
        json.loads(client.get(f"{ns}:naive-caps:{vehicle}"))  # type: ignore[arg-type]
        model = _Model()
        Machine(model=model, states=_STATES, transitions=_TRANSITIONS,
                initial=record["state"], auto_transitions=False)
        doors = props.get("doors_status", {}).get("value")
        if doors == "OPEN" and not record["interacted"]:
            model.customer_interacted()  # type: ignore[attr-defined]
            record["interacted"] = True
            client.sadd(f"{ns}:naive-applied:{rental_id}", event["metadata"]["id"])
        record["state"] = model.state
        record["version"] += 1
        client.set(key, json.dumps(record))
        client.rpush(f"{ns}:naive-log:{rental_id}", message.body)
        message.ack()
        return 1

    elapsed = _consume(queue, 1, len(bodies), on_message)
    client.close()
    return len(bodies) / elapsed
