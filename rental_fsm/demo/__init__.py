"""``rental-fsm demo``: a simulated fleet renting through every scenario of the seeds."""

from __future__ import annotations

from .runner import DemoOptions, Report, run_demo, summary_lines
from .scenarios import SCENARIOS, Scenario

__all__ = ["SCENARIOS", "DemoOptions", "Report", "Scenario", "run_demo", "summary_lines"]
