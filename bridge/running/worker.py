"""The worker: one engine run in its own process, ``python -m bridge.running.worker JOB.json``.

Thread settings are in the environment the launcher starts it with, before NumPy or the engine's
framework is imported. Everything the run produces is appended to a JSON-lines record file as it
happens (``prepared``, one ``epoch`` line per epoch, a ``mismatch`` line for an epoch whose batches
disagree, a ``diverged`` line, then ``done`` or ``error``), so a worker that later crashes or hangs
still leaves what it finished. Each line is also echoed on stdout with a ``@bridge`` prefix for live
progress.

The worker checks what every engine returns, here and nowhere else:

- **Batches.** Before each epoch the worker computes the CRC-32C of every batch over exactly the arrays
  it hands to ``train_epoch`` (untimed) and compares them with the plan's (``checksums.npy``, computed
  when the plan was built). What that proves is narrow: the plan files the worker handed over are intact,
  the batches every engine received are the ones the plan describes. It does not prove what an engine
  trained on; parity with the reference (the test suite, the parity figure) proves that. An engine that
  checksums what its framework actually read (``EpochResult.checksums``) extends the proof across its
  hand-off, and must agree with the worker. A disagreement is a ``mismatch``: the run goes on, its
  numbers are recorded but kept out of the summary's comparisons, and the run counts as failed.
- **Losses.** One per batch of the plan (otherwise an error: the engine broke the protocol), all finite.
  A non-finite loss is a ``diverged`` run: a result of the experiment, not a failure of the tool. The
  epoch is recorded and training stops after it (nothing after a NaN weight is worth the time).
- **Logits.** ``predict`` returns ``(N, classes)`` (otherwise an error) and finite values (otherwise
  ``diverged``, with that epoch's loss and accuracy recorded as NaN rather than computed from NaN).

Around each ``train_epoch`` call it also measures what other processes took from the machine
(:mod:`bridge.running.interference`); every epoch line carries it (``machine``). It measures the resident
memory of its process tree (:mod:`bridge.proctree`): before ``prepare`` (``rss_baseline_bytes``, in
the ``prepared`` report beside the import's and the build's), each epoch's sampled peak (``rss_peak_bytes``
in its ``epoch`` line), and once training ended a ``memory`` line with the run's peak, the worker's
``VmHWM``, the bytes of one gathered epoch and what the engine's ``memory_report`` hook says; then a
``final`` line with what its ``final_report`` hook says (cuDNN's chosen algorithms on a GPU), if anything.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np

from ..contract import Job
from ..experiment.plan import batch_checksum
from .interference import Meter
from ..proctree import PeakSampler, high_water_mark, tree_rss
from .selection import module as engine_module

EVENT_PREFIX = "@bridge "
TF32_OVERRIDE = "NVIDIA_TF32_OVERRIDE"
HIDE_GPUS = "CUDA_VISIBLE_DEVICES"
PARENT = "BRIDGE_WORKER_PARENT"  # the pid of the process that started the worker, set by the launcher
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# Variables each runtime reads for its thread pools; set before any framework import.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "JULIA_NUM_THREADS")


def worker_environment(threads: int, device: str) -> dict[str, str]:
    """The variables a worker is started with, in place before NumPy or any framework is imported: the
    thread count for every runtime; on a GPU ``NVIDIA_TF32_OVERRIDE=0``, which cuBLAS and cuDNN honour
    whatever the framework asks for (without it, Flux's and Knet's cuDNN convolutions may use TF32 on
    Ampere and later GPUs, their default math modes allowing tensor cores; the Python engines also turn
    TF32 off through their own settings and record both); on the CPU ``CUDA_VISIBLE_DEVICES=-1``, so that a
    CPU run never touches a GPU the machine has: Knet's ``__init__`` would otherwise initialise CUDA.jl
    (the driver, NVML, possibly a download of the CUDA toolkit) inside a CPU run's measured import, and
    TensorFlow or Keras' torch backend would place work on the GPU by themselves."""
    env = {name: str(threads) for name in THREAD_VARIABLES}
    if device == "cuda":
        env[TF32_OVERRIDE] = "0"
    else:
        env[HIDE_GPUS] = "-1"
    return env


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean softmax cross-entropy (float64) and accuracy of logits ``(N, K)`` against labels ``(N,)``."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    y = np.asarray(y, dtype=np.int64)
    loss = -log_p[np.arange(len(y)), y].mean()
    return float(loss), float((z.argmax(axis=1) == y).mean())


class Record:
    def __init__(self, path: Path):
        self.fh = open(path, "a", buffering=1)

    def write(self, kind: str, **fields) -> None:
        line = json.dumps({"kind": kind, "t": time.time(), **fields})
        self.fh.write(line + "\n")
        self.fh.flush()
        print(EVENT_PREFIX + line, flush=True)


class ContractError(RuntimeError):
    """An engine returned what the protocol does not allow; the message says what, in one line."""


def check_losses(losses, batches: int, epoch: int) -> np.ndarray:
    losses = np.asarray(losses, dtype=np.float64)
    if losses.shape != (batches,):
        got = f"{len(losses)} losses" if losses.ndim == 1 else f"losses of shape {losses.shape}"
        raise ContractError(f"train_epoch returned {got} for epoch {epoch}; the plan has {batches} batches")
    return losses


def _differing(what: str, got: list[str], want: list[str], got_name: str, want_name: str) -> str:
    steps = [i for i in range(max(len(got), len(want)))
             if i >= len(got) or i >= len(want) or got[i] != want[i]]
    i = steps[0]
    first_got, first_want = (seq[i] if i < len(seq) else "none" for seq in (got, want))
    return (f"{what}: {len(steps)} of {len(want)} batches, first at step {i} "
            f"({got_name} {first_got}, {want_name} {first_want})")


def checksum_problems(epoch: int, handed: list[str], planned: list[str], reported) -> list[str]:
    """What disagrees among the worker's checksums of the arrays it handed over, the plan's, and the
    engine's own (``reported``, None when the engine reports none)."""
    problems = []
    if handed != planned:
        problems.append(_differing(f"batches differ from the plan in epoch {epoch}", handed, planned,
                                   "handed over", "plan"))
    if reported is not None:
        reported = [str(c) for c in reported]
        if reported != handed:
            problems.append(_differing(f"the engine's own checksums differ from the batches handed to it in "
                                       f"epoch {epoch}", reported, handed, "engine", "handed over"))
    return problems


def evaluate(module, session, plan, split: str, chunk: int = 4096) -> tuple[float, float, int]:
    """Loss and accuracy on the whole ``split`` from the engine's logits, and how many examples got
    non-finite logits (then loss and accuracy are NaN: an argmax over NaN would invent an accuracy)."""
    x, y = plan.split(split)
    classes = plan.classes
    parts = []
    for i in range(0, len(y), chunk):
        n = min(chunk, len(y) - i)
        logits = np.asarray(module.predict(session, x[i:i + chunk]), dtype=np.float64)
        if logits.shape != (n, classes):
            raise ContractError(f"predict returned logits of shape {logits.shape} for {n} {split} examples; "
                                f"expected ({n}, {classes})")
        parts.append(logits)
    logits = np.concatenate(parts)
    bad = int((~np.isfinite(logits)).any(axis=1).sum())
    if bad:
        return float("nan"), float("nan"), bad
    return (*softmax_cross_entropy(logits, y), 0)


def divergence(epoch: int, losses: np.ndarray, bad_examples: dict[str, tuple[int, int]],
               steps_per_epoch: int) -> str | None:
    """The one-line message of a run that diverged in ``epoch``, or None."""
    stopped = "training stopped after that epoch"
    bad = np.flatnonzero(~np.isfinite(losses))
    if len(bad):
        i = int(bad[0])
        return (f"first non-finite loss at epoch {epoch} step {i} ({losses[i]}; results.csv step "
                f"{epoch * steps_per_epoch + i}); {stopped}")
    for split, (n, total) in bad_examples.items():
        if n:
            return f"non-finite logits for {n} of {total} {split} examples after epoch {epoch}; {stopped}"
    return None


def memory_measures(module, session, peaks: list[int], epoch_bytes: int | None) -> dict:
    """What the ``memory`` line holds once training ended (:mod:`bridge.proctree`): the tree's peak
    over every epoch, the worker's ``VmHWM``, one gathered epoch's bytes, and the engine's own
    ``memory_report`` (device memory on a GPU; Julia's statistics)."""
    measures = {"rss_peak_bytes": max(peaks) if peaks else None, "hwm_bytes": high_water_mark(),
                "epoch_bytes": epoch_bytes, **hook_report(module, "memory_report", session)}
    return {k: v for k, v in measures.items() if v is not None}


def hook_report(module, hook: str, session) -> dict:
    """What the engine's optional after-training ``hook`` (``memory_report``, ``final_report``) says; one that
    fails leaves its error in one line (``<hook>_error``), not the run: the epochs it trained are results."""
    function = getattr(module, hook, None)
    if function is None:
        return {}
    try:
        return dict(function(session))
    except Exception as e:  # noqa: BLE001 - any framework's error; the run's results stand
        return {f"{hook}_error": next(iter(f"{type(e).__name__}: {e}".splitlines()), type(e).__name__)}


def run_job(job: Job) -> int:
    """Run ``job``'s engine over every epoch of its plan, checking what it returns and appending every
    step to the record; 0 when the record ends with ``done``, 1 with ``error``."""
    record = Record(Path(job.record_path))
    try:
        module = engine_module(job.engine)
        plan = job.plan
        slices = plan.batch_slices()
        baseline = tree_rss()  # Python, NumPy, bridge, the plan opened: the worker's share before the engine's
        session, report = module.prepare(job)
        if baseline is not None:
            report["rss_baseline_bytes"] = baseline
        report.setdefault("framework", module.FRAMEWORK)
        if job.device == "cuda":
            report.setdefault(TF32_OVERRIDE, os.environ.get(TF32_OVERRIDE, "unset"))
        if plan.model == "cnn":
            report["maxpool_gradient"] = job.maxpool_gradient
        record.write("prepared", report=report)
        meter = Meter()
        sampler, peaks, epoch_bytes = PeakSampler().start(), [], None
        for epoch in range(plan.epochs):
            x, y = plan.epoch(epoch)
            epoch_bytes = int(x.nbytes + y.nbytes)
            # before the engine gets them, outside its clock, over exactly what it gets
            handed = [batch_checksum(x[s], y[s]) for s in slices]
            meter.start()  # what others take from the machine while the engine is timed
            result = module.train_epoch(session, x, y)
            window = meter.stop()
            losses = check_losses(result.losses, len(slices), epoch)
            metrics, bad_examples = {}, {}
            for split in ("train", "test"):
                metrics[f"{split}_loss"], metrics[f"{split}_accuracy"], bad = evaluate(module, session, plan, split)
                bad_examples[split] = (bad, plan.meta[f"n_{split}"])
            own = {} if result.checksums is None else {"engine_checksums": [str(c) for c in result.checksums]}
            peak = sampler.take()  # the epoch's: its gather, its training and its evaluation
            peaks += [peak] if peak is not None else []
            record.write("epoch", epoch=epoch, seconds=float(result.seconds), losses=losses.tolist(),
                         checksums=handed, **own, **metrics, machine=window,
                         **({} if peak is None else {"rss_peak_bytes": peak}),
                         **({} if result.compile_s is None else {"compile_s": float(result.compile_s)}))
            problems = checksum_problems(epoch, handed, plan.expected_checksums(epoch), result.checksums)
            if problems:
                record.write("mismatch", epoch=epoch, message="; ".join(problems))
            del x, y, result  # one materialised epoch at a time: dropped before the next is gathered
            diverged = divergence(epoch, losses, bad_examples, plan.steps_per_epoch)
            if diverged:
                record.write("diverged", epoch=epoch, message=diverged)
                break
        sampler.stop()
        record.write("memory", memory=memory_measures(module, session, peaks, epoch_bytes))
        final = hook_report(module, "final_report", session)
        if final:
            record.write("final", report=final)
        record.write("done")
        return 0
    except BaseException as e:  # a failing engine must still leave its record
        error = str(e) if isinstance(e, ContractError) else f"{type(e).__name__}: {e}".strip()
        error = next(iter(error.splitlines()), type(e).__name__)  # one line; the rest is in the traceback
        record.write("error", error=error, traceback=traceback.format_exc())
        return 1


def parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent ends (``prctl(PR_SET_PDEATHSIG)``): the
    kernel delivers it, so it works while the interpreter is held by one long call that never releases the
    GIL (a juliacall epoch, a C extension), where no Python thread can run. False where that is not
    available (not Linux, no C library)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(interval: float = 1.0) -> None:
    """End this worker when its parent dies. A parent killed outright (a Dask worker lost mid-sweep, a
    SIGKILL) cannot stop its workers; without this they would run on, orphaned, and share the machine with
    the next timed run. Two ways, both needed:

    - the kernel's parent-death signal (:func:`parent_death_signal`): SIGKILL to the worker at once, even in
      the middle of a call that holds the GIL. (Linux sends it when the *thread* that started the worker
      ends; the launcher's thread waits for its worker, so that is when the parent ends.)
    - a daemon thread that wakes once a second and, when the parent is gone, kills the worker's whole
      process group (it leads one, as the runner starts it): what the framework started too, which the
      parent-death signal does not reach; and the only way off Linux. Nothing measurable in an epoch.

    The launcher names the parent (``BRIDGE_WORKER_PARENT``), so a parent that died before the signal
    was armed is noticed here too."""
    parent = int(os.environ.get(PARENT) or os.getppid())

    def orphaned() -> bool:
        return os.getppid() != parent

    def end() -> None:
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os._exit(1)

    parent_death_signal()
    if orphaned():  # the parent ended before the signal was armed
        end()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if orphaned():
                end()

    threading.Thread(target=watch, name="bridge-parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    die_with_parent()
    job = Job.load(Path(argv[0]))
    # the launcher sets them too (see worker_environment); a worker started by hand gets them here
    os.environ.update(worker_environment(job.threads, job.device))
    return run_job(job)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
