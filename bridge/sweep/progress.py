"""What a sweep prints while it runs: one line per point started (where), engine run started, and point
finished (points done of total, elapsed and estimated time left, :class:`Remaining`)."""
from __future__ import annotations

import statistics
import sys
import threading
import time

from ..results.summary import format_duration
from .grid import Point


class Remaining:
    """The time a sweep has left, in seconds, from its points' events alone (pure arithmetic: every
    method takes the time ``now`` in seconds, from any one clock).

    A finished point took its duration. A running point has done a fraction ``f`` of its epochs (the
    epochs of all its engine runs, as its ``planned`` event announced them; an engine run that ended
    counts whole), so it has ``(1 - f)`` of a point's duration left — the mean of the finished points'
    durations, or, before any point finished, its own pace so far (elapsed / f). Points not started take
    that duration each. Points run side by side on as many workers as have started points (one point at a
    time each), so the work left is shared among them, but never finishes before the longest running point
    does. With the
    finished points' mean, the estimate only falls while the last point runs."""

    def __init__(self, todo: int):
        self.todo = todo
        self.started: dict[str, float] = {}  # running point -> when it started
        self.planned: dict[str, tuple[int, int]] = {}  # running point -> (epochs per run, engine runs)
        self.epochs: dict[str, dict[tuple[str, int], int]] = {}  # running point -> run -> epochs done
        self.ended: dict[str, set[tuple[str, int]]] = {}  # running point -> runs that ended
        self.durations: list[float] = []
        self.workers: set[str] = set()

    def start(self, key: str, now: float, worker: str = "") -> None:
        """A point started on ``worker`` (or started again after its worker was lost: its progress starts
        over)."""
        self.started[key] = now
        self.epochs[key], self.ended[key] = {}, set()
        self.planned.pop(key, None)
        self.workers.add(worker)

    def plan(self, key: str, epochs: int, runs: int) -> None:
        self.planned[key] = (epochs, runs)

    def epoch(self, key: str, run: tuple[str, int], epoch: int) -> None:
        """Run ``run`` (engine run label, repeat) of point ``key`` finished its epoch ``epoch`` (from 0)."""
        if key in self.epochs:
            done = self.epochs[key]
            done[run] = max(done.get(run, 0), epoch + 1)

    def run_ended(self, key: str, run: tuple[str, int]) -> None:
        if key in self.ended:
            self.ended[key].add(run)

    def finish(self, key: str, now: float) -> None:
        start = self.started.pop(key, None)
        if start is not None:
            self.durations.append(now - start)
        for d in (self.planned, self.epochs, self.ended):
            d.pop(key, None)

    def fraction(self, key: str) -> float:
        """The fraction of point ``key``'s epochs done, 0 to 1; 0 before its plan is known."""
        if key not in self.planned:
            return 0.0
        epochs, runs = self.planned[key]
        if epochs * runs <= 0:
            return 0.0
        done = {**self.epochs[key], **{run: epochs for run in self.ended[key]}}
        return min(1.0, sum(done.values()) / (epochs * runs))

    def left(self, now: float) -> float | None:
        """Seconds left, or ``None`` while nothing tells yet (no point finished, none has done an epoch)."""
        paces = {k: (now - t) / self.fraction(k) for k, t in self.started.items() if self.fraction(k) > 0}
        if self.durations:
            per_point = statistics.fmean(self.durations)
        elif paces:
            per_point = statistics.fmean(paces.values())
        else:
            return None
        running = [(1 - self.fraction(k)) * (per_point if self.durations else paces.get(k, per_point))
                   for k in self.started]
        waiting = max(0, self.todo - len(self.durations) - len(self.started))
        return max(max(running, default=0.0), (sum(running) + waiting * per_point) / max(1, len(self.workers)))


class SweepProgress:
    """One line per event worth a line: a point started (where), an engine run started, a point finished
    (with points done / total, elapsed and estimated time left). Fed by the Dask event topic and by the
    client as results arrive; events come on Dask's event loop thread, hence the lock."""

    def __init__(self, pts: list[Point], todo: int, quiet: bool = False, file=None, clock=time.monotonic):
        self.labels = {p.key: p.label for p in pts}
        self.todo, self.done, self.quiet = todo, 0, quiet
        self.attempts: dict[str, int] = {}
        self.workers: dict[str, str] = {}
        self.file = file or sys.stdout
        self.clock = clock
        self.start = clock()
        self.remaining = Remaining(todo)
        self.lock = threading.Lock()

    def _print(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.file, flush=True)

    def _clock(self) -> str:
        now = self.clock()
        left = self.remaining.left(now)
        return (f"{self.done}/{self.todo} points, {format_duration(now - self.start)} elapsed"
                + (f", ~{format_duration(left)} left" if left is not None else ""))

    def on_event(self, event) -> None:
        _, msg = event if isinstance(event, tuple) else (None, event)
        with self.lock:
            key = msg.get("point")
            label = self.labels.get(key, key)
            kind = msg.get("kind")
            if kind == "point-start":
                self.remaining.start(key, self.clock(), msg.get("worker", ""))
                self.attempts[key] = self.attempts.get(key, 0) + 1
                self.workers[key] = msg.get("worker", "")
                again = f" (attempt {self.attempts[key]})" if self.attempts[key] > 1 else ""
                self._print(f"[{self._clock()}] point {label} started on {msg.get('worker')}{again}")
            elif kind == "planned":
                self.remaining.plan(key, int(msg.get("epochs") or 0), int(msg.get("runs") or 0))
            elif kind == "engine":
                run = (msg.get("engine", ""), int(msg.get("repeat") or 0))
                if msg.get("event") == "epoch" and msg.get("epoch") is not None:
                    self.remaining.epoch(key, run, int(msg["epoch"]))
                elif msg.get("event") in ("done", "error"):
                    self.remaining.run_ended(key, run)
                elif msg.get("event") == "prepared":
                    self._print(f"[{self._clock()}]   {label}: {run[0]} repeat {run[1]} running")

    def finished(self, point: Point, status: str) -> None:
        with self.lock:
            self.done += 1
            self.remaining.finish(point.key, self.clock())
            self._print(f"[{self._clock()}] point {point.label} {status}")
