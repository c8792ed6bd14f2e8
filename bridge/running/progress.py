"""Live progress of ``bridge.compare``, fed by the worker events that :func:`bridge.running.runner.run`
passes on.

On a terminal: a rich progress display, one row per engine run (engine/mode, repeat r (of R), epoch n
of N, the last whole-split training loss, elapsed seconds) under a row counting finished runs. Anywhere
else (a pipe, a file, CI logs): no control codes at all, one plain line per finished engine run, and
while an engine run goes on a heartbeat line every :data:`HEARTBEAT_S` seconds (``$BRIDGE_HEARTBEAT_S``
changes it) saying where it is, so a log never stays silent for minutes. Failures always go to stderr,
one line each, in both forms and with ``--quiet``.

Events arrive on the runner's reader threads; rich's Progress takes its own lock on every update, and
the plain form's state is held under its own lock.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

HEARTBEAT_S = 60.0
"""Seconds between the plain form's lines while an engine run goes on (``$BRIDGE_HEARTBEAT_S``)."""


def heartbeat_seconds() -> float:
    """:data:`HEARTBEAT_S`, or ``$BRIDGE_HEARTBEAT_S`` when set to a number of seconds greater than 0."""
    try:
        given = float(os.environ.get("BRIDGE_HEARTBEAT_S", ""))
    except ValueError:
        return HEARTBEAT_S
    return given if given > 0 else HEARTBEAT_S


class RunProgress:
    """``on_event`` and ``on_outcome`` callbacks for :func:`bridge.running.runner.run`; use as a context
    manager.

    ``epochs`` and ``repeats`` come from the spec; ``runs`` is the number of worker runs expected (0 when
    unknown). Live display only when ``console`` says it is a terminal or, without one, when ``file`` is
    a TTY and TERM is not ``dumb``.
    """

    def __init__(self, epochs: int, repeats: int, runs: int = 0, *, quiet: bool = False,
                 file: TextIO | None = None, console: Console | None = None):
        self.epochs, self.repeats, self.runs, self.quiet = epochs, repeats, runs, quiet
        self.file = file if file is not None else sys.stdout
        if console is None:
            tty = hasattr(self.file, "isatty") and self.file.isatty() and os.environ.get("TERM") != "dumb"
            console = Console(file=self.file) if tty else None
        self.live = not quiet and console is not None and console.is_terminal
        self.printed: set[str] = set()  # failure messages already shown, so the end does not repeat them
        self._tasks: dict[tuple[str, int], TaskID] = {}
        self._progress = None
        # the plain form's heartbeat: the engine run going on, and when the last line was printed
        self.heartbeat_s = heartbeat_seconds()
        self._lock = threading.Lock()
        self._current: dict | None = None
        self._last_line = time.monotonic()
        self._stop = threading.Event()
        self._beat = None if self.live or quiet else threading.Thread(target=self._heartbeat, daemon=True,
                                                                     name="bridge-heartbeat")
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(bar_width=24),
                TextColumn("{task.fields[where]}"), TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(), console=console, refresh_per_second=8)
            self._overall = self._progress.add_task("runs", total=runs or None, where=self._runs_text(0),
                                                    status="starting")

    def __enter__(self) -> "RunProgress":
        if self._progress is not None:
            self._progress.start()
        if self._beat is not None:
            self._beat.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._beat is not None:
            self._stop.set()
            self._beat.join(timeout=5)

    def _heartbeat(self) -> None:
        """Every :attr:`heartbeat_s` without a line, one saying which engine run goes on and how far it is."""
        from ..results.summary import format_duration  # pandas: not before the command line is known good

        while not self._stop.wait(min(self.heartbeat_s, 1.0)):
            with self._lock:
                now = time.monotonic()
                if self._current is None or now - self._last_line < self.heartbeat_s:
                    continue
                c = self._current
                where = (f"epoch {c['epochs']} of {self.epochs} done, loss {c['loss']:.4g}" if c["epochs"]
                         else "first epoch (tracing, compiling)" if c["prepared"] else "starting")
                self._last_line = now
            print(f"  {c['label']} repeat {c['repeat']}: {where}, {format_duration(now - c['since'])} so far",
                  file=self.file, flush=True)

    def _runs_text(self, done: int) -> str:
        return f"{done}/{self.runs} runs" if self.runs else f"{done} runs"

    def _task(self, label: str, repeat: int) -> TaskID:
        key = (label, repeat)
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(
                f"{label}  repeat {repeat} (of {self.repeats})", total=self.epochs,
                where=f"epoch 0/{self.epochs}", status="preparing")
            self._progress.update(self._overall, status=f"running {label}")
        return self._tasks[key]

    def on_event(self, event: dict) -> None:
        """A worker event: ``run`` (:class:`~bridge.results.records.EngineMode`), ``repeat``, ``kind`` and
        the kind's fields."""
        if not self.live:
            self._follow(event)
            return
        task = self._task(event["run"].label, event["repeat"])
        kind = event.get("kind")
        if kind == "epoch":
            n = event["epoch"] + 1
            self._progress.update(task, completed=n, where=f"epoch {n}/{self.epochs}",
                                  status=f"loss {event['train_loss']:.4g}")
        elif kind == "prepared":
            self._progress.update(task, status="first epoch (compiling)")
        elif kind == "error":
            self._progress.update(task, status="[red]failed")
            self._progress.stop_task(task)
        elif kind == "done":
            self._progress.stop_task(task)

    def _follow(self, event: dict) -> None:
        """The plain form keeps what the heartbeat says: the engine run going on and its last epoch."""
        if self._beat is None:
            return
        key = (event["run"].label, event["repeat"])
        with self._lock:
            if self._current is None or self._current["key"] != key:
                self._current = {"key": key, "label": key[0], "repeat": key[1], "since": time.monotonic(),
                                 "epochs": 0, "loss": float("nan"), "prepared": False}
            kind = event.get("kind")
            if kind == "prepared":
                self._current["prepared"] = True
            elif kind == "epoch":
                self._current.update(epochs=event["epoch"] + 1, loss=event["train_loss"])
            elif kind in ("done", "error"):
                self._current = None

    def on_outcome(self, outcome) -> None:
        """A finished engine run (:class:`bridge.results.records.Outcome`)."""
        if outcome.failed:
            self.printed.add(outcome.message)
            print(f"  {outcome.message}", file=sys.stderr, flush=True)
        if self.live:
            task = self._task(outcome.run.label, outcome.repeat)
            if not outcome.ok:
                self._progress.update(task, status=f"[red]{outcome.status}")
            self._progress.stop_task(task)
            self._progress.advance(self._overall)
            done = int(self._progress.tasks[self._overall].completed)
            self._progress.update(self._overall, where=self._runs_text(done),
                                  status="done" if done == self.runs else "starting next run")
        elif outcome.ok and not self.quiet:
            last = outcome.epochs[-1] if outcome.epochs else {}
            with self._lock:
                self._current, self._last_line = None, time.monotonic()
            print(f"  {outcome.run.label} repeat {outcome.repeat}: {len(outcome.epochs)} epochs in "
                  f"{outcome.wall_s:.1f} s, test accuracy {last.get('test_accuracy', float('nan')):.3f}",
                  file=self.file, flush=True)
