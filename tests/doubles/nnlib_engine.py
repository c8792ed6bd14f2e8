"""An engine with NNlib's max-pool gradient, standing in for flux and knet where Julia cannot run.

No Julia can run on the machines this suite runs on, so the pipeline around the Julia engines' semantics
(the reference's NNlib variant joining the run, parity measured against it, the report naming the rule)
is exercised with this: the NumPy network of ``numpy_nn`` in float32, as the Julia engines compute, with
NNlib's rule, declared the way flux and knet declare it. It measures no framework.
"""
import time

import numpy as np

from bridge.contract import EpochResult
from bridge.engines.common import numpy_nn
from bridge.experiment import layouts
from bridge.experiment.plan import batch_checksum

FRAMEWORK = "numpy"
MODES = ("float32",)
REQUIRES = ()
INSTALL = "nothing to install"


def maxpool_gradient(mode: str, device: str) -> str:
    return "nnlib"  # as flux and knet declare it on the CPU


def prepare(job):
    opt = job.plan.optimizer
    params = {k: v.astype(np.float32) for k, v in job.plan.weights().items()}
    optimizer = (numpy_nn.SGD(opt.learning_rate) if opt.name == "sgd" else
                 numpy_nn.Adam(opt.learning_rate, opt.beta_1, opt.beta_2, opt.epsilon))
    session = {"model": job.plan.model, "params": params, "optimizer": optimizer, "slices": job.plan.batch_slices()}
    return session, {"framework_version": np.__version__, "threads": job.threads, "import_s": 0.0, "build_s": 0.0}


def _inputs(x):
    return np.asarray(layouts.nchw_to_nhwc(x) if x.ndim == 4 else x, dtype=np.float32)


def train_epoch(s, x, y):
    checksums = [batch_checksum(x[sl], y[sl]) for sl in s["slices"]]
    xs, losses = _inputs(x), []
    start = time.perf_counter()
    for sl in s["slices"]:
        loss, grads = numpy_nn.loss_and_grads(s["model"], s["params"], xs[sl], y[sl], "nnlib")
        s["optimizer"].apply(s["params"], grads)
        losses.append(loss)
    return EpochResult(np.array(losses), time.perf_counter() - start, checksums)


def predict(s, x):
    return numpy_nn.forward(s["model"], s["params"], _inputs(x))
