"""Settings come from RENTAL_FSM_* variables, report every problem, and hide secrets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rental_fsm.config import Secret, Settings
from rental_fsm.errors import ConfigurationError
from rental_fsm.model import Timer


def test_defaults_follow_seed_002() -> None:
    """Seed 002: 45 s to rental/start and rental/end; auto-cancel after 60 s."""
    settings = Settings.from_env({})
    assert settings.start_timeout == timedelta(seconds=45)
    assert settings.end_timeout == timedelta(seconds=45)
    assert settings.auto_cancel == timedelta(seconds=60)
    assert settings.redis_url is None and settings.amqp_url is None
    assert settings.retention == timedelta(days=30)
    assert settings.timer_horizon == timedelta(seconds=10)
    with pytest.raises(ConfigurationError, match="at most 240"):
        Settings.from_env({"RENTAL_FSM_TIMER_HORIZON_S": "600"})


def test_every_variable_is_read() -> None:
    env = {
        "RENTAL_FSM_REDIS_URL": "redis://127.0.0.1:6379/3",
        "RENTAL_FSM_AMQP_URL": "amqps://f-FLT23-c-CNSM23A:pw@broker:5671/vh",
        "RENTAL_FSM_EVENT_QUEUES": "vehicle-state, vehicle",
        "RENTAL_FSM_DECLARE_QUEUES": "true",
        "RENTAL_FSM_PREFETCH": "50",
        "RENTAL_FSM_ONEAPI_URL": "http://127.0.0.1:8080",
        "RENTAL_FSM_ONEAPI_CLIENT_ID": "EXFL29#cl1",
        "RENTAL_FSM_ONEAPI_CLIENT_SECRET": "very-secret",
        "RENTAL_FSM_START_TIMEOUT_S": "4.5",
        "RENTAL_FSM_END_TIMEOUT_S": "9",
        "RENTAL_FSM_AUTO_CANCEL_S": "6",
        "RENTAL_FSM_NAMESPACE": "fleet-a",
        "RENTAL_FSM_RETENTION_DAYS": "7",
        "RENTAL_FSM_TIMER_HORIZON_S": "0",
        "RENTAL_FSM_LOG_FORMAT": "JSON",
        "RENTAL_FSM_LOG_LEVEL": "debug",
    }
    s = Settings.from_env(env)
    assert s.event_queues == ("vehicle-state", "vehicle")
    assert s.declare_queues is True and s.prefetch == 50
    assert s.oneapi_client_id == "EXFL29#cl1"
    assert s.oneapi_client_secret.reveal() == "very-secret"
    assert s.durations()[Timer.START_TIMEOUT] == timedelta(seconds=4.5)
    assert s.durations()[Timer.AUTO_CANCEL] == timedelta(seconds=6)
    assert s.durations()[Timer.STATE_CHECK] < s.start_timeout
    assert (s.namespace, s.log_format, s.log_level) == ("fleet-a", "json", "debug")
    assert s.retention == timedelta(days=7)
    assert s.timer_horizon == timedelta(0)  # zero: timers are never decided ahead


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({
            "RENTAL_FSM_REDIS_URL": "http://nope",
            "RENTAL_FSM_START_TIMEOUT_S": "-1",
            "RENTAL_FSM_AUTO_CANCEL_S": "soon",
            "RENTAL_FSM_PREFETCH": "0",
            "RENTAL_FSM_NAMESPACE": "a:b",
            "RENTAL_FSM_EVENT_QUEUES": "a,,b",
            "RENTAL_FSM_LOG_LEVEL": "loud",
            "RENTAL_FSM_TIMER_HORIZON_S": "-1",
            "RENTAL_FSM_RETENTION_DAYS": "0",
        })
    assert len(info.value.problems) == 9
    assert isinstance(info.value, ValueError)
    assert "RENTAL_FSM_REDIS_URL" in str(info.value)


def test_secrets_never_show_in_reprs() -> None:
    s = Settings.from_env({
        "RENTAL_FSM_ONEAPI_CLIENT_SECRET": "very-secret",
        "RENTAL_FSM_AMQP_URL": "amqp://user:amqp-pass@127.0.0.1//",
    })
    for text in (repr(s), str(s), str(s.redacted()), repr(s.oneapi_client_secret)):
        assert "very-secret" not in text and "amqp-pass" not in text
    assert s.redacted()["amqp_url"] == "amqp://user:***@127.0.0.1//"
    assert Secret("x") == Secret("x") and not Secret("")
