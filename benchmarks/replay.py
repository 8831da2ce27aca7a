"""Scenario 6: lines/s of ``rental-fsm replay`` on a 100,000-line rental log.

Replay is being built in parallel (``rental_fsm.replay``); until it exists this scenario
reports ``skipped: replay not available``. The log is produced by the real engine (an
in-memory store, so it is fast), in the rental-log JSON Lines format replay reads.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .common import figure
from .workers import ROOT


def _write_log(path: Path, lines: int) -> int:
    from rental_fsm.clock import ManualClock
    from rental_fsm.engine import Engine
    from rental_fsm.model import Rental
    from rental_fsm.store.memory import InMemoryRentalStore

    clock = ManualClock(datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc))
    store = InMemoryRentalStore()
    engine = Engine(store, clock=clock)
    ids, written, i = [], 0, 0
    while written < lines:
        rid = f"pR{i}"
        store.create(Rental(rid, f"pV{i}", f"pC{i}", created_at=clock.now()))
        for trigger in ("start", "start_confirmed", "customer_interacted"):
            engine.apply(rid, trigger, event_id=f"{trigger}-{rid}")
            clock.advance(timedelta(seconds=1))
        ids.append(rid)
        written += len(store.log(rid))
        i += 1
    with path.open("w") as fh:
        return int(store.export_jsonl(ids, fh))


def run(quick: bool) -> dict[str, Any]:
    if importlib.util.find_spec("rental_fsm.replay") is None:
        return {"status": "skipped: replay not available"}
    lines = 5_000 if quick else 100_000
    path = Path(tempfile.mkdtemp(prefix="bench-replay-")) / "rentals.jsonl"
    count = _write_log(path, lines)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rental_fsm", "replay", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - started
    path.unlink()
    if proc.returncode != 0:
        return {"status": f"failed: exit {proc.returncode}: {proc.stderr.strip()[-300:]}",
                "lines": count}
    return {"status": "ok", "lines": count,
            "lines_per_s": figure(round(count / elapsed, 1), 1),
            "note": "wall time of the whole command, interpreter start included"}
