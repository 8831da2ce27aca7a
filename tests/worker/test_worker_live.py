"""The worker against the real RabbitMQ and Redis on 127.0.0.1 (issue 5's acceptance)."""

from __future__ import annotations

import pickle
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from services import AMQP_URL, unique
from worker_helpers import (
    RecordingAPI,
    envelope,
    now_plus,
    publish,
    redis_parts,
    started_rentals,
)

from rental_fsm.model import RentalState
from rental_fsm.worker.process import Worker

pytestmark = [pytest.mark.redis, pytest.mark.rabbitmq]


def stream_for(vehicle: str, filler: int) -> list[Any]:
    """One vehicle's messages: each outcome class at least once, in a realistic order."""
    confirm = envelope(vehicle, {"central_lock": "UNLOCKED", "driving_enabled": True},
                       now_plus(1))
    messages: list[Any] = [
        confirm,                                                    # applied: start_confirmed
        confirm,                                                    # duplicate
        envelope(vehicle, {"doors_status": "OPEN"}, now_plus(2)),   # applied: interaction
        envelope(vehicle, {"central_lock": "LOCKED"}, now_plus(-3600)),  # stale
        b"{not json",                                               # dead-lettered
        envelope(vehicle, {"x": 1}, now_plus(2), type_="TripStarted"),   # ignored
    ]
    for i in range(filler):                                         # recorded
        door = "CLOSED" if i % 2 == 0 else "OPEN"
        messages.append(envelope(vehicle, {"doors_status": door}, now_plus(3 + i / 100)))
    return messages


def interleave(streams: list[list[Any]]) -> list[Any]:
    out = []
    for i in range(max(len(s) for s in streams)):
        out.extend(s[i] for s in streams if i < len(s))
    return out


@pytest.mark.slow
def test_ten_thousand_events_over_200_vehicles_each_classified_and_applied_once(
    redis_client, redis_namespace, amqp_connection, amqp_queues,  # type: ignore[no-untyped-def]
) -> None:
    queue = unique("rfsm-events")
    amqp_queues.append(queue)
    api = RecordingAPI()
    parts = redis_parts(redis_client, redis_namespace, AMQP_URL, [queue], api)
    rentals = started_rentals(parts, 200, "t1")
    streams = [stream_for(r.vehicle_id, 44) for r in rentals]
    assert publish(amqp_connection, queue, interleave(streams)) == 10_000

    worker = Worker(parts)
    assert worker.drain(idle_s=2.0, timeout_s=400) == 10_000

    counts = parts.handler.counts
    assert counts == Counter({"applied": 400, "duplicate": 200, "stale": 200,
                              "dead_lettered": 200, "ignored": 200, "recorded": 8800})
    for rental in rentals:
        stored = parts.store.get(rental.rental_id)
        assert stored.state is RentalState.RUNNING and stored.version == 3
        triggers = [e["trigger"] for e in parts.store.log(rental.rental_id)
                    if e["kind"] == "transition"]
        assert triggers == ["start", "start_confirmed", "customer_interacted"]
    # every transition's command went out exactly once: IN_RENTAL after each confirmation
    assert Counter(api.calls) == Counter(
        {(r.vehicle_id, "rental-status IN_RENTAL"): 1 for r in rentals})
    letters = parts.handler.dead_letters.list(1000)  # type: ignore[attr-defined]
    assert len(letters) == 200 and {x["body"] for x in letters} == {"{not json"}


def test_malformed_pickled_duplicated_reordered_and_unknown_messages_end_per_policy(
    redis_client, redis_namespace, amqp_connection, amqp_queues, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    queue = unique("rfsm-events")
    amqp_queues.append(queue)
    parts = redis_parts(redis_client, redis_namespace, AMQP_URL, [queue], RecordingAPI())
    (rental,) = started_rentals(parts, 1, "t2")
    marker = tmp_path / "unpickled"

    class Bomb:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.touch, (marker,))

    newer = envelope(rental.vehicle_id, {"central_lock": "UNLOCKED",
                                         "driving_enabled": True}, now_plus(5))
    older = envelope(rental.vehicle_id, {"central_lock": "LOCKED",
                                         "driving_enabled": False}, now_plus(1))
    publish(amqp_connection, queue, [pickle.dumps(Bomb())],
            content_type="application/x-python-serialize")
    publish(amqp_connection, queue, [newer, older, newer,
                                     {"metadata": {"id": "x"}},
                                     envelope(rental.vehicle_id, {}, now_plus(1),
                                              type_="SmokeDetected")])
    worker = Worker(parts)
    worker.drain(idle_s=1.0, timeout_s=60)

    assert not marker.exists(), "a pickle payload was deserialised"
    assert parts.handler.counts == Counter({"dead_lettered": 2, "applied": 1, "stale": 1,
                                            "duplicate": 1, "ignored": 1})
    assert parts.store.get(rental.rental_id).state is RentalState.RUNNING
    reasons = [x["reason"] for x in parts.handler.dead_letters.list()]  # type: ignore[attr-defined]
    assert any("not JSON; not decoded" in r for r in reasons)
    assert any("metadata lacks" in r for r in reasons)


def test_two_workers_share_the_queue_and_reach_the_same_result(
    redis_client, redis_namespace, amqp_connection, amqp_queues,  # type: ignore[no-untyped-def]
) -> None:
    queue = unique("rfsm-events")
    amqp_queues.append(queue)
    api = RecordingAPI()
    first = redis_parts(redis_client, redis_namespace, AMQP_URL, [queue], api,
                        owner="w1", prefetch=10)
    second = redis_parts(redis_client, redis_namespace, AMQP_URL, [queue], api,
                         owner="w2", prefetch=10)
    rentals = started_rentals(first, 40, "t3")
    publish(amqp_connection, queue,
            interleave([stream_for(r.vehicle_id, 10) for r in rentals]))
    workers = [Worker(first), Worker(second)]
    threads = [threading.Thread(target=w.drain, kwargs={"idle_s": 2.0, "timeout_s": 120})
               for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    handled = [w.consumer.handled for w in workers]
    assert sum(handled) == 40 * 16 and min(handled) > 0
    for rental in rentals:
        stored = first.store.get(rental.rental_id)
        assert (stored.state, stored.version) == (RentalState.RUNNING, 3)
    assert Counter(api.calls) == Counter(
        {(r.vehicle_id, "rental-status IN_RENTAL"): 1 for r in rentals})


def test_settings_from_the_environment_build_a_worker(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from rental_fsm.config import Settings
    from rental_fsm.worker.process import build_parts

    env = {"RENTAL_FSM_REDIS_URL": "redis://127.0.0.1:6379/0",
           "RENTAL_FSM_AMQP_URL": "amqps://user:pw@127.0.0.1:5671//",
           "RENTAL_FSM_EVENT_QUEUES": "a,b", "RENTAL_FSM_ONEAPI_CLIENT_ID": "id",
           "RENTAL_FSM_ONEAPI_CLIENT_SECRET": "secret", "RENTAL_FSM_PREFETCH": "7"}
    parts = build_parts(Settings.from_env(env))
    assert parts.queues == ("a", "b") and parts.prefetch == 7
    assert type(parts.connection.transport).__name__ == "SSLTransport"  # amqps:// is TLS


def test_a_plain_amqp_url_gives_the_worker_the_buffered_frame_reader() -> None:
    from rental_fsm.config import Settings
    from rental_fsm.worker.amqp_reader import BufferedTransport
    from rental_fsm.worker.process import build_parts

    env = {"RENTAL_FSM_REDIS_URL": "redis://127.0.0.1:6379/0",
           "RENTAL_FSM_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672//",
           "RENTAL_FSM_EVENT_QUEUES": "a", "RENTAL_FSM_ONEAPI_CLIENT_ID": "id",
           "RENTAL_FSM_ONEAPI_CLIENT_SECRET": "secret"}
    parts = build_parts(Settings.from_env(env))
    assert type(parts.connection.transport) is BufferedTransport
