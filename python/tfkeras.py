"""The keras engine: tf.keras (TensorFlow 2 with Keras 3), in two modes.

``fit``   ``model.compile`` / ``model.fit`` over each epoch's arrays with ``shuffle=False`` and the plan's
          batch size, as a Keras user writes it. Keras slices the arrays into exactly the plan's
          batches (consecutive rows, partial last batch kept). A one-value metric records each batch's
          loss, computed from the same forward pass as the training loss.
``loop``  a minimal ``tf.function`` train step (GradientTape, ``optimizer.apply``) called on each batch.

Images arrive NCHW and are copied to NHWC once per epoch before the clock starts: TensorFlow's CPU
convolutions take NHWC only. ``--device cuda`` fails at once when TensorFlow sees no GPU; TF32 is
turned off for parity and its state recorded.
"""
from __future__ import annotations

import os
import time

import numpy as np

from bridge import layouts
from bridge.batchplan import batch_checksum
from bridge.models import CNN_DENSE, CNN_FILTERS, CNN_KERNEL, CNN_POOL, mlp_hidden
from bridge.protocol import EpochRun

FRAMEWORK = "tensorflow"
MODES = ("fit", "loop")
REQUIRES = ("tensorflow", "keras")
INSTALL = "pip install 'bridge[keras]'"


def build_model(keras, spec, input_shape: tuple[int, ...], classes: int):
    """The Keras model for ``spec.model``; ``input_shape`` in plan layout ((F,) or (C, H, W))."""
    if spec.model == "cnn":
        c, h, w = input_shape
        layers = [keras.Input((h, w, c))]
        for filters in CNN_FILTERS:
            layers += [keras.layers.Conv2D(filters, CNN_KERNEL, activation="relu"),
                       keras.layers.MaxPooling2D(CNN_POOL)]
        layers += [keras.layers.Flatten(), keras.layers.Dense(CNN_DENSE, activation="relu")]
    else:
        layers = [keras.Input((int(np.prod(input_shape)),))]
        layers += [keras.layers.Dense(n, activation="relu") for n in mlp_hidden(spec.dataset)]
    layers.append(keras.layers.Dense(classes))
    return keras.Sequential(layers)


def make_optimizer(keras, spec):
    if spec.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=spec.learning_rate)
    return keras.optimizers.Adam(learning_rate=spec.learning_rate, beta_1=spec.beta_1, beta_2=spec.beta_2,
                                 epsilon=spec.epsilon)


class Session:
    pass


def prepare(job):
    spec, plan = job.experiment, job.plan
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
    s = Session()
    s.tf, s.keras, s.mode = tf, keras, job.mode
    s.slices, s.batch_size = plan.batch_slices(), plan.batch_size
    s.image = len(plan.meta["input_shape"]) == 3
    s.model = build_model(keras, spec, tuple(plan.meta["input_shape"]), plan.meta["classes"])
    weights = plan.weights()
    s.model.set_weights([weights[name] for name in plan.meta["parameters"]])  # neutral layout = Keras layout
    s.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    s.optimizer = make_optimizer(keras, spec)
    feature = (None, *s.model.input_shape[1:])
    signature = [tf.TensorSpec(feature, tf.float32), tf.TensorSpec((None,), tf.int32)]
    if job.mode == "fit":
        s.step_losses = StepLosses(keras)
        s.model.compile(optimizer=s.optimizer, loss=s.loss_fn, metrics=[BatchLoss(keras, s.loss_fn)])
    else:
        s.step = tf.function(_train_step(tf, s.model, s.loss_fn, s.optimizer), input_signature=signature)
    s.forward = tf.function(lambda x: s.model(x, training=False), input_signature=signature[:1])
    build_s = time.perf_counter() - t1
    report = {
        "framework": "tensorflow", "framework_version": tf.__version__, "keras_version": keras.__version__,
        "device": gpus[0].name if spec.device == "cuda" else "cpu",
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


def BatchLoss(keras, loss_fn):
    """A metric whose value is the loss of the last batch (Keras' own ``loss`` log is a running mean)."""
    class BatchLoss(keras.metrics.Metric):
        def __init__(self):
            super().__init__(name="batch_loss")
            self.value = self.add_variable(shape=(), initializer="zeros", name="value")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.value.assign(loss_fn(y_true, y_pred))

        def result(self):
            return self.value

        def reset_state(self):
            self.value.assign(0.0)
    return BatchLoss()


def StepLosses(keras):
    class StepLosses(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.losses = []

        def on_train_batch_end(self, batch, logs=None):
            self.losses.append(float(logs["batch_loss"]))
    return StepLosses()


def _inputs(s, x: np.ndarray) -> np.ndarray:
    return layouts.nchw_to_nhwc(x) if s.image else np.asarray(x)


def train_epoch(s, x: np.ndarray, y: np.ndarray) -> EpochRun:
    checksums = [batch_checksum(x[sl], y[sl]) for sl in s.slices]
    xk, yk = _inputs(s, x), np.asarray(y)
    if s.mode == "fit":
        s.step_losses.losses = []
        start = time.perf_counter()
        s.model.fit(xk, yk, batch_size=s.batch_size, epochs=1, shuffle=False, verbose=0,
                    callbacks=[s.step_losses])
        seconds = time.perf_counter() - start
        losses = np.array(s.step_losses.losses)
    else:
        batches = [(xk[sl], yk[sl]) for sl in s.slices]
        start = time.perf_counter()
        out = [s.step(s.tf.convert_to_tensor(xb), s.tf.convert_to_tensor(yb)) for xb, yb in batches]
        losses = np.array([v.numpy() for v in out])  # reading the values waits for the device
        seconds = time.perf_counter() - start
    if len(losses) != len(s.slices):
        raise RuntimeError(f"keras trained {len(losses)} batches, the plan has {len(s.slices)}")
    return EpochRun(losses, seconds, checksums)


def predict(s, x: np.ndarray) -> np.ndarray:
    return s.forward(s.tf.convert_to_tensor(_inputs(s, x))).numpy()
