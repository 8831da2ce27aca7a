"""``python -m benchmarks --quick`` runs every scenario and writes every field (issue 9).

No timing assertions: the numbers are for operators, this only checks that the benchmark
itself keeps working (small sizes, real Redis and RabbitMQ, everything cleaned up).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.redis, pytest.mark.rabbitmq, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]

FIELDS = {
    "throughput": ["events_per_s", "raw_limit_events_per_s", "naive_events_per_s",
                   "ratio_to_raw_limit", "ratio_to_naive"],
    "scale_out": ["one_worker_events_per_s", "two_workers_events_per_s", "ratio",
                  "ceiling_events_per_s", "ceiling_ratio"],
    "latency": ["p50_ms", "p99_ms", "p99_9_ms", "max_ms"],
    "timers": ["lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms", "fired",
               "fired_exactly_once"],
}


def test_quick_run_writes_every_field(redis_client, amqp_connection, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "quick.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert "errors" not in result, result.get("errors")
    for section, names in FIELDS.items():
        for name in names:
            fig = result[section][name]
            assert fig["value"] is not None and fig["runs"] >= 1 and fig["cores"] >= 1, name
    memory = result["memory"]
    for path in (("redis", "bytes_per_rental_excl_log"), ("worker_rss", "bytes_per_rental_slope"),
                 ("churn", "rss_growth_pct")):
        assert memory[path[0]][path[1]]["value"] is not None
    assert result["scale_out"]["rentals_identical"]["value"] is True
    for run in ("one", "two", "ceiling"):  # where the CPU went, figures like any other
        figures = [result["scale_out"]["busy_cores"][run],
                   *result["scale_out"]["cpu_us_per_event"][run].values()]
        assert len(figures) == 4  # cores busy; the workers, Redis and RabbitMQ
        assert all(f["value"] is not None and f["runs"] >= 1 and f["cores"] >= 1
                   for f in figures), run
    batches = result["latency"]["batch_sizes"]  # every handled message in some batch
    assert 1 <= batches["n"] <= result["latency"]["p50_ms"]["events"]
    assert 1 <= batches["p50"] <= batches["max"] <= 100  # the prefetch
    timers = result["timers"]
    assert timers["fired_exactly_once"]["value"] == timers["due_within_1s"]
    # every fired timer's commands went out, none left in the outbox
    assert timers["commands_sent"] >= timers["due_within_1s"]
    assert timers["commands_drained_s"] is not None
    assert result["replay"]["status"] in ("ok", "skipped: replay not available")
    assert "figure" in proc.stdout  # the human-readable table


def test_progress_that_lands_between_two_polls_still_has_a_duration(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Found when a fast worker did the whole quick run between two polls: the duration
    was 0 and the throughput a ZeroDivisionError. It is now measured from the last poll
    that saw no progress, so it is an upper bound, never zero."""
    from benchmarks import workers

    counts = iter([0, 0, 0, 600])
    monkeypatch.setattr(workers, "log_lines", lambda *a: next(counts))
    elapsed, lines = workers.wait_for_lines(None, None, [], 600, timeout_s=5, poll_s=0.01)  # type: ignore[arg-type]
    assert lines == 600
    assert 0.005 < elapsed < 1


def test_the_idle_poll_hook_runs_even_when_the_first_poll_already_sees_progress(
        monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Found when a worker committed before the first poll: the CPU window was never
    started (its hook ran only on polls without progress) and stopping it failed. The
    read of the starting count is such a poll too."""
    from benchmarks import workers

    counts = iter([0, 600])
    calls: list[int] = []
    monkeypatch.setattr(workers, "log_lines", lambda *a: next(counts))
    elapsed, lines = workers.wait_for_lines(None, None, [], 600, timeout_s=5, poll_s=0.01,  # type: ignore[arg-type]
                                            on_idle_poll=lambda: calls.append(1))
    assert lines == 600 and elapsed > 0
    assert calls == [1]
