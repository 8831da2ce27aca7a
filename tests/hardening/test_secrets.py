"""No secret leaves the process: logs, rental logs, summaries, dead letters, reprs."""

from __future__ import annotations

import io
from pathlib import Path

from rental_fsm.config import Settings
from rental_fsm.demo import DemoOptions, run_demo
from rental_fsm.logs import configure_logging
from rental_fsm.oneapi.client import OneAPIClient
from rental_fsm.store.dead_letters import InMemoryDeadLetters


def test_a_full_demo_run_leaks_no_secret_anywhere(tmp_path: Path) -> None:
    """Seed 000: 'keep your OneAPI credentials safely stored in your backend services'."""
    log_stream = io.StringIO()
    configure_logging(fmt="json", level="debug", stream=log_stream)
    screen = io.StringIO()
    report = run_demo(DemoOptions(speed=30, rentals=10, output=tmp_path), out=screen)
    assert report.ok
    assert len(report.secrets) >= 2, "the scan needs the secret and at least one token"
    texts = {"log lines": log_stream.getvalue(), "screen": screen.getvalue()}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    assert any("rental.transitioned" in t for t in texts.values())
    for where, text in texts.items():
        for secret in report.secrets:
            assert secret not in text, f"a secret leaked into {where}"


def test_reprs_and_errors_of_settings_and_clients_hide_secrets() -> None:
    secret = "s3cr3t-value-for-the-scan"
    settings = Settings.from_env({"RENTAL_FSM_ONEAPI_CLIENT_SECRET": secret,
                                  "RENTAL_FSM_AMQP_URL": f"amqps://u:{secret}@h:5671//"})
    client = OneAPIClient("http://127.0.0.1:9", "client#1", settings.oneapi_client_secret,
                          connect_timeout=0.2, read_timeout=0.2)
    texts = [repr(settings), str(settings), repr(client), repr(client.auth),
             repr(settings.oneapi_client_secret)]
    try:
        client.get_vehicle("V1")  # nothing listens on port 9: the error must not leak
    except Exception as exc:  # noqa: BLE001 - any error text is scanned
        texts += [str(exc), repr(exc)]
    for text in texts:
        assert secret not in text


def test_dead_letters_keep_the_body_but_redact_headers() -> None:
    letters = InMemoryDeadLetters()
    letters.put(b"not json", reason="bad", queue="q",
                headers={"Authorization": "Bearer eyJabc.def.ghi", "x-api-key": "k-123"})
    (letter,) = letters.list()
    assert "eyJabc" not in letter["headers"] and "k-123" not in letter["headers"]
    assert letter["body"] == "not json"
