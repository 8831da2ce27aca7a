"""How fast replay is: copies of the golden logs (renamed rentals) up to N lines.

    python -m tests.replay.measure_speed            # 100,000 lines, one process
    python -m tests.replay.measure_speed 100000 2   # ... in two forked processes

Prints lines, seconds (reading and replaying) and lines per second. The figure in
docs/replay.rst comes from here.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import structlog

from rental_fsm.replay import Replayer, parse_lines

LOGS = Path(__file__).resolve().parents[1] / "logs"


def golden_lines(count: int) -> list[str]:
    """``count`` log lines: whole copies of every golden log, rentals renamed per copy."""
    texts = [p.read_text().splitlines() for p in sorted(LOGS.glob("*.jsonl"))]
    lines: list[str] = []
    copy = 0
    while len(lines) < count:
        for text in texts:
            for line in text:
                entry = json.loads(line)
                entry["rental_id"] = f"{entry['rental_id']}-{copy}"
                lines.append(json.dumps(entry, separators=(",", ":")))
        copy += 1
    return lines


def measure(count: int, jobs: int = 1) -> tuple[int, float, int]:
    """(lines, seconds, divergences) for reading and replaying about ``count`` lines."""
    lines = golden_lines(count)
    started = time.perf_counter()
    report = Replayer().replay_lines(parse_lines(lines), jobs=jobs)
    return len(lines), time.perf_counter() - started, len(report.divergences)


def main(argv: list[str]) -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    count = int(argv[0]) if argv else 100_000
    jobs = int(argv[1]) if len(argv) > 1 else 1
    lines, seconds, divergences = measure(count, jobs)
    print(f"{lines} lines in {seconds:.1f} s with {jobs} job(s): "
          f"{lines / seconds:,.0f} lines/s, {divergences} divergence(s)")
    return 1 if divergences else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
