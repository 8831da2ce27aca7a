"""Access to the real Redis and RabbitMQ on 127.0.0.1, with the CI policy.

On a developer's machine without a server the tests that need it are skipped; under
``CI=true`` a missing server fails them, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import uuid

import pytest

REDIS_HOST = "127.0.0.1"
REDIS_PORT = int(os.environ.get("RENTAL_FSM_TEST_REDIS_PORT", "6379"))
AMQP_URL = os.environ.get("RENTAL_FSM_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(name: str, reason: object) -> None:
    """Skip locally, fail under CI."""
    message = f"{name} is not reachable on 127.0.0.1: {reason}"
    if in_ci():
        pytest.fail(f"{message} (required when CI=true)", pytrace=False)
    pytest.skip(message)


def unique(prefix: str = "test") -> str:
    """A name no other test (or test run) on the shared servers uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
