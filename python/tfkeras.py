"""The keras engine: tf.keras (TensorFlow 2 with Keras 3), in two modes.

``fit``   ``model.compile`` / ``model.fit`` over each epoch's arrays, as a Keras user writes it
          (see :func:`bridge.engines.kerasfit.fit_epoch`).
``loop``  a minimal ``tf.function`` train step (GradientTape, ``optimizer.apply``) called on each batch.

Images arrive NCHW and are copied to NHWC once per epoch before the clock starts: TensorFlow's CPU
convolutions take NHWC only. ``--device cuda`` fails at once when TensorFlow sees no GPU; TF32 is
turned off for parity and its state recorded.
"""
from __future__ import annotations

import os
import time

import numpy as np

from bridge.protocol import EpochRun

from . import kerasfit

FRAMEWORK = "tensorflow"
MODES = ("fit", "loop")
REQUIRES = ("tensorflow", "keras")
INSTALL = "pip install 'bridge[keras]'"


def prepare(job):
    spec = job.experiment
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    if spec.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # a CPU run must not place ops on a GPU it happens to see
    t0 = time.perf_counter()
    import tensorflow as tf
    import keras
    import_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    tf.config.threading.set_intra_op_parallelism_threads(job.threads)
    tf.config.threading.set_inter_op_parallelism_threads(job.threads)
    gpus = tf.config.list_physical_devices("GPU")
    if spec.device == "cuda":
        if not gpus:
            raise RuntimeError("--device cuda: TensorFlow sees no GPU (no CUDA device, or a CPU-only "
                               "TensorFlow build); run with --device cpu or install tensorflow[and-cuda]")
        tf.config.experimental.enable_tensor_float_32_execution(False)  # parity: full float32 matmuls
    s = kerasfit.build(keras, job, job.mode)
    s.tf = tf
    feature = (None, *s.model.input_shape[1:])
    signature = [tf.TensorSpec(feature, tf.float32), tf.TensorSpec((None,), tf.int32)]
    if job.mode == "loop":
        s.step = tf.function(_train_step(tf, s.model, s.loss_fn, s.optimizer), input_signature=signature)
    s.forward = tf.function(lambda x: s.model(x, training=False), input_signature=signature[:1])
    build_s = time.perf_counter() - t1
    report = {
        "framework": "tensorflow", "framework_version": tf.__version__, "keras_version": keras.__version__,
        "backend": "tensorflow", "device": gpus[0].name if spec.device == "cuda" else "cpu",
        "threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "tf32": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "jit_compile": bool(getattr(s.model, "jit_compile", False)) if job.mode == "fit" else False,
        "import_s": import_s, "build_s": build_s,
    }
    return s, report


def _train_step(tf, model, loss_fn, optimizer):
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss
    return step


def train_epoch(s, x: np.ndarray, y: np.ndarray) -> EpochRun:
    if s.mode == "fit":
        return kerasfit.fit_epoch(s, x, y)
    xk, yk = kerasfit.inputs(s, x), np.asarray(y)
    batches = [(xk[sl], yk[sl]) for sl in s.slices]
    start = time.perf_counter()
    out = [s.step(s.tf.convert_to_tensor(xb), s.tf.convert_to_tensor(yb)) for xb, yb in batches]
    losses = np.array([v.numpy() for v in out])  # reading the values waits for the device
    seconds = time.perf_counter() - start
    return EpochRun(losses, seconds)


def predict(s, x: np.ndarray) -> np.ndarray:
    return s.forward(s.tf.convert_to_tensor(kerasfit.inputs(s, x))).numpy()
