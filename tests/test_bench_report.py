"""The benchmark report's verdicts and derived figures (benchmarks/report.py)."""

from __future__ import annotations

from typing import Any

from benchmarks import report


def _result(**throughput: float) -> dict[str, Any]:
    return {"throughput": {k: {"value": v, "runs": 3} for k, v in throughput.items()},
            "scale_out": {"ratio": {"value": 1.534, "runs": 3}}}


def _row(result: dict[str, Any], label: str) -> tuple[str, str, str, str, str]:
    return next(r for r in report.rows(result) if r[0] == label)


def test_a_miss_says_by_how_much_of_the_target() -> None:
    result = _result(ratio_to_raw_limit=0.529, ratio_to_naive=6.84,
                     raw_limit_events_per_s=9528.2, naive_events_per_s=737.2)
    assert _row(result, "worker / raw_limit")[4] == "met"
    assert _row(result, "worker / naive")[4] == "missed by 32 %"
    assert _row(result, "2 workers / 1 worker")[4] == "missed by 4.1 %"
    close = {"scale_out": {"ratio": {"value": 1.595}}}
    assert _row(close, "2 workers / 1 worker")[4] == "missed by 0.3 %"  # never "by 0 %"


def test_the_naive_target_is_put_in_terms_of_raw_limit() -> None:
    result = _result(raw_limit_events_per_s=6600.0, naive_events_per_s=570.0)
    row = _row(result, "raw_limit / naive (derived)")
    assert row[1] == "11.6" and row[2] == "10x naive = 0.864 x raw_limit"
    assert _row(_result(raw_limit_events_per_s=6600.0), "raw_limit / naive (derived)")[1] == "-"


def test_a_conditional_figure_that_was_not_measured_has_no_row() -> None:
    labels = [r[0] for r in report.rows(_result())]
    assert "latency p99 at half capacity (ms)" not in labels
    measured = {"latency": {"at_half_capacity": {"p99": {"value": 4.2}, "rate_per_s": 450}}}
    assert _row(measured, "latency p99 at half capacity (ms)")[1:3] == ("4.200", "at 450/s")


def test_the_ceiling_row_names_its_worker_count_and_the_busy_cores() -> None:
    result = {"scale_out": {"ceiling_workers": 3, "ceiling_ratio": {"value": 1.58},
                            "ceiling_events_per_s": {"value": 12800.0},
                            "busy_cores": {"two": {"value": 1.71, "runs": 3},
                                           "ceiling": {"value": 1.9, "runs": 3}}}}
    row = _row(result, "3 workers / 1 worker (ceiling)")
    assert row[1:3] == ("1.580", "12,800.0/s, 1.900 cores busy")


def test_the_cpu_window_counts_a_spinning_process_and_puts_it_in_its_group() -> None:
    """/proc: a busy loop here is counted in this process's group, not the other's, and
    the machine was at least as busy as this process was."""
    import os
    import time

    from benchmarks.common import CpuWindow

    window = CpuWindow({"me": [os.getpid()], "gone": [2 ** 22 + 1]})  # above pid_max
    window.start()
    started, cpu0 = time.perf_counter(), time.process_time()
    while time.process_time() - cpu0 < 0.3 and time.perf_counter() - started < 10:
        pass
    window.stop()
    wall, spun = time.perf_counter() - started, time.process_time() - cpu0
    assert window.cpu_s["gone"] == 0
    assert abs(window.cpu_s["me"] - spun) <= 0.05  # clock ticks of 10 ms
    assert window.busy_cores is not None
    assert 0.8 * spun / wall <= window.busy_cores <= (os.cpu_count() or 1)


def test_the_cpu_rows_say_where_an_event_s_cpu_went() -> None:
    def fig(value: float) -> dict[str, Any]:  # as throughput.py writes them
        return {"value": value, "runs": 3, "cores": 2, "samples": [value] * 3}

    result = {"scale_out": {"cpu_us_per_event": {
        "one": {"workers": fig(80.5), "redis": fig(29.7), "rabbitmq": fig(28.0)},
        "two": {"workers": fig(81.0), "redis": fig(26.2), "rabbitmq": fig(27.5)}}}}
    assert _row(result, "1 worker: its CPU an event (us)")[1:3] == (
        "80.5", "Redis 29.7, RabbitMQ 28.0")
    assert _row(result, "2 workers: their CPU an event (us)")[1] == "81.0"
