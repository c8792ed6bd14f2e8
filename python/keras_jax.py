"""The keras-jax engine: Keras 3 ``model.fit`` on the JAX backend (the same Keras code as the keras
engine's ``fit`` mode; Keras compiles the train step with XLA on this backend)."""
from __future__ import annotations

import os
import time

from . import kerasfit
from .jaxjit import XLA_POOL_THREAD_NAME, xla_pool_threads

FRAMEWORK = "keras/jax"
MODES = ("fit",)
REQUIRES = ("keras", "jax")
INSTALL = "pip install 'bridge[keras,jax]'"


def prepare(job):
    spec = job.experiment
    os.environ["KERAS_BACKEND"] = "jax"
    # JAX picks its platform at import; a CPU run must not land on a GPU it happens to see
    os.environ["JAX_PLATFORMS"] = "cpu" if spec.device == "cpu" else "cuda"
    os.environ["NPROC"] = str(job.threads)  # sizes XLA's CPU intra-op pool, as in the jax engine (jaxjit.py)
    t0 = time.perf_counter()
    import jax
    import keras
    import_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    try:
        device = jax.devices()[0]
    except RuntimeError as e:
        raise RuntimeError(f"--device cuda: JAX sees no CUDA GPU ({str(e).splitlines()[0]}); run with "
                           "--device cpu or install jax[cuda12]") from None
    jax.config.update("jax_default_matmul_precision", "highest")  # parity: no reduced-precision matmuls on GPU
    s = kerasfit.build(keras, job, "fit")
    pool = xla_pool_threads() if spec.device == "cpu" else 0
    report = {
        "framework": "keras/jax", "framework_version": keras.__version__, "backend": "jax",
        "backend_version": jax.__version__, "device": device.device_kind if spec.device == "cuda" else "cpu",
        "threads": pool or job.threads,
        "threads_source": (f"XLA CPU pool ({XLA_POOL_THREAD_NAME}) threads counted, sized by NPROC={job.threads}"
                           if pool else f"requested (NPROC={job.threads})"),
        "matmul_precision": str(jax.config.jax_default_matmul_precision),
        "import_s": import_s, "build_s": time.perf_counter() - t1,
    }
    return s, report


train_epoch = kerasfit.fit_epoch
predict = kerasfit.predict
