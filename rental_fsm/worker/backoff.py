"""Retry delays: exponential with full jitter, capped; a pure function, tested without sleeping."""

from __future__ import annotations

import random

#: First retry after about this long (seconds).
BASE_DELAY_S = 0.1
#: Never wait longer than this between two attempts (seconds).
MAX_DELAY_S = 10.0


def compute_backoff(
    attempt: int, *, base: float = BASE_DELAY_S, cap: float = MAX_DELAY_S,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1).

    Full jitter (a uniform draw below the exponential ceiling) spreads the retries of many
    workers that failed together, e.g. when Redis comes back.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    ceiling = min(cap, base * 2 ** min(attempt - 1, 32))
    return (rng or random).uniform(ceiling / 2, ceiling)
