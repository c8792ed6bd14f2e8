"""What a sweep prints while it runs: one line per point started (where), engine run started, and point
finished (points done of total, elapsed and estimated time left)."""
from __future__ import annotations

import sys
import threading
import time

from ..results.summary import format_duration
from .grid import Point


class SweepProgress:
    """One line per event worth a line: a point started (where), an engine run started, a point finished
    (with points done / total, elapsed and estimated time left). Fed by the Dask event topic and by the
    client as results arrive; events come on Dask's event loop thread, hence the lock."""

    def __init__(self, pts: list[Point], todo: int, quiet: bool = False, file=None):
        self.labels = {p.key: p.label for p in pts}
        self.todo, self.done, self.quiet = todo, 0, quiet
        self.attempts: dict[str, int] = {}
        self.workers: dict[str, str] = {}
        self.file = file or sys.stdout
        self.start = time.monotonic()
        self.lock = threading.Lock()

    def _print(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.file, flush=True)

    def _clock(self) -> str:
        elapsed = time.monotonic() - self.start
        # the mean time per finished point, for every point not finished, less the running one's time so far
        left = f", ~{format_duration(max(0.0, elapsed / self.done * self.todo - elapsed))} left" if self.done else ""
        return f"{self.done}/{self.todo} points, {format_duration(elapsed)} elapsed{left}"

    def on_event(self, event) -> None:
        _, msg = event if isinstance(event, tuple) else (None, event)
        with self.lock:
            key = msg.get("point")
            label = self.labels.get(key, key)
            if msg.get("kind") == "point-start":
                self.attempts[key] = self.attempts.get(key, 0) + 1
                self.workers[key] = msg.get("worker", "")
                again = f" (attempt {self.attempts[key]})" if self.attempts[key] > 1 else ""
                self._print(f"[{self._clock()}] point {label} started on {msg.get('worker')}{again}")
            elif msg.get("kind") == "engine" and msg.get("event") == "prepared":
                self._print(f"[{self._clock()}]   {label}: {msg.get('engine')} repeat {msg.get('repeat', 0) + 1} "
                            "running")

    def finished(self, point: Point, status: str) -> None:
        with self.lock:
            self.done += 1
            self._print(f"[{self._clock()}] point {point.label} {status}")
