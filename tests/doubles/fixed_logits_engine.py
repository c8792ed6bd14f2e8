"""A test engine that trains nothing: its logits are a fixed function of the inputs, so every metric a
run records about it (split loss and accuracy, per-step losses, epoch times) is computable by hand.

- logits: ``x @ projection(F, K)`` (inputs flattened, float64) times ``scale(epoch, repeat)``, where ``epoch``
  is the number of epochs trained so far: the evaluation after epoch ``e`` sees scale ``(e + 1) *
  REPEAT_FACTOR[repeat]``, so every epoch's and every repeat's metrics differ;
- step losses: the mean softmax cross-entropy of each plan batch of epoch ``e`` under the logits of
  scale ``scale(e, repeat)`` (those of the evaluation after that epoch), computed in plain Python;
- seconds: ``SECONDS[repeat][epoch]``, chosen so that the first epoch, the median and the mean of the
  later ones all differ; ``import_s`` and ``build_s`` are ``IMPORT_S`` and ``BUILD_S``; with
  ``BRIDGE_FIXED_STEADY_S`` set, instead that many seconds an epoch within ±2% (:func:`steady_seconds`),
  the first epoch five times as long: an engine of known, steady speed (``BRIDGE_FIXED_SPREAD``: each
  repeat off by a known factor as well);
- its report also holds ``thread_variables``: the thread variables its worker runs with (what a framework
  loaded now, e.g. Julia through ``JULIA_NUM_THREADS``, would read).
"""
import math
import os
from dataclasses import dataclass

import numpy as np

from bridge.contract import EpochResult
from bridge.experiment.plan import batch_checksum
from bridge.running.worker import THREAD_VARIABLES

FRAMEWORK = "numpy"
MODES = ("fixed",)
REQUIRES = ()
INSTALL = "nothing to install"

REPEAT_FACTOR = (1.0, 1.5, 4.0)
# per repeat, per epoch; first epochs 5, 7, 12 (median 7, mean 8); later-epoch medians 2, 4, 1.5
# (median 2, mean 2.5; the medians including epoch 0 would be 3.5, 5.5, 5.25)
SECONDS = ((5.0, 1.0, 2.0, 6.0), (7.0, 3.0, 4.0, 8.0), (12.0, 0.5, 9.0, 1.5))
IMPORT_S, BUILD_S = 0.25, 0.5
THREADS = 3


def projection(features: int, classes: int) -> np.ndarray:
    """A fixed ``(features, classes)`` matrix with distinct entries of both signs."""
    i = np.arange(features, dtype=np.float64)[:, None]
    j = np.arange(classes, dtype=np.float64)[None, :]
    return np.cos(1.3 * i + 2.1 * j + 0.4) * (1.0 + 0.1 * j)


def scale(epoch: int, repeat: int) -> float:
    return (epoch + 1) * REPEAT_FACTOR[repeat % len(REPEAT_FACTOR)]


def logits(x, classes: int, factor: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return (x @ projection(x.shape[1], classes)) * factor


def steady_seconds(base: float, epoch: int, repeat: int, spread: float = 0.0) -> float:
    """An epoch of an engine that takes ``base`` seconds, within ±2% (a fixed pattern), the first 5 times;
    with ``spread``, repeat ``r`` is also off by a factor ``1 ± spread / (r + 1)``, alternating: repeats
    that differ as fresh processes do, and an interval that narrows, slowly, as repeats are added."""
    jitter = 1 + spread * (-1) ** repeat / (repeat + 1)
    return jitter * (5 * base if epoch == 0 else base * (1 + 0.01 * ((7 * epoch + 3 * repeat) % 5 - 2)))


def _mean_cross_entropy(z: np.ndarray, y) -> float:
    total = 0.0
    for row, label in zip(z.tolist(), np.asarray(y).tolist()):
        top = max(row)
        total += top + math.log(sum(math.exp(v - top) for v in row)) - row[label]
    return total / len(z)


@dataclass
class FixedSession:
    classes: int
    slices: list[slice]
    repeat: int
    trained: int = 0  # epochs trained so far


def prepare(job):
    s = FixedSession(job.plan.classes, job.plan.batch_slices(), job.repeat)
    return s, {"framework": "fixed-logits", "framework_version": "1.0", "device": "cpu", "threads": THREADS,
               "import_s": IMPORT_S, "build_s": BUILD_S,
               "thread_variables": {name: os.environ.get(name) for name in THREAD_VARIABLES}}


def train_epoch(s: FixedSession, x, y) -> EpochResult:
    epoch = s.trained
    factor = scale(epoch, s.repeat)
    losses = [_mean_cross_entropy(logits(x[sl], s.classes, factor), y[sl]) for sl in s.slices]
    checksums = [batch_checksum(x[sl], y[sl]) for sl in s.slices]
    steady = os.environ.get("BRIDGE_FIXED_STEADY_S")
    spread = float(os.environ.get("BRIDGE_FIXED_SPREAD", 0))
    seconds = steady_seconds(float(steady), epoch, s.repeat, spread) if steady else SECONDS[
        s.repeat % len(SECONDS)][epoch % len(SECONDS[0])]
    s.trained += 1
    return EpochResult(np.array(losses), seconds, checksums)


def predict(s: FixedSession, x) -> np.ndarray:
    # evaluation after epoch e (s.trained == e + 1) uses the scale of epoch e
    return logits(x, s.classes, scale(s.trained - 1, s.repeat))
