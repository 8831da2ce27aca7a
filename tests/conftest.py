"""Shared fixtures: real services on loopback, each test in its own namespace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
from services import AMQP_URL, REDIS_HOST, REDIS_PORT, unavailable, unique


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture
def redis_client():  # type: ignore[no-untyped-def]
    """A client for the real Redis; skipped locally, failed under CI, when it is down."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", exc)
    yield client
    client.close()


@pytest.fixture
def redis_namespace(redis_client) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    namespace = unique("rfsm-test")
    yield namespace
    keys = list(redis_client.scan_iter(match=f"{namespace}*", count=1000))
    keys += list(redis_client.scan_iter(match=f"{{{namespace}}}*", count=1000))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def amqp_connection():  # type: ignore[no-untyped-def]
    """A kombu connection to the real RabbitMQ; skipped locally, failed under CI."""
    from kombu import Connection

    conn = Connection(AMQP_URL, connect_timeout=5)
    try:
        conn.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:  # kombu raises OperationalError and socket errors here
        unavailable("RabbitMQ", exc)
    yield conn
    conn.release()


@pytest.fixture
def amqp_queues(amqp_connection) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """Append the names of queues this test declares; they are deleted afterwards."""
    names: list[str] = []
    yield names
    # A fresh connection: a test may have restarted the broker under the old one.
    with amqp_connection.clone() as conn:
        conn.ensure_connection(max_retries=10, interval_start=0.5)
        channel = conn.channel()
        for name in names:
            try:
                channel.queue_delete(name)
            except Exception:  # already gone: the channel is closed by the broker
                channel = conn.channel()
        channel.close()
