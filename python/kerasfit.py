"""Keras 3 code shared by the keras engines (TensorFlow, JAX and PyTorch backends).

The model, the optimizer and ``model.fit`` over the plan's arrays are written once, against Keras 3's
backend-neutral API; each engine module sets its backend (``KERAS_BACKEND``), threads and device
before Keras is imported, and nothing here branches on the backend.
"""
from __future__ import annotations

import time

import numpy as np

from bridge import layouts
from bridge.models import CNN_KERNEL, CNN_POOL, layer_sizes
from bridge.protocol import EpochRun


def build_model(keras, shapes: dict, input_shape: tuple[int, ...]):
    """The Keras model with the plan's parameter ``shapes`` (:func:`bridge.models.layer_sizes`);
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


def make_optimizer(keras, spec):
    if spec.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=spec.learning_rate)
    return keras.optimizers.Adam(learning_rate=spec.learning_rate, beta_1=spec.beta_1, beta_2=spec.beta_2,
                                 epsilon=spec.epsilon)


class Session:
    """What a keras engine keeps between calls."""


def build(keras, job, mode: str) -> Session:
    """Model with the plan's initial weights (the neutral layout is Keras' own), loss and optimizer;
    compiled for ``fit`` when ``mode == "fit"``."""
    spec, plan = job.experiment, job.plan
    s = Session()
    s.keras, s.mode = keras, mode
    s.slices, s.batch_size = plan.batch_slices(), plan.batch_size
    s.image = len(plan.meta["input_shape"]) == 3
    s.model = build_model(keras, plan.meta["parameters"], tuple(plan.meta["input_shape"]))
    weights = plan.weights()
    s.model.set_weights([weights[name] for name in plan.meta["parameters"]])
    s.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    s.optimizer = make_optimizer(keras, spec)
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


def inputs(s: Session, x: np.ndarray) -> np.ndarray:
    """Plan layout → Keras layout: NCHW images become NHWC (a copy, made before any clock starts)."""
    return layouts.nchw_to_nhwc(x) if s.image else np.asarray(x)


def fit_epoch(s: Session, x: np.ndarray, y: np.ndarray) -> EpochRun:
    """One ``model.fit`` call over this epoch's arrays: ``shuffle=False`` and the plan's batch size make
    Keras slice exactly the plan's batches (consecutive rows, partial last batch kept)."""
    xk, yk = inputs(s, x), np.asarray(y)
    s.step_losses.losses = []
    start = time.perf_counter()
    s.model.fit(xk, yk, batch_size=s.batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[s.step_losses])
    seconds = time.perf_counter() - start
    return EpochRun(np.array(s.step_losses.losses), seconds)


def predict(s: Session, x: np.ndarray) -> np.ndarray:
    return s.keras.ops.convert_to_numpy(s.model(inputs(s, x), training=False))
