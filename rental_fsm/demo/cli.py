"""Arguments and output of ``rental-fsm demo`` (registered in rental_fsm.cli)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..config import Settings
from ..logs import configure_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--speed", type=float, default=3.0,
                        help="divide seed 002's 45 s / 60 s by this (default 3: about "
                             "half a minute)")
    parser.add_argument("--rentals", type=int, default=30,
                        help="how many rentals run at once (default 30)")
    parser.add_argument("--output", type=Path, default=Path("demo-output"),
                        help="folder for the rental logs and the summary")


def add_chaos_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--rentals-per-wave", type=int, default=10)
    parser.add_argument("--broker-restarts", type=int, default=1)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--output", type=Path, default=Path("chaos-output"))


def run(args: argparse.Namespace) -> int:
    from .runner import DemoOptions, run_demo, summary_lines

    if args.speed <= 0 or args.rentals < 1:
        print("rental-fsm demo: --speed must be > 0 and --rentals >= 1", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    args.output.mkdir(parents=True, exist_ok=True)
    log_file = (args.output / "demo.log").open("w", encoding="utf-8")
    configure_logging(fmt="json", level="info", stream=log_file)
    backend = (f"store: {'Redis' if settings.redis_url else 'in memory'}, "
               f"events: {'RabbitMQ' if settings.amqp_url else 'kombu memory://'}")
    print(f"rental-fsm demo: {args.rentals} rentals, speed x{args.speed:g} ({backend})",
          flush=True)
    try:
        report = run_demo(DemoOptions(speed=args.speed, rentals=args.rentals,
                                      output=args.output, settings=settings,
                                      live=sys.stdout.isatty()), out=sys.stdout)
    finally:
        log_file.close()
    print()
    for line in summary_lines(report):
        print(line)
    if report.replay_divergences:
        print("replaying the demo's logs DIVERGED:")
        for divergence in report.replay_divergences[:10]:
            print(f"    {divergence}")
    else:
        print("replaying the demo's logs: every rental came out the same (no divergence)")
    print(f"\nrental logs: {args.output / 'logs'} (all: {args.output / 'rentals.jsonl'})")
    print(f"path diagrams: {args.output / 'diagrams'} ({len(report.diagrams)} files)")
    print(f"summary: {args.output / 'summary.json'}, log lines: {args.output / 'demo.log'}")
    scaled = {name: f"{seconds / args.speed:g}" for name, seconds in (
        ("START_TIMEOUT_S", settings.start_timeout.total_seconds()),
        ("END_TIMEOUT_S", settings.end_timeout.total_seconds()),
        ("AUTO_CANCEL_S", settings.auto_cancel.total_seconds()))}
    env = " ".join(f"RENTAL_FSM_{k}={v}" for k, v in scaled.items())
    print(f"replay them yourself: {env} rental-fsm replay {args.output / 'rentals.jsonl'}")
    print("every scenario ended as expected" if report.ok else "SOME SCENARIOS FAILED")
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rental-fsm demo")
    add_arguments(parser)
    return run(parser.parse_args(argv))
