"""Replay runs at thousands of lines a second (100,000 lines: see measure_speed.py)."""

from __future__ import annotations

from measure_speed import measure


def test_ten_thousand_lines_replay_in_seconds() -> None:
    lines, seconds, divergences = measure(10_000)
    assert divergences == 0
    assert lines >= 10_000
    # ~5,000 lines/s on a 2-CPU CI box; a tenth of that still means seconds, not minutes.
    assert lines / seconds > 500, f"{lines / seconds:.0f} lines/s"
