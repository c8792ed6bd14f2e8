"""Stopping on a signal: the first SIGINT (Ctrl-C) or SIGTERM (a scheduler) stops the running worker and
the run, and what finished is still written; a second one exits at once, and so does a command still
running :data:`STOP_GRACE_S` seconds after the first (code that swallowed the signal, a library that
does not close: a stop is never left waiting on them).

One state per process, as signals are. :func:`bridge.running.runner.run` and the commands
(``bridge.compare``, ``bridge.sweep``) enter :func:`stop_on_signals`; the runner reports every worker it
starts (:func:`worker_started`) so that a signal can kill its whole process group. A command whose
threads may outlive it (Dask's) bounds its interpreter's exit too: :func:`exit_within`.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager

from ..cli import signal_exit_code

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_GRACE_S = 60.0
"""Seconds a command may go on after the first signal (writing what finished, drawing the report, closing
Dask) before it stops at once as on a second signal (``$BRIDGE_STOP_GRACE_S``)."""


def stop_grace_s() -> float:
    """:data:`STOP_GRACE_S`, or ``$BRIDGE_STOP_GRACE_S`` when set to a number of seconds greater than 0."""
    try:
        given = float(os.environ.get("BRIDGE_STOP_GRACE_S", ""))
    except ValueError:
        return STOP_GRACE_S
    return given if given > 0 else STOP_GRACE_S


def _leave(code: int, line: str) -> None:
    """Exit this process now with ``code``, after one line on stderr (and the cursor the live progress
    display hid shown again): no handler, no thread, no ``atexit`` function runs any more."""
    if sys.stdout.isatty():
        os.write(1, b"\x1b[?25h\n")
    os.write(2, (line + "\n").encode())
    os._exit(code)


class Interrupted(KeyboardInterrupt):
    """A signal stopped the run: SIGINT (Ctrl-C) or SIGTERM (a scheduler). Every engine run that finished is
    written; ``results`` holds them, or is None when the signal came before anything could be written.

    A KeyboardInterrupt, so that code catching Ctrl-C catches it and no ``except Exception`` swallows it."""

    def __init__(self, signum: int, results=None):
        self.signum, self.results = signum, results
        super().__init__(f"stopped by {self.signal_name}")

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return signal_exit_code(self.signum)


class _Stop:
    """This process's signal state while a run may be stopped (one per process, as signals are)."""

    def __init__(self):
        self.depth = 0  # nested stop_on_signals() contexts
        self.defer = 0  # > 0: a first signal is only noted; the code that runs then checks `signum`
        self.signum: int | None = None  # the first signal received
        self.results = None  # the results written last, for an Interrupted raised by the handler
        self.workers: list[subprocess.Popen] = []  # each leads its own process group
        self.previous: dict = {}
        self.resume: str | None = None  # the command that resumes this one, for the line of a stop at once
        self.grace: threading.Timer | None = None  # armed by the first signal

    def kill_workers(self) -> None:
        for proc in self.workers:
            if proc.returncode is None:  # not reaped yet, so its process group id cannot have been reused
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: frameworks spawn helpers
                except (ProcessLookupError, PermissionError):
                    pass

    def stop_now(self, signum: int, why: str) -> None:
        """Stop at once, whatever runs: the workers' process groups killed, one line, exit 128 + ``signum``."""
        self.kill_workers()
        kept = "files written before are kept" + (f"; resume with: {self.resume}" if self.resume else "")
        _leave(signal_exit_code(signum), f"bridge: {why}, stopped at once; {kept}")

    def handle(self, signum, frame) -> None:
        if self.signum is not None:  # a second signal while cleaning up after the first: go now
            self.stop_now(signum, f"{signal.Signals(signum).name} again")
        self.signum = signum
        self.kill_workers()
        grace = stop_grace_s()
        self.grace = threading.Timer(grace, self.stop_now, (signum, f"still running {grace:g} s after "
                                     f"{signal.Signals(signum).name} (waiting longer: $BRIDGE_STOP_GRACE_S)"))
        self.grace.daemon = True
        self.grace.start()
        if not self.defer:
            raise Interrupted(signum, self.results)

    @contextmanager
    def deferred(self):
        """Code that must not be cut short (the loop over workers, writing the results): inside, the first
        signal stops the running worker and sets ``signum``, and the code stops at its next check."""
        self.defer += 1
        try:
            yield
        finally:
            self.defer -= 1


_STOP = _Stop()


@contextmanager
def stop_on_signals(resume: str | None = None):
    """While inside, the first SIGINT or SIGTERM kills the running worker's process group and stops the run:
    :func:`bridge.running.runner.run` writes what finished and raises :class:`Interrupted`; anywhere else
    the handler raises it at once. A second one exits the process at once (128 + signal number), without a
    traceback, as does the process still inside :func:`stop_grace_s` seconds after the first; that line
    ends with ``resume`` (the command that resumes this one) where given. Nested uses share one state (the
    outermost's ``resume``). Handlers go in only in the main thread (Python allows no other), and a signal
    ignored on entry (``nohup``, a background job) stays ignored."""
    stop = _STOP
    if stop.depth == 0:
        stop.signum, stop.results, stop.workers, stop.previous = None, None, [], {}
        stop.resume, stop.grace = resume, None
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                previous = signal.getsignal(sig)
                if previous is not signal.SIG_IGN:
                    stop.previous[sig] = signal.SIG_DFL if previous is None else previous
                    signal.signal(sig, stop.handle)
    stop.depth += 1
    try:
        yield stop
    finally:
        stop.depth -= 1
        if stop.depth == 0:
            for sig, previous in stop.previous.items():
                signal.signal(sig, previous)
            stop.previous = {}
            if stop.grace is not None:  # stopped in time: the caller goes on (a test, the Python API)
                stop.grace.cancel()


def worker_started(proc: subprocess.Popen) -> None:
    """The runner reports each worker the moment it exists, so that a signal can stop it."""
    stop = _STOP
    if stop.depth:
        stop.workers = [p for p in stop.workers if p.returncode is None] + [proc]
        if stop.signum is not None:  # the signal came while it was starting
            stop.kill_workers()


def exit_within(seconds: float, code: int, command: str) -> None:
    """Bound this process's exit, from the end of ``command``'s main to the end of the interpreter: should
    Python wait longer than ``seconds`` there (joining a library's thread, an ``atexit`` function waiting
    on a process), exit with ``code`` at once, saying so. Only for a command's ``__main__``, just before
    ``sys.exit(code)``: the timer is a daemon thread that nothing cancels."""
    timer = threading.Timer(seconds, _leave, (code, f"{command}: Python's exit still waited {seconds:g} s after "
                                              "the command ended (on a library's threads or processes); "
                                              "exited without them; what was written is kept"))
    timer.daemon = True
    timer.start()
