"""A test engine of known memory: the reference's float64 training (real losses, real checksums) which, in
its second epoch (epoch 1), holds a block of known size for :data:`HOLD_S` seconds (a hundred sampling
intervals of :mod:`bridge.proctree`, and several of its searches for new processes) and lets it go
before the epoch ends.

Modes: ``block`` allocates and touches :data:`BLOCK_BYTES` in the worker itself (``np.ones``: every page
written, so every page resident); ``child`` starts a Python process that holds :data:`CHILD_BYTES`, so
only a measure of the whole process tree sees them. It reports numpy as its framework, as the reference
does.
"""
import dataclasses
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.engines import reference

FRAMEWORK = "numpy"
MODES = ("block", "child")
REQUIRES = ("numpy",)
INSTALL = "pip install numpy"

BLOCK_BYTES = 400_000_000
CHILD_BYTES = 200_000_000
HOLD_S = 1.0
BLOCK_EPOCH = 1
# bytes multiplied are written, page by page: resident, unlike a bytearray's zeroed pages
CHILD = f"import sys; block = b'\\x01' * {CHILD_BYTES}; print('holding', flush=True); sys.stdin.read()"


@dataclass
class MemorySession:
    mode: str
    reference: Any
    epoch: int = 0


def prepare(job):
    session, report = reference.prepare(dataclasses.replace(job, mode="float64"))
    return MemorySession(job.mode, session), report


def hold_block() -> None:
    block = np.ones(BLOCK_BYTES, dtype=np.uint8)
    time.sleep(HOLD_S)
    del block


def hold_in_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == b"holding"
        time.sleep(HOLD_S)
    finally:
        child.stdin.close()
        child.wait(timeout=30)


def train_epoch(session, x, y):
    result = reference.train_epoch(session.reference, x, y)
    if session.epoch == BLOCK_EPOCH:
        hold_block() if session.mode == "block" else hold_in_child()
    session.epoch += 1
    return result


def predict(session, x):
    return reference.predict(session.reference, x)
