"""The keras-torch engine: Keras 3 ``model.fit`` on the PyTorch backend (the same Keras code as the
keras engine's ``fit`` mode, run eagerly by PyTorch)."""
from __future__ import annotations

import os

from bridge.contract import EngineReport, Job, stopwatch

from .common import keras_model, pytorch
from .common.keras_model import KerasSession

FRAMEWORK = "keras/torch"
MODES = ("fit",)
REQUIRES = ("keras", "torch")
INSTALL = "pip install 'bridge[keras,torch]'"


def prepare(job: Job) -> tuple[KerasSession, EngineReport]:
    os.environ["KERAS_BACKEND"] = "torch"
    if job.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # Keras' torch backend takes a visible GPU by itself
    report: EngineReport = {}
    with stopwatch(report, "import_s"):
        import keras
        import torch

    with stopwatch(report, "build_s"):
        torch.set_num_threads(job.threads)
        if job.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("--device cuda: PyTorch sees no CUDA GPU; run with --device cpu or install a "
                               "CUDA build of torch")
        precision = pytorch.full_float32(torch)
        s = keras_model.build(keras, job, "fit")
    report.update(framework_version=keras.__version__, backend="torch", backend_version=torch.__version__,
                  device=torch.cuda.get_device_name(0) if job.device == "cuda" else "cpu",
                  threads=torch.get_num_threads(), inter_op_threads=torch.get_num_interop_threads(),
                  **precision)
    return s, report


def memory_report(s: KerasSession) -> dict:
    import torch  # imported by prepare, in this worker

    return pytorch.device_memory(torch)


train_epoch = keras_model.fit_epoch
predict = keras_model.predict
