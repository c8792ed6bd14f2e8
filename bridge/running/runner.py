"""Running a comparison: ``run(spec, out) -> Results``, the library call behind ``bridge.compare``.

The parent builds the batch plan and initial weights once, then starts one worker process per engine
run (engines interleaved within each repeat, one at a time so they never share the CPU). It imports no
framework itself. A worker that raises, exits hard or passes ``spec.timeout`` is reported with its
error; the others' results are still written. After the engines, with nothing else running, it measures
the machine (:mod:`bridge.running.peaks`), and hands everything to :func:`bridge.results.store.write`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from ..contract import Job
from ..errors import UsageError
from ..gpus import cuda_visible
from ..experiment import plan as batch_plan
from ..results import store
from ..results import records
from ..results.records import EngineMode, Outcome
from . import fingerprint, interference, peaks, resume
from .adaptive import Precision
from .selection import Selection, every_plan_export, select
from .stopping import Interrupted, stop_on_signals, worker_started
from .worker import EVENT_PREFIX, PARENT, worker_environment


class DeviceError(UsageError):
    pass


def check_device(device: str) -> None:
    """Fail at once, before any worker starts, when the spec asks for a GPU that is not there."""
    if device == "cuda" and not cuda_visible():
        raise DeviceError("--device cuda: no CUDA GPU is visible on this machine (no /dev/nvidia* device, "
                          "nvidia-smi fails or CUDA_VISIBLE_DEVICES hides it); run with --device cpu")


def resolve_threads(threads: int) -> int:
    """``--threads``: 0 means every core this process may use (affinity, a container's CPU quota)."""
    return threads or interference.usable_cores()[0]


def _last_error_line(log: Path) -> str:
    try:
        lines = [s.strip() for s in log.read_text(errors="replace").splitlines() if s.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _launch(job_path: Path, log_path: Path, env: dict, timeout: float,
            on_event: Callable[[dict], None] | None) -> tuple[int, bool, float]:
    """Start ``python -m bridge.running.worker JOB`` in its own process group, pass its events on and wait
    at most ``timeout`` seconds; ``(exit code, timed out, wall seconds)``."""
    start = time.monotonic()
    with open(log_path, "w") as log:
        # bytes that are not UTF-8 become U+FFFD rather than an exception in the reader
        proc = subprocess.Popen([sys.executable, "-m", "bridge.running.worker", str(job_path)], env=env,
                                stdout=subprocess.PIPE, stderr=log, text=True, encoding="utf-8",
                                errors="replace", start_new_session=True)
        worker_started(proc)

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
                        on_event(event)
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
    return proc.returncode, timed_out, time.monotonic() - start


def _status(out: Outcome, lines: list[dict], returncode: int, timed_out: bool, timeout: float) -> Outcome:
    """The outcome's status and message, from how its worker ended and what its record says."""
    label = out.run.label
    error = next((line for line in lines if line["kind"] == "error"), None)
    if timed_out:
        out.status = "timeout"
        out.message = (f"{label} passed its timeout of {timeout:g} s after {len(out.epochs)} epoch(s) "
                       f"and was stopped; raise --timeout or lower --epochs")
    elif error is not None:
        out.status, out.message = "error", f"{label} failed: {error['error']}"
    elif returncode != 0 or not any(line["kind"] == "done" for line in lines):
        how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
        tail = _last_error_line(Path(out.log))
        out.status = "crashed"
        out.message = f"{label} {how} after {len(out.epochs)} epoch(s)" + (f": {tail}" if tail else "")
    elif mismatches := [line for line in lines if line["kind"] == "mismatch"]:
        more = f" (and in {len(mismatches) - 1} more epoch(s))" if len(mismatches) > 1 else ""
        out.status, out.message = "mismatch", f"{label} mismatch: {mismatches[0]['message']}{more}"
    elif diverged := next((line for line in lines if line["kind"] == "diverged"), None):
        out.status, out.message = "diverged", f"{label} diverged: {diverged['message']}"
    return out


def run_engine(job: Job, run: EngineMode, work: Path, timeout: float,
               on_event: Callable[[dict], None] | None = None) -> Outcome:
    """Start a worker for ``job``, wait at most ``timeout`` seconds, and read what it left."""
    stem = records.worker_stem(job.engine, job.mode, job.repeat)
    job_path, log_path, record_path = work / f"{stem}.job.json", work / f"{stem}.log", Path(job.record_path)
    record_path.unlink(missing_ok=True)
    job.save(job_path)
    env = {**os.environ, **worker_environment(job.threads, job.device), "PYTHONUNBUFFERED": "1",
           PARENT: str(os.getpid())}
    forward = (lambda event: on_event({"run": run, "repeat": job.repeat, **event})) if on_event else None
    started = records.utc_now()
    returncode, timed_out, wall = _launch(job_path, log_path, env, timeout, forward)
    lines = records.read_record(record_path)
    outcome = records.outcome_from_record(run, job.repeat, lines, wall_s=wall, log=str(log_path), started=started,
                                          ended=records.utc_now(), host=records.host())
    return _status(outcome, lines, returncode, timed_out, timeout)


def run(spec, out: Path, selection: Selection | None = None, on_event: Callable[[dict], None] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None, plan_dir: Path | None = None,
        reuse: Iterable[Outcome] = (), precision: Precision | None = None,
        measure_peak: bool = False, resume_command: str = "") -> store.Results:
    """Run the comparison ``spec`` describes, write the results under ``out`` and return them.

    ``selection`` (:func:`bridge.running.selection.select` of ``spec``, made here when not given) says
    which engine runs start; with no engines named, every registered engine that can run here runs and
    the others are reported as skipped. The batch plan goes to ``plan_dir`` (default ``out/plan``; a plan
    saved elsewhere gets every engine's files, to be replayed later). ``reuse`` holds finished outcomes
    (:func:`bridge.running.resume.finished`) taken as they are instead of running those engine runs again;
    every run that ends ``ok`` or ``diverged`` is stamped as reusable. With ``precision`` (``--repeats
    auto``), ``spec.repeats`` is the most any engine gets, and an engine's next repeat starts only while
    it needs one (:class:`bridge.running.adaptive.Precision`). The CPU GEMM peak is this machine's cached
    one, or the one ``out``'s earlier run was judged by when runs are reused, unless ``measure_peak``
    (:func:`bridge.running.peaks.cpu_gemm_peak`).

    A first SIGINT or SIGTERM stops the running worker (its whole process group), marks that run
    ``interrupted``, writes the results of every run that finished, with what never started and
    ``resume_command`` (summary.json's ``incomplete``, said at the top of the report), and raises
    :class:`~bridge.running.stopping.Interrupted` carrying them.
    """
    with stop_on_signals() as stop:
        out = Path(out)
        check_device(spec.device)
        selection = selection or select(spec)
        status = "unavailable" if selection.named else "skipped"
        cannot_run = [Outcome(r, 0, status, reason) for r, reason in selection.cannot_run]
        threads = resolve_threads(spec.threads)
        environment = {**fingerprint.parent(spec.hash()), "threads_requested": threads}
        # a signal up to here raises at once: nothing has finished in this call, nothing is written
        plan = batch_plan.prepare(spec, Path(plan_dir) if plan_dir else out / "plan")
        for export in every_plan_export() if plan_dir else selection.plan_exports:
            export(plan)
        work = out / "workers"
        work.mkdir(parents=True, exist_ok=True)
        reused = {(o.run, o.repeat): o for o in reuse}
        outcomes: list[Outcome] = []
        # from here a signal stops the running worker and this loop, and what finished is still written
        started = time.monotonic()
        with stop.deferred():
            for repeat in range(spec.repeats):
                for r in selection.runs:
                    if stop.signum is not None:
                        break
                    if (r, repeat) in reused:
                        outcomes.append(reused[r, repeat])
                        continue
                    if precision and not precision.wants([o for o in outcomes if o.run == r],
                                                          time.monotonic() - started):
                        continue
                    outcome = _run_and_stamp(r, repeat, plan, work, spec.device, threads, spec.timeout, on_event)
                    if stop.signum is not None and outcome.status == "crashed":  # killed by us, not by a fault
                        outcome.status = "interrupted"
                        outcome.message = (f"{r.label} repeat {repeat} was stopped by "
                                           f"{signal.Signals(stop.signum).name} after {len(outcome.epochs)} "
                                           "epoch(s)")
                    outcomes.append(outcome)
                    if on_outcome and outcome.status != "interrupted":
                        on_outcome(outcome)
            # the folder's finished runs of engines this run leaves alone stay in its results
            kept = resume.kept(spec, out, own_runs(selection))
            held = {o.run for o in kept}
            cannot_run = [o for o in cannot_run if o.run not in held]  # skipped now, finished before
            earlier = resume.earlier_peak(out) if reused or kept else None
            environment.update(peaks.measure(spec.device, threads, measure_peak, earlier))  # no engine runs now
            adaptive = precision.summary(outcomes, [r.label for r in selection.runs],
                                         time.monotonic() - started) if precision else None
            incomplete = None
            if stop.signum is not None:
                ran = {(o.run, o.repeat) for o in outcomes}
                never = [] if precision else [f"{r.label} repeat {k}" if spec.repeats > 1 else r.label
                                              for k in range(spec.repeats) for r in selection.runs
                                              if (r, k) not in ran]
                incomplete = {"signal": signal.Signals(stop.signum).name, "never_started": never,
                              "stopped": [o.run.label for o in outcomes if o.status == "interrupted"],
                              "resume": resume_command}
            stop.results = store.write(spec, plan, outcomes + kept + cannot_run, out, environment, adaptive,
                                       kept=kept, incomplete=incomplete)
        if stop.signum is not None:
            raise Interrupted(stop.signum, stop.results)
        return stop.results


def own_runs(selection: Selection) -> set[EngineMode]:
    """The engine runs a comparison speaks for: those it runs, and those named that cannot run here (their
    result in this folder is now ``unavailable``). The folder's finished runs of any other engine are
    kept as they are (:func:`bridge.running.resume.kept`): a run of a few engines adds to a folder, it
    does not shrink it."""
    return set(selection.runs) | ({r for r, _ in selection.cannot_run} if selection.named else set())


def _run_and_stamp(r: EngineMode, repeat: int, plan, work: Path, device: str, threads: int, timeout: float,
                   on_event) -> Outcome:
    """One engine run in a fresh worker; stamped reusable when it ends ``ok`` or ``diverged``."""
    stamp = records.stamp_path(work, r.engine, r.mode, repeat)
    stamp.unlink(missing_ok=True)  # this run's earlier result is about to be replaced
    versions = records.installed_versions(r)  # before it starts: what it will load
    job = Job(engine=r.engine, mode=r.mode, repeat=repeat, plan_dir=str(plan.root), device=device, threads=threads,
              maxpool_gradient=r.maxpool_gradient,
              record_path=str(work / f"{records.worker_stem(r.engine, r.mode, repeat)}.jsonl"))
    outcome = run_engine(job, r, work, timeout, on_event)
    if outcome.status in records.REUSABLE:
        records.stamp(stamp, plan.spec_hash, threads, versions, outcome)
    return outcome
