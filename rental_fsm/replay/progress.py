"""A plain-text progress bar on stderr for long replays (no dependency, no colours)."""

from __future__ import annotations

import time
from typing import TextIO

#: Redraw at most this often, so a 100,000-line replay is not slowed by its bar.
MIN_INTERVAL_S = 0.2


class ProgressBar:
    """Called with (lines done, total); prints ``replay [#####.....] 52% 52000/100000``."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        finished = done >= total
        if not finished and now - self._last < MIN_INTERVAL_S:
            return
        self._last = now
        share = done / total if total else 1.0
        filled = int(share * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\rreplay [{bar}] {share:4.0%} {done}/{total} lines")
        if finished:
            self.stream.write("\n")
        self.stream.flush()
