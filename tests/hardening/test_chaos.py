"""The short chaos run of CI: workers SIGKILLed, RabbitMQ restarted, events dropped and
duplicated; nothing lost, nothing done twice, every rental consistent with its log."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from services import AMQP_URL, REDIS_HOST, REDIS_PORT

from rental_fsm.config import Settings
from rental_fsm.demo.chaos import ChaosOptions, run_chaos

pytestmark = [pytest.mark.redis, pytest.mark.rabbitmq, pytest.mark.slow]


def test_a_short_chaos_run_loses_nothing_and_does_nothing_twice(
    tmp_path: Path, redis_client, amqp_connection,  # type: ignore[no-untyped-def]
) -> None:
    settings = Settings(redis_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/0", amqp_url=AMQP_URL)
    out = io.StringIO()
    report = run_chaos(ChaosOptions(seconds=30, workers=2, speed=10, rentals_per_wave=8,
                                    fault_every=2.0, broker_restarts=1, seed=7,
                                    output=tmp_path), settings, out=out)
    data = report.to_dict()
    assert data["faults"].get("worker_sigkill", 0) >= 1, data["faults"]
    assert data["faults"].get("rabbitmq_restart", 0) == 1, data["faults"]
    assert data["rentals"] >= 8 and data["events_published"] > 50
    details = {k: data.get(k) for k in ("lost_ids", "done_twice_details",
                                          "inconsistent_details")}
    assert (data["lost"], data["done_twice"], data["inconsistent"]) == (0, 0, 0), details
    assert data["events_handled"] == data["events_published"]
    assert (tmp_path / "chaos-report.json").exists()
    assert list(redis_client.scan_iter(match="*rental-fsm-chaos-*")) == []
