"""The real services CI runs against, and the policy that a missing one fails CI."""

from __future__ import annotations

import pytest
import services


@pytest.mark.redis
def test_redis_answers_and_each_test_gets_its_own_namespace(redis_client, redis_namespace) -> None:  # type: ignore[no-untyped-def]
    key = f"{redis_namespace}:probe"
    redis_client.set(key, "1")
    assert redis_client.get(key) == b"1"
    assert redis_namespace != services.unique("rfsm-test")


@pytest.mark.rabbitmq
def test_rabbitmq_round_trips_a_json_message(amqp_connection, amqp_queues) -> None:  # type: ignore[no-untyped-def]
    from kombu import Queue

    name = services.unique("rfsm-test")
    amqp_queues.append(name)
    queue = Queue(name, routing_key=name, auto_delete=False)
    with amqp_connection.Producer(serializer="json") as producer:
        producer.publish({"hello": "world"}, exchange="", routing_key=name, declare=[queue])
    simple = amqp_connection.SimpleQueue(queue)
    message = simple.get(timeout=10)
    assert message.payload == {"hello": "world"}
    assert message.content_type == "application/json"
    message.ack()
    simple.close()


def test_a_missing_service_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        services.unavailable("Redis", "connection refused")


def test_a_missing_service_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required when CI=true"):
        services.unavailable("Redis", "connection refused")
