"""The ``rental-fsm`` command: the composition root.

``main`` reads the settings, configures logging and builds whatever the sub-command
needs; nothing else in the package constructs clients. Heavy imports happen inside the
sub-command that needs them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import ConfigurationError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_UNAVAILABLE = 4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rental-fsm",
        description="Run car- and scooter-sharing rentals as persisted state machines.",
    )
    parser.add_argument("--version", action="version", version=f"rental-fsm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    diagram = commands.add_parser(
        "diagram", help="write the state diagram generated from the transition table"
    )
    diagram.add_argument("--format", choices=("mermaid", "dot", "svg"), default="mermaid")
    diagram.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    diagram.add_argument(
        "--write-all", type=Path, metavar="DIR",
        help="write rental.mmd, rental.dot and rental.svg into DIR",
    )
    diagram.add_argument(
        "--check", type=Path, metavar="DIR",
        help="exit 1 if the diagrams in DIR are not what the table generates",
    )
    diagram.add_argument("--log", type=Path, metavar="LOG",
                         help="highlight the path --rental took in this rental log")
    diagram.add_argument("--rental", metavar="ID", help="with --log: the rental to draw")
    diagram.set_defaults(handler=_diagram)

    replay = commands.add_parser(
        "replay", help="replay rental logs through a fresh orchestrator; report divergences"
    )
    replay.add_argument("logs", nargs="+", type=Path, metavar="LOG")
    replay.add_argument("--json", action="store_true", help="print the report as JSON")
    replay.add_argument("--progress", action="store_true",
                        help="show progress on stderr even when it is not a terminal")
    replay.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="replay rentals in N forked processes (0: one per CPU; "
                             "default 1); pays off on idle multi-core machines")
    replay.set_defaults(handler=_replay)

    export = commands.add_parser(
        "export", help="write rental logs from Redis (RENTAL_FSM_REDIS_URL) as JSON Lines"
    )
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("rental_id", nargs="?", metavar="RENTAL_ID")
    which.add_argument("--all", action="store_true", help="every stored rental")
    export.add_argument("--since", metavar="TIME",
                        help="only rentals with an entry at or after TIME (RFC 3339)")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    export.set_defaults(handler=_export)

    cover = commands.add_parser(
        "coverage", help="which transitions of the table the logs exercised, and which never"
    )
    cover.add_argument("logs", nargs="+", type=Path, metavar="LOG")
    cover.add_argument("--json", action="store_true", help="print the report as JSON")
    cover.add_argument("--strict", action="store_true",
                       help="exit 1 when a transition was never exercised")
    cover.set_defaults(handler=_coverage)

    config = commands.add_parser("config", help="print the effective settings, secrets hidden")
    config.set_defaults(handler=_config)

    simulator = commands.add_parser(
        "simulator", help="run a local OneAPI simulator (HTTP + AMQP events) until Ctrl-C"
    )
    simulator.add_argument("--port", type=int, default=0, help="default: a free port")
    simulator.add_argument("--amqp-url", help="publish events here (default: not at all)")
    simulator.add_argument("--vehicles", type=int, default=4, help="fleet size (default 4)")
    simulator.set_defaults(handler=_simulator)

    worker = commands.add_parser(
        "worker", help="consume OneAPI events, fire due timers and send the outbox's commands"
    )
    worker.add_argument("--once", action="store_true",
                        help="drain: stop when the queues stay idle and nothing is due")
    worker.add_argument("--idle", type=float, default=2.0, metavar="SECONDS",
                        help="with --once: how long the queues must stay empty (default 2)")
    worker.add_argument("--health-file", type=Path, metavar="PATH",
                        help="touched on every loop turn, for process supervisors")
    worker.set_defaults(handler=_worker)

    demo = commands.add_parser(
        "demo", help="a simulated fleet renting through every scenario of the seeds"
    )
    from .demo.cli import add_arguments as demo_arguments

    demo_arguments(demo)
    demo.set_defaults(handler=_demo)

    chaos = commands.add_parser(
        "chaos", help="the demo's fleet under faults on real Redis and RabbitMQ"
    )
    from .demo.cli import add_chaos_arguments

    add_chaos_arguments(chaos)
    chaos.set_defaults(handler=_chaos)
    return parser


def _diagram(args: argparse.Namespace) -> int:
    from . import diagrams

    if (args.log is None) != (args.rental is None):
        print("rental-fsm diagram: --log and --rental go together", file=sys.stderr)
        return EXIT_USAGE
    if args.log is not None:
        return _path_diagram(args)
    try:
        if args.check is not None:
            problems = diagrams.check(args.check)
            for problem in problems:
                print(problem, file=sys.stderr)
            return EXIT_FAILURE if problems else EXIT_OK
        if args.write_all is not None:
            for path in diagrams.write_all(args.write_all):
                print(f"wrote {path}")
            return EXIT_OK
        text = diagrams.render(args.format)
    except diagrams.DiagramError as exc:
        print(f"rental-fsm diagram: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return EXIT_OK


def _path_diagram(args: argparse.Namespace) -> int:
    """One rental's path: its recorded transitions, or what a replay does for a log
    without any (hand-written, inputs only)."""
    from . import diagrams
    from .errors import LogFormatError
    from .replay import Replayer, by_rental, read_log

    try:
        entries = by_rental(read_log(args.log)).get(args.rental)
    except LogFormatError as exc:
        print(f"rental-fsm diagram: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not entries:
        print(f"rental-fsm diagram: no rental {args.rental!r} in {args.log}", file=sys.stderr)
        return EXIT_FAILURE
    taken = [line.entry for line in entries if line.kind == "transition"]
    if not taken:
        taken = list(Replayer().replay_rental(entries).transitions)
    try:
        text = diagrams.render(args.format, highlight=diagrams.Highlight.from_transitions(taken))
    except diagrams.DiagramError as exc:
        print(f"rental-fsm diagram: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return _write(text, args.output)


def _write(text: str, output: Path | None) -> int:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    """Exit 0: no divergence; 1: a divergence; 2: an unreadable log (rental-log.md)."""
    import json
    import os

    from .config import Settings
    from .errors import LogFormatError
    from .replay import Replayer
    from .replay.progress import ProgressBar

    _quiet_logs()
    bar = ProgressBar(sys.stderr) if args.progress or sys.stderr.isatty() else None
    try:
        jobs = args.jobs if args.jobs > 0 else (os.cpu_count() or 1)
        # The timer durations the recording ran with come from the same RENTAL_FSM_* settings.
        replayer = Replayer(durations=Settings.from_env().durations())
        report = replayer.replay_files(args.logs, progress=bar, jobs=jobs)
    except LogFormatError as exc:
        print(f"rental-fsm replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        sys.stdout.write(report.summary())
    return EXIT_OK if report.ok else EXIT_FAILURE


def _coverage(args: argparse.Namespace) -> int:
    import json

    from .errors import LogFormatError
    from .replay import coverage, read_log

    try:
        result = coverage(line for path in args.logs for line in read_log(path))
    except LogFormatError as exc:
        print(f"rental-fsm coverage: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        sys.stdout.write(result.summary())
    return EXIT_FAILURE if args.strict and not result.complete else EXIT_OK


def _export(args: argparse.Namespace) -> int:
    """Logs live in Redis: an in-memory store dies with the process that ran it."""
    from .config import Settings
    from .errors import InvalidInput, StoreUnavailable
    from .model import parse_time
    from .store.base import Keys
    from .store.redis import RedisRentalStore, connect

    settings = Settings.from_env()
    if not settings.redis_url:
        print("rental-fsm export: set RENTAL_FSM_REDIS_URL (logs are exported from Redis)",
              file=sys.stderr)
        return EXIT_CONFIG
    try:
        since = parse_time(args.since) if args.since else None
    except ValueError as exc:
        print(f"rental-fsm export: --since: {exc}", file=sys.stderr)
        return EXIT_USAGE
    store = RedisRentalStore(connect(settings.redis_url), Keys(settings.namespace))
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        ids = store.rental_ids() if args.all else [args.rental_id]
        if since is not None:  # whole logs only: replay needs every seq from 1
            ids = [rid for rid in ids if any(parse_time(e["at"]) >= since
                                             for e in store.log(rid))]
        count = store.export_jsonl(ids, out)
    except (StoreUnavailable, InvalidInput) as exc:
        print(f"rental-fsm export: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"exported {count} lines of {len(ids)} rental(s)", file=sys.stderr)
    return EXIT_OK if count or args.all else EXIT_FAILURE


def _quiet_logs() -> None:
    """Replay runs the real orchestrator, which logs every step: keep errors only."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


def _config(args: argparse.Namespace) -> int:
    import json

    from .config import Settings

    print(json.dumps(Settings.from_env().redacted(), indent=2, sort_keys=True))
    return EXIT_OK


def _simulator(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; prints the URL and the credentials it accepts."""
    import signal
    import threading
    from typing import Any

    from .simulator import Simulator
    from .simulator.events import EventRouting, connect

    connection: Any = connect(args.amqp_url) if args.amqp_url else None
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    routing = EventRouting(vehicle_state_queue="oneapi.sim.VehicleState",
                           vehicle_queue="oneapi.sim.Vehicle")
    with Simulator(connection=connection, routing=routing, port=args.port,
                   vehicles=args.vehicles) as sim:
        print(f"OneAPI simulator at {sim.url}", flush=True)
        print(f"client id: {sim.client_id}", flush=True)
        print(f"client secret: {sim.client_secret.reveal()}", flush=True)
        for vehicle_id, vehicle in sim.fleet.vehicles.items():
            print(f"vehicle {vehicle_id}: {vehicle.model.name}", flush=True)
        if connection is not None:
            print(f"events: exchange {routing.exchange!r}, queues "
                  f"{routing.vehicle_state_queue!r} and {routing.vehicle_queue!r}", flush=True)
        stop.wait()
    if connection is not None:
        connection.release()
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from .demo.cli import run

    return run(args)


def _chaos(args: argparse.Namespace) -> int:
    from .demo.chaos import run as chaos_run

    return chaos_run(args)


def _worker(args: argparse.Namespace) -> int:
    """``rental-fsm worker``: settings from RENTAL_FSM_*, logs configured here."""
    from .config import Settings
    from .errors import StoreUnavailable
    from .logs import configure_logging
    from .worker.process import Worker, build_parts

    settings = Settings.from_env()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    try:
        worker = Worker(build_parts(settings), health_file=args.health_file)
        if args.once:
            handled = worker.drain(idle_s=args.idle)
            print(f"drained: {handled} messages handled, "
                  f"{worker.timer_runner.stats.fired} timers fired", flush=True)
            return EXIT_OK
        worker.install_signal_handlers()
        return worker.run()
    except StoreUnavailable as exc:
        print(f"rental-fsm worker: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help/--version and on usage errors
        return int(exc.code or 0)
    try:
        return int(args.handler(args))
    except ConfigurationError as exc:
        print(f"rental-fsm: {exc}", file=sys.stderr)
        return EXIT_CONFIG
