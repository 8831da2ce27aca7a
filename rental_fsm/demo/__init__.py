"""``rental-fsm demo``: a simulated fleet renting through every scenario of the seeds.

The names below load on first use, so the command line can read the demo's arguments
without importing the simulator, kombu, redis and requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runner import DemoOptions, Report, run_demo, summary_lines
    from .scenarios import SCENARIOS, Scenario

__all__ = ["SCENARIOS", "DemoOptions", "Report", "Scenario", "run_demo", "summary_lines"]


def __getattr__(name: str) -> Any:
    if name in ("SCENARIOS", "Scenario"):
        from . import scenarios

        return getattr(scenarios, name)
    if name in __all__:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
