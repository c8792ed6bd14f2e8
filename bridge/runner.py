"""Running a comparison: ``run(spec, out) -> Results``, the library call behind ``bridge.compare``.

The parent builds the batch plan and initial weights once, then starts one spawned worker process per
engine run (engines interleaved within each repeat, one at a time so they never share the CPU). It
imports no framework itself. A worker that raises, exits hard or passes ``spec.timeout`` is reported
with its error; the others' results are still written.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

from . import batchplan, registry
from .protocol import Job
from .records import REUSABLE, Outcome, outcome_from_record, read_record, worker_stem
from .registry import EngineRun
from .spec import Spec
from .worker import EVENT_PREFIX, worker_environment


def cuda_visible() -> bool:
    """Whether an NVIDIA GPU is visible to this process (a device node or a working driver tool)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if any(Path("/dev").glob("nvidia[0-9]*")):
        return True
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def check_device(spec: Spec) -> None:
    """Fail at once, before any worker starts, when the spec asks for a GPU that is not there."""
    if spec.device == "cuda" and not cuda_visible():
        raise DeviceError("--device cuda: no CUDA GPU is visible on this machine (no /dev/nvidia* device, "
                          "nvidia-smi fails or CUDA_VISIBLE_DEVICES hides it); run with --device cpu")


class DeviceError(RuntimeError):
    pass


def resolve_threads(spec: Spec) -> int:
    return spec.threads or os.cpu_count() or 1


def _last_error_line(log: Path) -> str:
    try:
        lines = [s.strip() for s in log.read_text(errors="replace").splitlines() if s.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


# --- stopping on a signal ----------------------------------------------------------------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class _Stop:
    """This process's signal state while a run may be stopped (one per process, as signals are)."""

    def __init__(self):
        self.depth = 0  # nested stop_on_signals() contexts
        self.defer = 0  # > 0: a first signal is only noted; the code that runs then checks `signum`
        self.signum: int | None = None  # the first signal received
        self.results = None  # the results written last, for an Interrupted raised by the handler
        self.workers: list[subprocess.Popen] = []  # each leads its own process group
        self.previous: dict = {}

    def kill_workers(self) -> None:
        for proc in self.workers:
            if proc.returncode is None:  # not reaped yet, so its process group id cannot have been reused
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: frameworks spawn helpers
                except (ProcessLookupError, PermissionError):
                    pass

    def handle(self, signum, frame) -> None:
        if self.signum is not None:  # a second signal while cleaning up after the first: go now
            self.kill_workers()
            if sys.stdout.isatty():
                os.write(1, b"\x1b[?25h\n")  # the live progress display hides the cursor
            os.write(2, f"bridge: {signal.Signals(signum).name} again, stopped at once; files written before "
                        "are kept\n".encode())
            os._exit(128 + signum)
        self.signum = signum
        self.kill_workers()
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
def stop_on_signals():
    """While inside, the first SIGINT or SIGTERM kills the running worker's process group and stops the run:
    :func:`run` writes what finished and raises :class:`Interrupted`; anywhere else the handler raises it at
    once. A second one exits the process at once (128 + signal number), without a traceback. Nested uses
    share one state. Handlers go in only in the main thread (Python allows no other), and a signal ignored
    on entry (``nohup``, a background job) stays ignored."""
    stop = _STOP
    if stop.depth == 0:
        stop.signum, stop.results, stop.workers, stop.previous = None, None, [], {}
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


def _worker_started(proc: subprocess.Popen) -> None:
    """:func:`run_engine` reports each worker the moment it exists, so that a signal can stop it."""
    stop = _STOP
    if stop.depth:
        stop.workers = [p for p in stop.workers if p.returncode is None] + [proc]
        if stop.signum is not None:  # the signal came while it was starting
            stop.kill_workers()


def run_engine(job: Job, work: Path, timeout: float, on_event: Callable[[dict], None] | None = None
               ) -> Outcome:
    """Start a worker for ``job``, wait at most ``timeout`` seconds, and read what it left."""
    run = EngineRun(job.engine, job.mode)
    stem = f"{job.engine.replace('.', '_')}-{job.mode}-r{job.repeat}"
    job_path, log_path, record_path = work / f"{stem}.job.json", work / f"{stem}.log", Path(job.record_path)
    record_path.unlink(missing_ok=True)
    job.save(job_path)
    env = {**os.environ, **worker_environment(job.threads, job.experiment.device), "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    with open(log_path, "w") as log:
        # bytes that are not UTF-8 become U+FFFD rather than an exception in the reader
        proc = subprocess.Popen([sys.executable, "-m", "bridge.worker", str(job_path)], env=env,
                                stdout=subprocess.PIPE, stderr=log, text=True, encoding="utf-8",
                                errors="replace", start_new_session=True)
        _worker_started(proc)

        def pump() -> None:
            # Must never stop reading: a worker whose stdout pipe fills up blocks until its timeout.
            for line in proc.stdout:
                event = None
                if line.startswith(EVENT_PREFIX):
                    try:
                        event = json.loads(line[len(EVENT_PREFIX):])
                    except ValueError:  # an engine printed the prefix itself, or a line was cut
                        pass
                if not isinstance(event, dict):
                    log.write(line)
                elif on_event:
                    try:
                        on_event({"run": run, "repeat": job.repeat, **event})
                    except Exception as e:  # noqa: BLE001 - a display fault must not stop the draining
                        log.write(f"bridge: progress display failed ({type(e).__name__}: {e}) on: {line}")

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: frameworks may have spawned children
            proc.wait()
        reader.join(timeout=5)
    wall = time.monotonic() - start
    lines = read_record(record_path)
    out = outcome_from_record(run, job.repeat, lines, wall_s=wall, log=str(log_path))
    error = next((line for line in lines if line["kind"] == "error"), None)
    finished = any(line["kind"] == "done" for line in lines)
    if timed_out:
        out.status = "timeout"
        out.message = (f"{run.label} passed its timeout of {timeout:g} s after {len(out.epochs)} epoch(s) "
                       f"and was stopped; raise --timeout or lower --epochs")
    elif error is not None:
        out.status = "error"
        out.message = f"{run.label} failed: {error['error']}"
    elif proc.returncode != 0 or not finished:
        out.status = "crashed"
        how = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exited with code {proc.returncode}")
        tail = _last_error_line(log_path)
        out.message = f"{run.label} {how} after {len(out.epochs)} epoch(s)" + (f": {tail}" if tail else "")
    elif mismatches := [line for line in lines if line["kind"] == "mismatch"]:
        out.status = "mismatch"
        more = f" (and in {len(mismatches) - 1} more epoch(s))" if len(mismatches) > 1 else ""
        out.message = f"{run.label} mismatch: {mismatches[0]['message']}{more}"
    elif diverged := next((line for line in lines if line["kind"] == "diverged"), None):
        out.status = "diverged"
        out.message = f"{run.label} diverged: {diverged['message']}"
    return out


def run(spec: Spec, out: Path, on_event: Callable[[dict], None] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None, plan_dir: Path | None = None,
        reuse: Iterable[Outcome] = ()):
    """Run the comparison ``spec`` describes, write the results under ``out`` and return them.

    With no engines named, every registered engine that can run here runs, and the others are reported
    as skipped. The batch plan goes to ``plan_dir`` (default ``out/plan``). ``reuse`` holds finished
    outcomes (:func:`bridge.resume.finished`) taken as they are instead of running those engine runs
    again; every run that ends ``ok`` or ``diverged`` is stamped as reusable.

    A first SIGINT or SIGTERM stops the running worker (its whole process group), marks that run
    ``interrupted``, writes the results of every run that finished and raises :class:`Interrupted`
    carrying them (see :func:`stop_on_signals`).
    """
    from . import resume, results

    with stop_on_signals() as stop:
        out = Path(out)
        check_device(spec)
        runs = registry.runs(spec)
        outcomes: list[Outcome] = []
        cannot_run: list[Outcome] = []
        ready = []
        for r in runs:
            reason = registry.unavailable_reason(r.engine)
            if reason:
                cannot_run.append(Outcome(r, 0, "unavailable" if spec.engines else "skipped", reason))
            else:
                ready.append(r)
        # a signal up to here raises at once: nothing has finished in this call, nothing is written
        plan, data = batchplan.prepare(spec, Path(plan_dir) if plan_dir else out / "plan")
        work = out / "workers"
        work.mkdir(parents=True, exist_ok=True)
        threads = resolve_threads(spec)
        reused = {(o.run, o.repeat): o for o in reuse}
        # from here a signal stops the running worker and this loop, and what finished is still written
        with stop.deferred():
            for repeat in range(spec.repeats):
                for r in ready:
                    if stop.signum is not None:
                        break
                    if (r, repeat) in reused:
                        outcomes.append(reused[r, repeat])
                        continue
                    stamp = resume.stamp_path(work, r.engine, r.mode, repeat)
                    stamp.unlink(missing_ok=True)  # this run's earlier result is about to be replaced
                    versions = resume.installed_versions(r.engine)  # before it starts: what it will load
                    job = Job(engine=r.engine, mode=r.mode, repeat=repeat, plan_dir=str(plan.root),
                              spec=spec.to_dict(), threads=threads,
                              record_path=str(work / f"{worker_stem(r.engine, r.mode, repeat)}.jsonl"))
                    outcome = run_engine(job, work, spec.timeout, on_event)
                    if stop.signum is not None and outcome.status == "crashed":  # killed by us, not by a fault
                        outcome.status = "interrupted"
                        outcome.message = (f"{r.label} repeat {repeat + 1} was stopped by "
                                           f"{signal.Signals(stop.signum).name} after {len(outcome.epochs)} "
                                           "epoch(s)")
                    outcomes.append(outcome)
                    if outcome.status in REUSABLE:
                        resume.stamp(stamp, spec, threads, versions, outcome.wall_s)
                    if on_outcome and outcome.status != "interrupted":
                        on_outcome(outcome)
            stop.results = results.write(spec, plan, data, outcomes + cannot_run, out, threads)
        if stop.signum is not None:
            raise Interrupted(stop.signum, stop.results)
        return stop.results
