"""The reference engine: NumPy forward and backward in float64, the parity oracle.

It follows Keras semantics exactly (see :mod:`bridge.engines.common.numpy_nn`) and always runs on the
CPU. Its times are recorded like any engine's but say nothing about a framework.

Modes (:data:`bridge.experiment.semantics.REFERENCE_VARIANTS`): ``float64`` is Keras' semantics
throughout; ``nnlib`` differs only in the max-pool gradient, which it routes as NNlib's CPU code does
(Flux, Knet), so those engines' parity can be measured against what their framework documents.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_info

from bridge.contract import EngineReport, EpochResult, Job, stopwatch
from bridge.experiment import layouts
from bridge.experiment.plan import BatchPlan
from bridge.experiment.semantics import REFERENCE_VARIANTS

from .common import numpy_nn

FRAMEWORK = "numpy"
MODES = tuple(REFERENCE_VARIANTS)
REQUIRES = ("numpy",)
INSTALL = "pip install numpy"
DTYPE = np.dtype(np.float64)


def maxpool_gradient(mode: str, device: str) -> str:
    """The rule each mode models, on every device: the reference always runs on the CPU."""
    return REFERENCE_VARIANTS[mode]


@dataclass
class ReferenceSession:
    model: str
    params: dict[str, np.ndarray]  # neutral layout, float64
    optimizer: numpy_nn.SGD | numpy_nn.Adam
    maxpool: str  # the max-pool gradient rule it routes with
    slices: list[slice]

    def inputs(self, x: np.ndarray) -> np.ndarray:
        x = layouts.nchw_to_nhwc(x) if x.ndim == 4 else x
        return np.asarray(x, dtype=DTYPE)


def session(plan: BatchPlan, maxpool: str) -> ReferenceSession:
    """A reference over ``plan`` (its weights and optimizer) routing the max-pool gradient by ``maxpool``."""
    opt = plan.optimizer
    optimizer = (numpy_nn.SGD(opt.learning_rate) if opt.name == "sgd"
                 else numpy_nn.Adam(opt.learning_rate, opt.beta_1, opt.beta_2, opt.epsilon))
    return ReferenceSession(plan.model, {k: v.astype(DTYPE) for k, v in plan.weights().items()}, optimizer,
                            maxpool, plan.batch_slices())


def prepare(job: Job) -> tuple[ReferenceSession, EngineReport]:
    report: EngineReport = {"import_s": 0.0}
    with stopwatch(report, "build_s"):
        s = session(job.plan, job.maxpool_gradient)
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    report.update(framework_version=np.__version__, device="cpu", threads=blas[0]["num_threads"] if blas else 1,
                  reduced_precision=False, precision="float64 throughout",
                  blas="; ".join(f"{i.get('internal_api')} {i.get('version')}" for i in blas), dtype=str(DTYPE))
    return s, report


def train_epoch(s: ReferenceSession, x: np.ndarray, y: np.ndarray) -> EpochResult:
    xs, ys = s.inputs(x), np.asarray(y)
    losses = np.empty(len(s.slices))
    start = time.perf_counter()
    for i, sl in enumerate(s.slices):
        losses[i], grads = numpy_nn.loss_and_grads(s.model, s.params, xs[sl], ys[sl], s.maxpool)
        s.optimizer.apply(s.params, grads)
    return EpochResult(losses, time.perf_counter() - start)


def predict(s: ReferenceSession, x: np.ndarray) -> np.ndarray:
    return numpy_nn.forward(s.model, s.params, s.inputs(x))
