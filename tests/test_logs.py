"""Logging is configured at the edge and never lets a secret through."""

from __future__ import annotations

import io
import json
import logging

import structlog

from rental_fsm.logs import configure_logging, redact_secrets, redact_text

TOKEN = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.sig"
SECRET = "s3cr3t-client-secret"


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_level_timestamp_and_context() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    structlog.get_logger("t").info("rental.transitioned", rental_id="r-1", dest="RUNNING")
    (line,) = lines(stream)
    assert line["event"] == "rental.transitioned"
    assert line["level"] == "info" and line["rental_id"] == "r-1"
    assert str(line["timestamp"]).endswith("Z")


def test_tokens_secrets_and_authorization_headers_are_redacted_everywhere() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    log = structlog.get_logger("t")
    log.info("call", headers={"Authorization": f"Bearer {TOKEN}"}, client_secret=SECRET)
    log.info("token", response={"access_token": TOKEN, "expires_in": 900})
    log.info("text", detail=f"sent Authorization: Bearer {TOKEN} and client_secret={SECRET}")
    log.info("url", amqp="amqps://user:" + SECRET + "@broker.example:5671/vhost")
    try:
        raise RuntimeError(f"failed with token {TOKEN!r} access_token={TOKEN}")
    except RuntimeError:
        log.exception("boom")
    output = stream.getvalue()
    assert TOKEN not in output and SECRET not in output
    assert "Bearer ***" in output
    parsed = lines(stream)
    assert parsed[0]["headers"] == {"Authorization": "***"}
    assert parsed[0]["client_secret"] == "***"
    assert parsed[1]["response"] == {"access_token": "***", "expires_in": 900}
    assert "user:***@broker.example" in str(parsed[3]["amqp"])


def test_stdlib_loggers_go_through_the_same_redaction() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    logging.getLogger("urllib3.connectionpool").warning("header Authorization: Bearer %s", TOKEN)
    output = stream.getvalue()
    assert TOKEN not in output
    assert lines(stream)[0]["logger"] == "urllib3.connectionpool"


def test_console_format_is_readable_and_redacted() -> None:
    stream = io.StringIO()
    configure_logging(fmt="console", stream=stream)
    structlog.get_logger("t").info("call", authorization=f"Bearer {TOKEN}")
    output = stream.getvalue()
    assert "call" in output and TOKEN not in output
    assert not output.lstrip().startswith("{")


def test_level_filters_lines() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="warning", stream=stream)
    structlog.get_logger("t").info("hidden")
    structlog.get_logger("t").warning("shown")
    assert [line["event"] for line in lines(stream)] == ["shown"]


def test_redaction_leaves_harmless_values_alone() -> None:
    event = redact_secrets(None, "info", {"event": "x", "vehicle_id": "JQ7RP", "count": 3,
                                          "token_type": "bearer", "password": ""})
    assert event == {"event": "x", "vehicle_id": "JQ7RP", "count": 3,
                     "token_type": "bearer", "password": ""}
    assert redact_text("no secrets here") == "no secrets here"
