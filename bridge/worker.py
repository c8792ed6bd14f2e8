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

# Variables each runtime reads for its thread pools; set before any framework import.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "JULIA_NUM_THREADS")


def thread_environment(threads: int) -> dict[str, str]:
    """The variables a worker is started with (NumPy reads them when it is imported)."""
    return {name: str(threads) for name in THREAD_VARIABLES}


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
    from . import registry

    record = Record(Path(job.record_path))
    try:
        module = registry.module(job.engine)
        plan = job.plan
        session, report = module.prepare(job)
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
    os.environ.update(thread_environment(job.threads))  # the launcher sets them too; see thread_environment
    return run(job)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
