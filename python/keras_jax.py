"""The keras-jax engine: Keras 3 ``model.fit`` on the JAX backend (the same Keras code as the keras
engine's ``fit`` mode; Keras compiles the train step with XLA on this backend)."""
from __future__ import annotations

import os

from bridge.contract import EngineReport, Job, stopwatch

from .common import keras_model, xla
from .common.keras_model import KerasSession

FRAMEWORK = "keras/jax"
MODES = ("fit",)
REQUIRES = ("keras", "jax")
INSTALL = "pip install 'bridge[keras,jax]'"


def prepare(job: Job) -> tuple[KerasSession, EngineReport]:
    os.environ["KERAS_BACKEND"] = "jax"
    # JAX picks its platform at import; a CPU run must not land on a GPU it happens to see
    os.environ["JAX_PLATFORMS"] = "cpu" if job.device == "cpu" else "cuda"
    xla.request_threads(job.threads)
    report: EngineReport = {}
    with stopwatch(report, "import_s"):
        import jax
        import keras

    with stopwatch(report, "build_s"):
        try:
            device = jax.devices()[0]
        except RuntimeError as e:
            raise RuntimeError(f"--device cuda: JAX sees no CUDA GPU ({str(e).splitlines()[0]}); run with "
                               "--device cpu or install jax[cuda12]") from None
        precision = xla.full_float32(jax)
        s = keras_model.build(keras, job, "fit")
        s.compiling = xla.CompileClock(jax)  # Keras jits its train step with JAX: its compile events
    report.update(framework_version=keras.__version__, backend="jax", backend_version=jax.__version__,
                  device=device.device_kind if job.device == "cuda" else "cpu",
                  **xla.threads_report(job.threads, job.device), **precision)
    return s, report


def memory_report(s: KerasSession) -> dict:
    import jax  # imported by prepare, in this worker

    return xla.device_memory(jax.devices()[0])


train_epoch = keras_model.fit_epoch
predict = keras_model.predict
