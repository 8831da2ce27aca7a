"""``python -m benchmarks.profile``: where one ``rental-fsm worker`` spends its time on the
throughput workload (scenario 1), sampled by py-spy from outside the process.

py-spy attaches to the worker subprocess without pausing it (``--nonblocking``) and
records idle stacks too (``--idle``), so a thread's samples add up to its wall time:
the consume thread's table says how much of it is our Python, kombu's frame handling,
or waiting for Redis's replies and the next deliveries. Writes
``benchmarks/results/<UTC date>-profile.txt`` (inclusive and self shares of the consume
thread by function, and every thread's share of the samples); ``make profile``.
``--scenario latency`` profiles scenario 2 instead (the in-process worker at 1,000
events/s): ``<date>-latency-profile.txt``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
#: The consume thread is the one whose stacks pass through this frame (py-spy names
#: methods by their qualified name).
CONSUME_FRAME = "KombuEventConsumer.consume (rental_fsm/worker/consumer.py)"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass
class ThreadProfile:
    """One thread's samples: inclusive (the function is on the stack) and self (it is
    the innermost frame) counts by function."""

    samples: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    self_: Counter[str] = field(default_factory=Counter)


def frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``: call sites of one function
    merged, paths shortened to the package."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/rental_fsm/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/rental_fsm/":
                path = "rental_fsm/" + path
            break
    return f"{match['func']} ({path})"


def aggregate(lines: Iterable[str]) -> dict[str, ThreadProfile]:
    """py-spy's raw output (``thread (id): name;outer;...;inner COUNT`` a line,
    ``--threads``) by thread, keyed by that first frame."""
    threads: dict[str, ThreadProfile] = {}
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            raise ValueError(f"not a py-spy raw line: {line[:80]!r}")
        count = int(count_text)
        frames = stack.split(";")
        thread, frames = (frames[0], frames[1:]) if frames[0].startswith("thread ") \
            else ("thread (?)", frames)
        names = [frame_name(f) for f in frames]
        profile = threads.setdefault(thread, ThreadProfile())
        profile.samples += count
        for name in set(names):
            profile.inclusive[name] += count
        if names:
            profile.self_[names[-1]] += count
    return threads


def consume_thread(threads: dict[str, ThreadProfile]) -> str | None:
    """The thread that ran the consume loop (most samples through it)."""
    hits = {thread: p.inclusive.get(CONSUME_FRAME, 0) for thread, p in threads.items()}
    best = max(hits, key=hits.__getitem__, default=None)
    return best if best is not None and hits[best] else None


def render(threads: dict[str, ThreadProfile], *, header: str, top: int = 30) -> str:
    """The text report: every thread's share, then the consume thread's functions."""
    total = sum(p.samples for p in threads.values()) or 1
    main = consume_thread(threads)
    out = [header, "", "threads (share of all samples; idle stacks included):"]
    for thread, profile in sorted(threads.items(), key=lambda kv: -kv[1].samples):
        role = "consume loop" if thread == main else _role(profile)
        out.append(f"  {profile.samples / total:6.1%}  {profile.samples:7d}  {thread}  {role}")
    if main is None:
        out += ["", "no thread ran the consume loop"]
        return "\n".join(out) + "\n"
    profile = threads[main]
    for title, counts in (("inclusive", profile.inclusive), ("self", profile.self_)):
        out += ["", f"consume thread, {title} (share of its {profile.samples} samples):"]
        for name, n in counts.most_common(top):
            out.append(f"  {n / profile.samples:6.1%}  {name}")
    return "\n".join(out) + "\n"


def _role(profile: ThreadProfile) -> str:
    """A thread's outermost frame of ours, so the report says which loop it is."""
    ours = [f for f, _ in profile.inclusive.most_common() if "rental_fsm/" in f]
    return ours[0] if ours else ""


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: make profile installs it (bench extra)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--scenario", choices=("throughput", "latency"), default="throughput",
                        help="throughput: a worker subprocess on pre-published events; "
                             "latency: scenario 2's in-process worker at a paced rate")
    parser.add_argument("--vehicles", type=int, default=1000)
    parser.add_argument("--per-vehicle", type=int, default=50, help="throughput only")
    parser.add_argument("--seconds", type=float, default=15.0, help="latency only")
    parser.add_argument("--rate", type=int, default=100, help="samples a second")
    parser.add_argument("--out", type=Path,
                        help="default results/<date>-profile.txt (-latency-profile.txt)")
    args = parser.parse_args(argv)
    from rental_fsm.logs import configure_logging

    configure_logging(level="error")
    suffix = "profile" if args.scenario == "throughput" else "latency-profile"
    out = args.out or RESULTS / f"{datetime.now(timezone.utc):%Y-%m-%d}-{suffix}.txt"
    raw = out.with_suffix(".raw")
    command = [py_spy(), "record", "--format", "raw", "--threads", "--idle",
               "--nonblocking", "--rate", str(args.rate), "--output", str(raw), "--pid"]
    run = _profile_throughput if args.scenario == "throughput" else _profile_latency
    what = run(args, command)
    threads = aggregate(raw.read_text().splitlines())
    raw.unlink()
    from .common import CORES

    header = (f"python -m benchmarks.profile --scenario {args.scenario}: {what}\n"
              f"py-spy {args.rate} Hz (nonblocking, idle included), {CORES} cores, "
              f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    out.write_text(render(threads, header=header))
    print(out.read_text())
    print(f"written: {out}", file=sys.stderr)
    return 0


def _profile_throughput(args: argparse.Namespace, command: list[str]) -> str:
    """One worker subprocess, py-spy attached as it starts; it stops and writes when the
    worker exits."""
    from .throughput import worker_run

    spies: list[subprocess.Popen[bytes]] = []

    def attach(pid: int) -> None:
        spies.append(subprocess.Popen([*command, str(pid)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))

    try:
        rate, _, used = worker_run(args.vehicles, args.per_vehicle, 1, on_spawn=attach)
    finally:
        for spy in spies:
            spy.wait(60)
    cpu = used["us_per_event"]
    return (f"1 worker, {args.vehicles} rentals, {args.vehicles * args.per_vehicle} events; "
            f"while profiled {rate:,.1f} events/s, worker CPU an event {cpu['workers']} us, "
            f"Redis {cpu['redis']}, RabbitMQ {cpu['rabbitmq']} (the worker's start is in "
            f"the samples)")


def _profile_latency(args: argparse.Namespace, command: list[str]) -> str:
    """Scenario 2 in this process, py-spy attached to it; stopped with SIGINT (py-spy
    writes what it has) once the run is over."""
    import os
    import signal
    import time

    from .latency import measure

    spy = subprocess.Popen([*command, str(os.getpid())], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # attached before the run starts
        result = measure(1000.0, args.seconds, args.vehicles)
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
    ms = result["ms"]
    return (f"in-process worker, publisher at 1,000 events/s for {args.seconds:g} s, "
            f"{args.vehicles} rentals; while profiled p50 {ms.get('p50')} ms, p99 "
            f"{ms.get('p99')} ms, max {ms.get('max')} ms")


if __name__ == "__main__":
    raise SystemExit(main())
