"""``python -m benchmarks [--quick] [--only NAME ...]``: run the scenarios, write the JSON
result and a table (and PNG histograms when matplotlib is installed)."""

from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .common import CORES

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("throughput", "latency", "timers", "memory", "replay")


def _scenario(name: str, quick: bool, result: dict[str, Any]) -> dict[str, Any]:
    from . import latency, memory, replay, throughput, timers

    if name == "throughput":
        return throughput.run(quick)
    if name == "latency":
        capacity = result.get("throughput", {}).get("events_per_s", {}).get("value")
        return {"latency": latency.run(quick, capacity)}
    if name == "timers":
        return {"timers": timers.run(quick)}
    if name == "memory":
        return {"memory": memory.run(quick)}
    return {"replay": replay.run(quick)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="every scenario, small (CI)")
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--out", type=Path, help="result file (default results/<date>.json)")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every scenario's cleanup (keys, queues, processes) runs.
    signal.signal(signal.SIGTERM, _interrupt)

    from rental_fsm.logs import configure_logging

    configure_logging(level="error")
    started = datetime.now(timezone.utc)
    result: dict[str, Any] = {
        "schema": 1, "started_at": started.isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {"cores": CORES, "python": platform.python_version(),
                    "platform": platform.platform()},
    }
    for name in args.only:
        began = time.monotonic()
        print(f"== {name} ...", file=sys.stderr, flush=True)
        try:
            result.update(_scenario(name, args.quick, result))
        except Exception as exc:  # report the rest; the JSON says what failed
            result.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
            print(f"   {name} failed: {exc!r}", file=sys.stderr)
        print(f"   {name}: {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    result["duration_s"] = round((datetime.now(timezone.utc) - started).total_seconds(), 1)

    out = args.out or RESULTS / (f"{started:%Y-%m-%d}{'-quick' if args.quick else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    histograms = _pngs(result, out)
    result["histograms"] = histograms
    out.write_text(json.dumps(result, indent=1) + "\n")
    from .report import table

    print(table(result))
    print(f"\nwritten: {out}" + ("" if histograms else
                                 "\n(no PNG histograms: matplotlib is not installed)"))
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _pngs(result: dict[str, Any], out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    for key, title in (("latency", "publish-to-commit latency (ms)"),
                       ("timers", "timer lateness (ms)")):
        samples = result.get(key, {}).get("histogram_ms")
        if not samples:
            continue
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.hist(samples, bins=100)
        ax.set_xlabel(title)
        ax.set_ylabel("count")
        path = out.with_name(f"{out.stem}-{key}.png")
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        written.append(path.name)
    return written
