"""The keras-torch engine: Keras 3 ``model.fit`` on the PyTorch backend (the same Keras code as the
keras engine's ``fit`` mode, run eagerly by PyTorch)."""
from __future__ import annotations

import os
import time

from . import kerasfit

FRAMEWORK = "keras/torch"
MODES = ("fit",)
REQUIRES = ("keras", "torch")
INSTALL = "pip install 'bridge[keras,torch]'"


def prepare(job):
    spec = job.experiment
    os.environ["KERAS_BACKEND"] = "torch"
    if spec.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # Keras' torch backend takes a visible GPU by itself
    t0 = time.perf_counter()
    import torch
    import keras
    import_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    torch.set_num_threads(job.threads)
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: PyTorch sees no CUDA GPU; run with --device cpu or install a "
                           "CUDA build of torch")
    # parity: full float32 matmuls and convolutions (set on the CPU too, so every report says the same)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    s = kerasfit.build(keras, job, "fit")
    report = {
        "framework": "keras/torch", "framework_version": keras.__version__, "backend": "torch",
        "backend_version": torch.__version__,
        "device": torch.cuda.get_device_name(0) if spec.device == "cuda" else "cpu",
        "threads": torch.get_num_threads(), "inter_op_threads": torch.get_num_interop_threads(),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "import_s": import_s, "build_s": time.perf_counter() - t1,
    }
    return s, report


train_epoch = kerasfit.fit_epoch
predict = kerasfit.predict
