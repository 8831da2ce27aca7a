"""Replay tests: the plugin's fixture and quiet logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from rental_fsm.testing import replay_log  # noqa: F401  (the plugin's fixture, here)


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    """Replay runs the real orchestrator, which logs every step; keep the suite fast."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    yield
