"""``python -m benchmarks.profile`` (issue 9: where a target is missed, where the time
goes): py-spy's raw stacks aggregated by thread and function, and a small live run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.profile import CONSUME_FRAME, aggregate, consume_thread, frame_name, render

ROOT = Path(__file__).resolve().parents[1]
CONSUME = "KombuEventConsumer.consume (/x/rental_fsm/worker/consumer.py:120)"
READ = ("_HiredisParser.read_from_socket "
        "(/v/lib/python3.11/site-packages/redis/_parsers/hiredis.py:9)")
STEP = "EventHandler._step (/x/rental_fsm/events/handler.py:200)"


def test_frames_merge_call_sites_and_shorten_paths() -> None:
    assert frame_name(CONSUME) == CONSUME_FRAME
    assert frame_name(READ) == "_HiredisParser.read_from_socket (redis/_parsers/hiredis.py)"
    assert frame_name("loads (/x/rental_fsm/jsonfast.py:1)") == \
        frame_name("loads (/x/rental_fsm/jsonfast.py:40)")


def test_samples_are_counted_by_thread_inclusive_once_and_self_at_the_leaf() -> None:
    raw = [
        f"thread (1): MainThread;{CONSUME};{STEP};{STEP} 3",  # recursion: inclusive once
        f"thread (1): MainThread;{CONSUME};{READ} 5",
        "thread (2): rental-fsm-timers;_loop (/x/rental_fsm/worker/process.py:9) 12",
    ]
    threads = aggregate(raw)
    main = threads["thread (1): MainThread"]
    assert main.samples == 8
    assert main.inclusive[CONSUME_FRAME] == 8
    assert main.inclusive["EventHandler._step (rental_fsm/events/handler.py)"] == 3
    assert main.self_["_HiredisParser.read_from_socket (redis/_parsers/hiredis.py)"] == 5
    assert threads["thread (2): rental-fsm-timers"].samples == 12
    assert consume_thread(threads) == "thread (1): MainThread"  # not the busiest thread
    text = render(threads, header="h")
    assert "62.5%  _HiredisParser.read_from_socket" in text  # 5 of the consume thread's 8


def test_a_line_that_is_not_py_spy_raw_output_is_refused() -> None:
    with pytest.raises(ValueError, match="not a py-spy raw line"):
        aggregate(["thread (1);f (a.py:1) lots"])


def _profile(tmp_path: Path, *args: str) -> tuple[Path, str]:
    """Run ``python -m benchmarks.profile ARGS`` small; the report file and its text."""
    out = tmp_path / "profile.txt"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.profile", *args, "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, out.read_text()


@pytest.mark.redis
@pytest.mark.rabbitmq
@pytest.mark.slow
def test_a_small_profile_run_reports_the_consume_thread(
        redis_client, amqp_connection, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out, text = _profile(tmp_path, "--vehicles", "50", "--per-vehicle", "20")
    assert "consume thread, inclusive" in text and "consume loop" in text
    assert "EventHandler.handle_batch (rental_fsm/events/handler.py)" in text
    assert not out.with_suffix(".raw").exists()


@pytest.mark.redis
@pytest.mark.rabbitmq
@pytest.mark.slow
def test_a_small_latency_profile_finds_the_in_process_consume_thread(
        redis_client, amqp_connection, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, text = _profile(tmp_path, "--scenario", "latency", "--vehicles", "20", "--seconds", "1")
    assert "--scenario latency" in text and "p99" in text
    assert "consume loop" in text and "consume thread, self" in text
