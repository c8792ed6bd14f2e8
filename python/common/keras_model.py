"""Keras 3 code shared by the keras engines (TensorFlow, JAX and PyTorch backends).

The model, the optimizer and ``model.fit`` over the plan's arrays are written once, against Keras 3's
backend-neutral API; each engine module sets its backend (``KERAS_BACKEND``), threads and device
before Keras is imported, and nothing here branches on the backend.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from bridge.contract import EpochResult, Job
from bridge.experiment import layouts
from bridge.experiment.models import CNN_KERNEL, CNN_POOL, layer_sizes
from bridge.experiment.plan import OptimizerSettings


def build_model(keras, shapes: dict, input_shape: tuple[int, ...]):
    """The Keras model with the plan's parameter ``shapes`` (:func:`bridge.experiment.models.layer_sizes`);
    ``input_shape`` in plan layout ((F,) or (C, H, W))."""
    filters, widths = layer_sizes(shapes)
    if filters:
        c, h, w = input_shape
        layers = [keras.Input((h, w, c))]
        for n in filters:
            layers += [keras.layers.Conv2D(n, CNN_KERNEL, activation="relu"), keras.layers.MaxPooling2D(CNN_POOL)]
        layers.append(keras.layers.Flatten())
    else:
        layers = [keras.Input((int(np.prod(input_shape)),))]
    layers += [keras.layers.Dense(n, activation="relu") for n in widths[:-1]]
    layers.append(keras.layers.Dense(widths[-1]))  # logits
    return keras.Sequential(layers)


def make_optimizer(keras, opt: OptimizerSettings):
    if opt.name == "sgd":
        return keras.optimizers.SGD(learning_rate=opt.learning_rate)
    return keras.optimizers.Adam(learning_rate=opt.learning_rate, beta_1=opt.beta_1, beta_2=opt.beta_2,
                                 epsilon=opt.epsilon)


@dataclass
class KerasSession:
    """What a keras engine keeps between calls."""
    keras: Any
    mode: str
    slices: list[slice]
    batch_size: int
    image: bool
    model: Any
    loss_fn: Any
    optimizer: Any
    step_losses: Any = None  # the callback that collects fit's per-step losses
    backend: Any = None  # the backend module, where the engine drives it itself (tf: the loop mode)
    step: Callable | None = None  # the compiled train step of the loop mode
    forward: Callable | None = None  # a compiled forward pass, where the engine has one
    compiling: Any = None  # what says the seconds spent compiling in an epoch, where the backend tells (jax)


def build(keras, job: Job, mode: str) -> KerasSession:
    """Model with the plan's initial weights (the neutral layout is Keras' own), loss and optimizer;
    compiled for ``fit`` when ``mode == "fit"``."""
    plan = job.plan
    model = build_model(keras, plan.parameters, plan.input_shape)
    weights = plan.weights()
    model.set_weights([weights[name] for name in plan.parameters])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    s = KerasSession(keras, mode, plan.batch_slices(), plan.batch_size, len(plan.input_shape) == 3, model, loss_fn,
                     make_optimizer(keras, plan.optimizer))
    if mode == "fit":
        s.step_losses = StepLosses(keras)
        s.model.compile(optimizer=s.optimizer, loss=s.loss_fn, metrics=[BatchLoss(keras, s.loss_fn)])
    return s


def BatchLoss(keras, loss_fn):
    """A metric whose value is the loss of the last batch (Keras' own ``loss`` log is a running mean),
    computed from the same forward pass as the training loss."""
    class BatchLoss(keras.metrics.Metric):
        def __init__(self):
            super().__init__(name="batch_loss")
            self.value = self.add_variable(shape=(), initializer="zeros", name="value")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.value.assign(loss_fn(y_true, y_pred))

        def result(self):
            # a tensor, not the variable: the JAX backend refuses to trace a variable object
            return keras.ops.convert_to_tensor(self.value)

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


def inputs(s: KerasSession, x: np.ndarray) -> np.ndarray:
    """Plan layout → Keras layout: NCHW images become NHWC (a copy, made before any clock starts)."""
    return layouts.nchw_to_nhwc(x) if s.image else np.asarray(x)


def fit_epoch(s: KerasSession, x: np.ndarray, y: np.ndarray) -> EpochResult:
    """One ``model.fit`` call over this epoch's arrays: ``shuffle=False`` and the plan's batch size make
    Keras slice exactly the plan's batches (consecutive rows, partial last batch kept)."""
    xk, yk = inputs(s, x), np.asarray(y)
    s.step_losses.losses = []
    start = time.perf_counter()
    s.model.fit(xk, yk, batch_size=s.batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[s.step_losses])
    end = time.perf_counter()
    compiled = None if s.compiling is None else s.compiling.seconds(start, end)
    return EpochResult(np.array(s.step_losses.losses), end - start, compile_s=compiled)


def predict(s: KerasSession, x: np.ndarray) -> np.ndarray:
    return s.keras.ops.convert_to_numpy(s.model(inputs(s, x), training=False))
