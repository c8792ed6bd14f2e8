"""The worker: one engine run in its own process, ``python -m bridge.worker JOB.json``.

Thread settings are in the environment the launcher starts it with, before NumPy or the engine's
framework is imported. Everything the
run produces is appended to a JSON-lines record file as it happens (``prepared``, one ``epoch`` line
per epoch, then ``done`` or ``error``), so a worker that later crashes or hangs still leaves what it
finished. Each line is also echoed on stdout with a ``@bridge`` prefix for live progress.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

EVENT_PREFIX = "@bridge "
TF32_OVERRIDE = "NVIDIA_TF32_OVERRIDE"

# Variables each runtime reads for its thread pools; set before any framework import.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "JULIA_NUM_THREADS")


def worker_environment(threads: int, device: str) -> dict[str, str]:
    """The variables a worker is started with, in place before NumPy or any framework is imported: the
    thread count for every runtime, and on a GPU ``NVIDIA_TF32_OVERRIDE=0``, which cuBLAS and cuDNN honour
    whatever the framework asks for. Without it, Flux's and Knet's cuDNN convolutions may use TF32 on
    Ampere and later GPUs (their default math modes allow tensor cores); the Python engines also turn
    TF32 off through their own settings and record both."""
    env = {name: str(threads) for name in THREAD_VARIABLES}
    if device == "cuda":
        env[TF32_OVERRIDE] = "0"
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


def evaluate(module, session, plan, split: str, chunk: int = 4096) -> tuple[float, float]:
    x, y = plan.split(split)
    logits = np.concatenate([np.asarray(module.predict(session, x[i:i + chunk]))
                             for i in range(0, len(y), chunk)])
    return softmax_cross_entropy(logits, y)


def run(job) -> int:
    from . import parity, registry

    record = Record(Path(job.record_path))
    try:
        module = registry.module(job.engine)
        plan = job.plan
        session, report = module.prepare(job)
        if job.experiment.device == "cuda":
            report.setdefault(TF32_OVERRIDE, os.environ.get(TF32_OVERRIDE, "unset"))
        if job.experiment.model == "cnn":
            report.setdefault("maxpool_gradient", parity.maxpool_gradient(module, job.experiment.device))
        record.write("prepared", report=report)
        for epoch in range(plan.epochs):
            x, y = plan.epoch(epoch)
            run_ = module.train_epoch(session, x, y)
            metrics = {}
            for split in ("train", "test"):
                metrics[f"{split}_loss"], metrics[f"{split}_accuracy"] = evaluate(module, session, plan, split)
            record.write("epoch", epoch=epoch, seconds=run_.seconds,
                         losses=[float(v) for v in np.asarray(run_.losses)],
                         checksums=list(run_.checksums), **metrics)
        record.write("done")
        return 0
    except BaseException as e:  # a failing engine must still leave its record
        record.write("error", error=f"{type(e).__name__}: {e}".strip(), traceback=traceback.format_exc())
        return 1


def main(argv: list[str]) -> int:
    from .protocol import Job

    job = Job.load(Path(argv[0]))
    # the launcher sets them too (see worker_environment); a worker started by hand gets them here
    os.environ.update(worker_environment(job.threads, job.experiment.device))
    return run(job)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
