"""Record-and-replay of rental logs (rental-log.md v1): reader, replayer, coverage.

``replay(path)`` feeds a recorded log through a fresh orchestrator (optionally a custom
``RentalMachine``: the next release) and reports the first divergence per rental.
"""

from __future__ import annotations

from .coverage import Coverage, coverage
from .reader import LogLine, by_rental, parse_lines, read_log
from .replayer import Replayer, replay
from .report import Divergence, RentalReplay, ReplayReport

__all__ = ["Coverage", "Divergence", "LogLine", "RentalReplay", "ReplayReport", "Replayer",
           "by_rental", "coverage", "parse_lines", "read_log", "replay"]
