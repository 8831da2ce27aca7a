"""`make demo` / `rental-fsm demo`: every scenario of the seeds, fast, with a summary."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from services import AMQP_URL, REDIS_HOST, REDIS_PORT

from rental_fsm.demo import SCENARIOS, scenarios
from rental_fsm.demo.cli import main
from rental_fsm.model import EndReason


def summary(folder: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((folder / "summary.json").read_text())


def test_the_embedded_demo_runs_every_scenario_as_expected(tmp_path: Path, capsys,  # type: ignore[no-untyped-def]
                                                           monkeypatch) -> None:
    monkeypatch.delenv("RENTAL_FSM_REDIS_URL", raising=False)
    monkeypatch.delenv("RENTAL_FSM_AMQP_URL", raising=False)
    assert main(["--speed", "30", "--rentals", str(len(SCENARIOS)),
                 "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "every scenario ended as expected" in out
    assert "kombu memory://" in out and "in memory" in out
    data = summary(tmp_path)
    assert data["ok"] and data["store"] == "memory" and data["amqp"] == "memory"
    assert {r["scenario"] for r in data["rentals"]} == {s.name for s in SCENARIOS}
    for rental in data["rentals"]:
        log = (tmp_path / "logs" / f"{rental['rental_id']}.jsonl").read_text().splitlines()
        entries = [json.loads(line) for line in log]
        assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
        assert [e["trigger"] for e in entries if e["kind"] == "transition"] == \
            rental["triggers"]
    assert (tmp_path / "rentals.jsonl").exists()
    # its own logs replay with no divergence, and each scenario has a path diagram
    assert data["replay_divergences"] == []
    assert "no divergence" in out
    diagrams = {p.stem for p in (tmp_path / "diagrams").glob("*.mmd")}
    assert {d.rsplit("-", 1)[0] for d in diagrams} == {s.name for s in SCENARIOS}


def test_a_scenario_that_ends_otherwise_than_expected_fails_the_demo(
    tmp_path: Path, capsys, monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.delenv("RENTAL_FSM_REDIS_URL", raising=False)
    monkeypatch.delenv("RENTAL_FSM_AMQP_URL", raising=False)
    wrong = replace(SCENARIOS[0], expect_reason=EndReason.FORCE_ENDED)
    monkeypatch.setattr(scenarios, "SCENARIOS", (wrong,))
    monkeypatch.setattr("rental_fsm.demo.runner.SCENARIOS", (wrong,))
    assert main(["--speed", "30", "--rentals", "1", "--output", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "SOME SCENARIOS FAILED" in out and "happy_path" in out
    assert summary(tmp_path)["ok"] is False


@pytest.mark.redis
@pytest.mark.rabbitmq
def test_the_same_demo_passes_on_real_redis_and_rabbitmq(
    tmp_path: Path, capsys, monkeypatch, redis_client, amqp_connection,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("RENTAL_FSM_REDIS_URL", f"redis://{REDIS_HOST}:{REDIS_PORT}/0")
    monkeypatch.setenv("RENTAL_FSM_AMQP_URL", AMQP_URL)
    assert main(["--speed", "30", "--rentals", str(len(SCENARIOS)),
                 "--output", str(tmp_path)]) == 0
    data = summary(tmp_path)
    assert data["ok"] and data["store"] == "redis" and data["amqp"] == "rabbitmq"
    assert data["replay_divergences"] == []
    assert list(redis_client.scan_iter(match="*rental-fsm-demo-*")) == []  # cleaned up


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    assert main(["--speed", "0", "--output", str(tmp_path)]) == 2
