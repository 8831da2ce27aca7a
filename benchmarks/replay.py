"""Scenario 6: lines/s of ``rental-fsm replay`` on a 100,000-line rental log.

Replay is being built in parallel (``rental_fsm.replay``); until it exists this scenario
reports ``skipped: replay not available``. The log is the committed golden logs
(tests/logs), copied under fresh rental ids up to the size; each copy must replay with no
divergence (the command's exit code says so).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import figure
from .workers import ROOT


def _write_log(path: Path, lines: int) -> int:
    """The committed golden logs (tests/logs/*.jsonl, recorded from real runs: requests,
    events, timers, transitions), copied under fresh rental ids until ``lines`` lines."""
    golden = [json.loads(line) for f in sorted((ROOT / "tests" / "logs").glob("*.jsonl"))
              for line in f.read_text().splitlines() if line.strip()]
    if not golden:
        raise RuntimeError("no golden logs in tests/logs")
    written, copy = 0, 0
    with path.open("w") as fh:
        while written < lines:
            for entry in golden:
                fh.write(json.dumps({**entry, "rental_id": f"{entry['rental_id']}-c{copy}"})
                         + "\n")
                written += 1
            copy += 1
    return written


def run(quick: bool) -> dict[str, Any]:
    if importlib.util.find_spec("rental_fsm.replay") is None:
        return {"status": "skipped: replay not available"}
    lines = 5_000 if quick else 100_000
    path = Path(tempfile.mkdtemp(prefix="bench-replay-")) / "rentals.jsonl"
    count = _write_log(path, lines)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rental_fsm", "replay", "--jobs", "1",
                           str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - started
    path.unlink()
    if proc.returncode != 0:
        return {"status": f"failed: exit {proc.returncode}: {proc.stderr.strip()[-300:]}",
                "lines": count}
    return {"status": "ok", "lines": count,
            "lines_per_s": figure(round(count / elapsed, 1), 1),
            "summary": proc.stdout.strip().splitlines()[-1:],
            "note": "wall time of `rental-fsm replay --jobs 1`, interpreter start included"}
