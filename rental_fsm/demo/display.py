"""The demo's live output: rentals per state, transitions per second, timers pending."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ..model import RentalState
from ..store.base import RentalStore

ORDER = [s.value for s in RentalState]


class Display:
    def __init__(self, out: TextIO, *, live: bool, store: RentalStore,
                 results: Sequence[Any], counter: Callable[[], int]) -> None:
        self.out = out
        self.live = live
        self.store = store
        self.results = results
        self.counter = counter
        self.began = time.monotonic()

    def line(self, rate: float) -> str:
        states: Counter[str] = Counter()
        for result in self.results:
            try:
                states[self.store.get(result.rental_id).state.value] += 1
            except Exception:  # not created yet
                states["-"] += 1
        timers = getattr(getattr(self.store, "timers", None), "pending", lambda: 0)()
        shown = " ".join(f"{s} {states[s]}" for s in ORDER if states[s])
        return (f"[{time.monotonic() - self.began:5.1f}s] {shown} | "
                f"{rate:5.1f} transitions/s | {timers} timers pending")

    def run(self, stop: threading.Event) -> None:
        interval = 0.5 if self.live else 2.0
        last_count, last_time = 0, time.monotonic()
        while not stop.wait(interval):
            now, count = time.monotonic(), self.counter()
            rate = (count - last_count) / max(now - last_time, 1e-6)
            last_count, last_time = count, now
            text = self.line(rate)
            if self.live:
                self.out.write("\r\x1b[2K" + text)
            else:
                self.out.write(text + "\n")
            self.out.flush()
        if self.live:
            self.out.write("\n")
