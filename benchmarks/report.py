"""The results as a table with targets, and ``python -m benchmarks.report`` printing the
RST performance section (``docs/performance.rst``) from the latest result file."""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _raw_over_naive(result: dict[str, Any]) -> Any:
    raw = _get(result, "throughput.raw_limit_events_per_s")
    naive = _get(result, "throughput.naive_events_per_s")
    if not isinstance(raw, (int, float)) or not isinstance(naive, (int, float)) or not naive:
        return None
    return round(raw / naive, 2)


#: The issue's target for ``worker / naive``.
NAIVE_TARGET = 10


def _needed_for_naive_target(result: dict[str, Any]) -> Any:
    ratio = _raw_over_naive(result)
    return None if not ratio else round(NAIVE_TARGET / ratio, 3)


#: Figures computed from measured ones (never measured themselves): how far ``naive`` is
#: below ``raw_limit`` on the machine bounds what "10x naive" asks of the worker.
DERIVED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "derived.raw_limit_over_naive": _raw_over_naive,
    "derived.raw_limit_ratio_for_10x_naive": _needed_for_naive_target,
}


def _get(result: dict[str, Any], path: str) -> Any:
    if path in DERIVED:
        return DERIVED[path](result)
    node: Any = result
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node.get("value") if isinstance(node, dict) and "value" in node else node


def _ratio(target: float, higher: bool) -> Callable[[Any], str]:
    def verdict(value: Any) -> str:
        if not isinstance(value, (int, float)):
            return "n/a"
        if (value >= target) if higher else (value <= target):
            return "met"
        short = (target - value) / target if higher else (value - target) / target
        pct = 100 * short
        return f"missed by {pct:.1f} %" if pct < 10 else f"missed by {pct:.0f} %"

    return verdict


#: (label, value path, baseline text path or '', target text, verdict)
ROWS: list[tuple[str, str, str, str, Callable[[Any], str]]] = [
    ("worker throughput (events/s)", "throughput.events_per_s",
     "{throughput.events} events, 1 process", "", lambda v: ""),
    ("worker / raw_limit", "throughput.ratio_to_raw_limit",
     "raw_limit {throughput.raw_limit_events_per_s}/s", ">= 0.5", _ratio(0.5, True)),
    ("worker / naive", "throughput.ratio_to_naive",
     "naive {throughput.naive_events_per_s}/s", f">= {NAIVE_TARGET}",
     _ratio(NAIVE_TARGET, True)),
    ("raw_limit / naive (derived)", "derived.raw_limit_over_naive",
     "10x naive = {derived.raw_limit_ratio_for_10x_naive} x raw_limit", "", lambda v: ""),
    ("latency p50 at 1,000/s (ms)", "latency.p50_ms", "", "", lambda v: ""),
    ("latency p99 at 1,000/s (ms)", "latency.p99_ms", "", "< 20", _ratio(20, False)),
    ("latency p99.9 at 1,000/s (ms)", "latency.p99_9_ms", "", "", lambda v: ""),
    ("latency p99 at half capacity (ms)", "latency.at_half_capacity.p99",
     "at {latency.at_half_capacity.rate_per_s}/s", "(< 20)", _ratio(20, False)),
    ("timer lateness p50 (ms)", "timers.lateness_p50_ms", "", "", lambda v: ""),
    ("timer lateness p99 (ms)", "timers.lateness_p99_ms",
     "{timers.pending} pending", "< 100", _ratio(100, False)),
    ("timer lateness max (ms)", "timers.lateness_max_ms", "", "", lambda v: ""),
    ("timers fired exactly once", "timers.fired_exactly_once",
     "of {timers.due_within_1s} due in 1 s", "all", lambda v: ""),
    ("timer fire rate (timers/s)", "timers.fire_rate_per_s",
     "1 runner, {timers.fired_prepared} prepared", "", lambda v: ""),
    ("timers' commands sent in window", "timers.commands_sent_in_window",
     "{timers.commands_sent} in all, outbox empty {timers.commands_drained_s} s after",
     "", lambda v: ""),
    ("cold start: timer lateness p99 (ms)", "timers.cold_start.lateness_p99_ms",
     "due as the loop starts", "", lambda v: ""),
    ("cold start: fire rate (timers/s)", "timers.cold_start.fire_rate_per_s",
     "ordinary path", "", lambda v: ""),
    ("Redis bytes/rental excl. log", "memory.redis.bytes_per_rental_excl_log", "",
     "<= 2048", _ratio(2048, False)),
    ("Redis log bytes/rental", "memory.redis.log_bytes_per_rental",
     "{memory.redis.rentals} rentals", "", lambda v: ""),
    ("worker RSS bytes/rental (slope)", "memory.worker_rss.bytes_per_rental_slope",
     "10k to 20k rentals", "", lambda v: ""),
    ("worker RSS at 100k (MB, extrap.)", "memory.worker_rss.rss_at_100k_extrapolated_mb", "",
     "", lambda v: ""),
    ("RSS growth over churn (%)", "memory.churn.rss_growth_pct",
     "{memory.churn.simulated_minutes} sim. min, {memory.churn.rentals} rentals", "< 5",
     _ratio(5, False)),
    ("2 workers / 1 worker", "scale_out.ratio",
     "2 workers {scale_out.two_workers_events_per_s}/s, {scale_out.busy_cores.two} cores busy",
     ">= 1.6", _ratio(1.6, True)),
    ("{scale_out.ceiling_workers} workers / 1 worker (ceiling)", "scale_out.ceiling_ratio",
     "{scale_out.ceiling_events_per_s}/s, {scale_out.busy_cores.ceiling} cores busy", "",
     lambda v: ""),
    ("1 worker: its CPU an event (us)", "scale_out.cpu_us_per_event.one.workers",
     "Redis {scale_out.cpu_us_per_event.one.redis}, "
     "RabbitMQ {scale_out.cpu_us_per_event.one.rabbitmq}", "", lambda v: ""),
    ("2 workers: their CPU an event (us)", "scale_out.cpu_us_per_event.two.workers",
     "Redis {scale_out.cpu_us_per_event.two.redis}, "
     "RabbitMQ {scale_out.cpu_us_per_event.two.rabbitmq}", "", lambda v: ""),
    ("2 workers: rentals identical", "scale_out.rentals_identical.value", "", "true",
     lambda v: ""),
    ("replay lines/s", "replay.lines_per_s", "{replay.lines} lines, {replay.status}", "",
     lambda v: ""),
]


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    out = []
    for label, path, base, target, verdict in ROWS:
        value = _get(result, path)
        if value is None and target.startswith("("):
            continue  # a conditional figure the run had no reason to measure
        if label.startswith("timers fired") and value is not None:
            due = _get(result, "timers.due_within_1s")
            verdict_text = "met" if value == due else f"missed ({due - value} not once)"
        elif label.endswith("rentals identical"):
            verdict_text = "met" if value is True else ("n/a" if value is None else "missed")
        else:
            verdict_text = verdict(value)
        out.append((_context(result, label), _fmt(value), _context(result, base), target,
                    verdict_text))
    return out


def _context(result: dict[str, Any], template: str) -> str:
    """``template`` with each ``{path}`` replaced by that figure of the result."""
    return re.sub(r"\{([\w.]+)\}", lambda m: _fmt(_get(result, m.group(1))), template)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


HEADER = ("figure", "value", "baseline / context", "target", "verdict")


def table(result: dict[str, Any]) -> str:
    body = [HEADER, *rows(result)]
    widths = [max(len(r[i]) for r in body) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if result.get("errors"):
        lines.append(f"errors: {result['errors']}")
    return "\n".join(lines)


def rst(result: dict[str, Any], source: str) -> str:
    body = [HEADER, *rows(result)]
    widths = [max(len(r[i]) for r in body) for i in range(len(HEADER))]
    rule = "  ".join("=" * w for w in widths)

    def line(r: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()

    tp = result.get("throughput", {})
    intro = (
        f"Generated by ``python -m benchmarks.report`` from ``{source}`` (``make bench``, "
        f"{result['machine']['cores']} cores, Python {result['machine']['python']}, "
        f"started {result['started_at']}). Targets are goals, reported against baselines "
        "measured in the same run on the same machine: ``raw_limit`` is a bare kombu "
        "consume, one pipelined Lua write per message and a batch ack (no parsing, no state "
        "machine); ``naive`` is one message at a time, prefetch 1, the worker's reads and "
        "writes one round trip each, and a ``transitions.Machine`` built per event from the "
        "product's transition table. The worker handles what the broker has delivered as "
        "one batch: one Lua call reads it, one pipeline writes it, one ack. Redis and "
        "RabbitMQ are "
        "shared with other work on this machine: figures are the best of the runs stated "
        "in the JSON file."
    )
    out = [
        "Performance",
        "-----------",
        "",
        textwrap.fill(intro, 90),
        "",
        rule, line(HEADER), rule, *(line(r) for r in rows(result)), rule,
        "",
    ]
    notes = [("throughput", tp.get("note")), ("latency", _get(result, "latency.mode")),
             ("timers", _get(result, "timers.mode")),
             ("Redis memory", _get(result, "memory.redis.note")),
             ("worker RSS", _get(result, "memory.worker_rss.note")),
             ("churn", _get(result, "memory.churn.mode")),
             ("replay", _get(result, "replay.note"))]
    out += [textwrap.fill(f"- {name}: " + n.replace("`", "``"), 90, subsequent_indent="  ")
            for name, n in notes if n]
    return "\n".join(out) + "\n"


def latest() -> Path:
    files = sorted(p for p in RESULTS.glob("*.json") if "quick" not in p.name)
    if not files:
        raise SystemExit("no result file in benchmarks/results: run `make bench` first")
    return files[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__)
    parser.add_argument("file", nargs="?", type=Path, help="result file (default: latest)")
    parser.add_argument("--readme", action="store_true",
                        help="rewrite README.rst's performance section instead of printing")
    args = parser.parse_args(argv)
    text = section(args.file or latest())
    if args.readme:
        README.write_text(with_section(README.read_text(encoding="utf-8"), text),
                          encoding="utf-8")
        return 0
    sys.stdout.write(text)
    return 0


README = RESULTS.parents[1] / "README.rst"
BEGIN = ".. performance: generated by `python -m benchmarks.report --readme`, do not edit\n"
END = ".. performance: end\n"


def section(path: Path) -> str:
    """The RST performance section of one result file."""
    result = json.loads(path.read_text())
    try:
        source = str(path.resolve().relative_to(RESULTS.parents[1]))
    except ValueError:
        source = path.name
    return rst(result, source)


def with_section(readme: str, text: str) -> str:
    """``readme`` with the block between the markers replaced by ``text``."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n" + text.rstrip("\n") + "\n\n" + readme[end:]


if __name__ == "__main__":
    sys.exit(main())
