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
    diagram.set_defaults(handler=_diagram)

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
    return parser


def _diagram(args: argparse.Namespace) -> int:
    from . import diagrams

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
