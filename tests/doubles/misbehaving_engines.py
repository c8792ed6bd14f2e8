"""An engine that trains like the reference and then misbehaves in one way per mode, for the tests of
what the worker checks (tests/test_engine_checks.py).

Unlike tests/faulty_engines.py (raise, exit, hang), every mode here finishes normally: what it gets
wrong is in what it returns, reports or prints, which only the worker's checks can catch.
"""
import dataclasses
import sys

import numpy as np

from bridge.contract import EpochResult
from bridge.engines import reference
from bridge.experiment.plan import batch_checksum, order_file

FRAMEWORK = "numpy"
MODES = ("short", "nan", "inf", "nan_logits", "checksums", "own_checksums", "corrupt_plan", "chatty", "logits", "off",
         "slightly_off")
REQUIRES = ("numpy",)
INSTALL = "nothing to install"

NAN_EPOCH, NAN_STEP = 1, 2  # where mode nan's first non-finite loss is
OFF_BY = 1e-3               # mode off reports every step loss this much too high (relative)
SLIGHTLY_OFF_BY = 5e-5      # mode slightly_off: within the Adam tolerance (1e-4), outside the SGD one (1e-5)
CORRUPTED_EPOCH = 1         # the epoch whose order mode corrupt_plan damages
MALFORMED = ("@bridge {not json", "@bridge 42", '@bridge {"kind": "epoch", "epoch": ')
CHATTER_BYTES = 1 << 20     # far past a pipe's buffer (64 KiB on Linux)


class Session:
    def __init__(self, mode, inner, job):
        self.mode, self.inner, self.job, self.epoch = mode, inner, job, 0
        self.slices = job.plan.batch_slices()


def prepare(job):
    inner, report = reference.prepare(dataclasses.replace(job, mode="float64"))
    if job.mode == "corrupt_plan":
        # two examples of the first batch swapped in one epoch's order, in a file every later engine
        # reads too: what a disk, a copy or a concurrent writer could do to a plan between engines
        path = job.plan.root / order_file(CORRUPTED_EPOCH)
        order = np.load(path)
        order[[0, 1]] = order[[1, 0]]
        np.save(path, order)
    return Session(job.mode, inner, job), report


def train_epoch(s: Session, x, y) -> EpochResult:
    if s.mode == "chatty":
        for line in MALFORMED:
            print(line, flush=True)
        sys.stdout.buffer.write(b"bytes that are not UTF-8: \xff\xfe\n")
        sys.stdout.flush()
        for _ in range(CHATTER_BYTES // 1024):
            print("x" * 1023)
        sys.stdout.flush()
    run = reference.train_epoch(s.inner, x, y)
    if s.mode == "short":
        run.losses = run.losses[:-1]
    elif s.mode == "nan" and s.epoch == NAN_EPOCH:
        run.losses[NAN_STEP:] = np.nan
    elif s.mode == "inf" and s.epoch == NAN_EPOCH:
        run.losses[NAN_STEP] = np.inf  # infinite, not NaN: as much a divergence
    elif s.mode == "checksums":
        run.checksums = [batch_checksum(x[sl], y[sl]) for sl in s.slices]
        run.checksums[-1] = "00000000"
    elif s.mode == "off":  # trains right, reports wrong: only parity can tell
        run.losses = run.losses * (1 + OFF_BY)
    elif s.mode == "slightly_off":
        run.losses = run.losses * (1 + SLIGHTLY_OFF_BY)
    elif s.mode == "own_checksums":
        run.checksums = [batch_checksum(x[sl], y[sl]) for sl in s.slices]
    s.epoch += 1
    return run


def predict(s: Session, x):
    logits = reference.predict(s.inner, x)
    if s.mode == "logits":
        return np.concatenate([logits, np.zeros((len(logits), 1))], axis=1)
    if s.mode == "nan_logits" and s.epoch > NAN_EPOCH:
        logits = logits.copy()
        logits[0, 0] = np.inf
    return logits
