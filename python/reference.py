"""The reference engine: NumPy forward and backward in float64, the parity oracle.

It follows Keras semantics exactly (see :mod:`bridge.engines.numpy_nn`) and always runs on the CPU.
Its times are recorded like any engine's but say nothing about a framework.

Modes: ``float64`` is Keras' semantics throughout; ``nnlib`` differs only in the max-pool gradient,
which it routes as NNlib's CPU code does (Flux, Knet), so those engines' parity can be measured against
what their framework documents (:mod:`bridge.parity`).
"""
from __future__ import annotations

import time

import numpy as np

from bridge import layouts
from bridge.protocol import EpochRun

FRAMEWORK = "numpy"
MODES = ("float64", "nnlib")
MAXPOOL_GRADIENT_OF_MODE = {"float64": "exact", "nnlib": "nnlib"}
REQUIRES = ("numpy",)
INSTALL = "pip install numpy"


class Session:
    def __init__(self, job):
        from . import numpy_nn

        spec = job.experiment
        self.nn = numpy_nn
        self.model = spec.model
        self.dtype = np.dtype(np.float64)
        self.maxpool = MAXPOOL_GRADIENT_OF_MODE[job.mode]
        self.slices = job.plan.batch_slices()
        self.params = {k: v.astype(self.dtype) for k, v in job.plan.weights().items()}
        if spec.optimizer == "sgd":
            self.optimizer = numpy_nn.SGD(spec.learning_rate)
        else:
            self.optimizer = numpy_nn.Adam(spec.learning_rate, spec.beta_1, spec.beta_2, spec.epsilon)

    def inputs(self, x: np.ndarray) -> np.ndarray:
        x = layouts.nchw_to_nhwc(x) if x.ndim == 4 else x
        return np.asarray(x, dtype=self.dtype)


def prepare(job):
    from threadpoolctl import threadpool_info

    t0 = time.perf_counter()
    session = Session(job)
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    report = {
        "framework": "numpy", "framework_version": np.__version__, "device": "cpu",
        "threads": blas[0]["num_threads"] if blas else 1,
        "blas": "; ".join(f"{i.get('internal_api')} {i.get('version')}" for i in blas),
        "dtype": str(session.dtype), "maxpool_gradient": session.maxpool, "import_s": 0.0, "build_s": time.perf_counter() - t0,
    }
    return session, report


def train_epoch(session: Session, x: np.ndarray, y: np.ndarray) -> EpochRun:
    xs, ys = session.inputs(x), np.asarray(y)
    losses = np.empty(len(session.slices))
    start = time.perf_counter()
    for i, s in enumerate(session.slices):
        losses[i], grads = session.nn.loss_and_grads(session.model, session.params, xs[s], ys[s],
                                                             session.maxpool)
        session.optimizer.apply(session.params, grads)
    return EpochRun(losses, time.perf_counter() - start)


def predict(session: Session, x: np.ndarray) -> np.ndarray:
    return session.nn.forward(session.model, session.params, session.inputs(x))
