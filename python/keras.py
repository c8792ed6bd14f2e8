"""The keras engine: tf.keras (TensorFlow 2 with Keras 3), in two modes.

``fit``   ``model.compile`` / ``model.fit`` over each epoch's arrays, as a Keras user writes it
          (see :func:`bridge.engines.common.keras_model.fit_epoch`).
``loop``  a minimal ``tf.function`` train step (GradientTape, ``optimizer.apply``) called on each batch.

Images arrive NCHW and are copied to NHWC once per epoch before the clock starts: TensorFlow's CPU
convolutions take NHWC only. ``--device cuda`` fails at once when TensorFlow sees no GPU. TensorFloat-32
is turned off for parity (on the CPU it does nothing; set anyway, so every report says the same).
"""
from __future__ import annotations

import os
import time

import numpy as np

from bridge.contract import EngineReport, EpochResult, Job, stopwatch

from .common import keras_model
from .common.keras_model import KerasSession

FRAMEWORK = "tensorflow"
MODES = ("fit", "loop")
REQUIRES = ("tensorflow", "keras")
INSTALL = "pip install 'bridge[keras]'"


def prepare(job: Job) -> tuple[KerasSession, EngineReport]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    if job.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # a CPU run must not place ops on a GPU it happens to see
    report: EngineReport = {}
    with stopwatch(report, "import_s"):
        import keras
        import tensorflow as tf

    with stopwatch(report, "build_s"):
        tf.config.threading.set_intra_op_parallelism_threads(job.threads)
        tf.config.threading.set_inter_op_parallelism_threads(job.threads)
        gpus = tf.config.list_physical_devices("GPU")
        if job.device == "cuda" and not gpus:
            raise RuntimeError("--device cuda: TensorFlow sees no GPU (no CUDA device, or a CPU-only "
                               "TensorFlow build); run with --device cpu or install tensorflow[and-cuda]")
        tf.config.experimental.enable_tensor_float_32_execution(False)  # parity: full float32 matmuls
        s = keras_model.build(keras, job, job.mode)
        s.backend = tf
        feature = (None, *s.model.input_shape[1:])
        signature = [tf.TensorSpec(feature, tf.float32), tf.TensorSpec((None,), tf.int32)]
        if job.mode == "loop":
            s.step = tf.function(_train_step(tf, s.model, s.loss_fn, s.optimizer), input_signature=signature)
        s.forward = tf.function(lambda x: s.model(x, training=False), input_signature=signature[:1])
    tf32 = bool(tf.config.experimental.tensor_float_32_execution_enabled())
    report.update(
        framework_version=tf.__version__, keras_version=keras.__version__, backend="tensorflow",
        device=gpus[0].name if job.device == "cuda" else "cpu",
        threads=tf.config.threading.get_intra_op_parallelism_threads(),
        inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads(),
        reduced_precision=tf32, precision=f"tensor_float_32_execution={tf32}",
        onednn=os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        jit_compile=bool(getattr(s.model, "jit_compile", False)) if job.mode == "fit" else False)
    return s, report


def memory_report(s: KerasSession) -> dict:
    """On a GPU, TensorFlow's peak of device memory in use (``get_memory_info("GPU:0")["peak"]``); TensorFlow
    gives no device total. Nothing on the CPU, where this worker hides every GPU."""
    tf = s.backend
    if not tf.config.list_logical_devices("GPU"):
        return {}
    return {"device_memory_peak_bytes": int(tf.config.experimental.get_memory_info("GPU:0")["peak"])}


def _train_step(tf, model, loss_fn, optimizer):
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss
    return step


def train_epoch(s: KerasSession, x: np.ndarray, y: np.ndarray) -> EpochResult:
    if s.mode == "fit":
        return keras_model.fit_epoch(s, x, y)
    tf = s.backend
    xk, yk = keras_model.inputs(s, x), np.asarray(y)
    batches = [(xk[sl], yk[sl]) for sl in s.slices]
    start = time.perf_counter()
    out = [s.step(tf.convert_to_tensor(xb), tf.convert_to_tensor(yb)) for xb, yb in batches]
    losses = np.array([v.numpy() for v in out])  # reading the values waits for the device
    return EpochResult(losses, time.perf_counter() - start)


def predict(s: KerasSession, x: np.ndarray) -> np.ndarray:
    return s.forward(s.backend.convert_to_tensor(keras_model.inputs(s, x))).numpy()
