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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import batchplan, registry
from .protocol import Job
from .registry import EngineRun
from .spec import Spec
from .worker import EVENT_PREFIX, worker_environment


@dataclass
class Outcome:
    """What one engine run left: status ``ok``, ``error``, ``crashed``, ``timeout``, ``unavailable`` (named
    but cannot run here) or ``skipped`` (not named, and cannot run here)."""
    run: EngineRun
    repeat: int
    status: str
    message: str = ""
    report: dict = field(default_factory=dict)
    epochs: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "skipped")


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


def _read_record(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = []
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:  # a line cut short by a hard exit
            break
    return lines


def _last_error_line(log: Path) -> str:
    try:
        lines = [s.strip() for s in log.read_text(errors="replace").splitlines() if s.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


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
        proc = subprocess.Popen([sys.executable, "-m", "bridge.worker", str(job_path)], env=env,
                                stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)

        def pump() -> None:
            for line in proc.stdout:
                if line.startswith(EVENT_PREFIX):
                    if on_event:
                        on_event({"run": run, "repeat": job.repeat, **json.loads(line[len(EVENT_PREFIX):])})
                else:
                    log.write(line)

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
    lines = _read_record(record_path)
    out = Outcome(run, job.repeat, "ok", wall_s=wall, log=str(log_path))
    for line in lines:
        if line["kind"] == "prepared":
            out.report = line["report"]
        elif line["kind"] == "epoch":
            out.epochs.append(line)
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
    return out


def run(spec: Spec, out: Path, on_event: Callable[[dict], None] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None, plan_dir: Path | None = None):
    """Run the comparison ``spec`` describes, write the results under ``out`` and return them.

    With no engines named, every registered engine that can run here runs, and the others are reported
    as skipped. The batch plan goes to ``plan_dir`` (default ``out/plan``).
    """
    from . import results

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
    plan, data = batchplan.prepare(spec, Path(plan_dir) if plan_dir else out / "plan")
    work = out / "workers"
    work.mkdir(parents=True, exist_ok=True)
    threads = resolve_threads(spec)
    for repeat in range(spec.repeats):
        for r in ready:
            job = Job(engine=r.engine, mode=r.mode, repeat=repeat, plan_dir=str(plan.root),
                      spec=spec.to_dict(), threads=threads,
                      record_path=str(work / f"{r.engine.replace('.', '_')}-{r.mode}-r{repeat}.jsonl"))
            outcome = run_engine(job, work, spec.timeout, on_event)
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
    return results.write(spec, plan, data, outcomes + cannot_run, out, threads)
