"""TensorFlow and Keras (TensorFlow backend) for tests/engines/test_numpy_nn.py: loss and gradients of a Keras
model, the max-pool gradient, optimizer trajectories. Run by ``tests.support.framework_check``."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

from tests.framework_checks.exchange import serve  # noqa: E402


def _layer_names(params: dict, prefix: str) -> list[str]:
    return sorted({k.split("/")[0] for k in params if k.startswith(prefix)}, key=lambda n: int(n.split("_")[1]))


def keras_loss_grads(model: str, params: dict, x: np.ndarray, y: np.ndarray) -> dict:
    """SparseCategoricalCrossentropy(from_logits=True) and its gradients of the Keras model numpy_nn
    describes (``model``, the layer sizes read from ``params``), with ``params`` as its weights."""
    L = keras.layers
    layers = [keras.Input(x.shape[1:])]
    convs, denses = _layer_names(params, "conv_"), _layer_names(params, "dense_")
    for name in convs:
        k = params[f"{name}/kernel"]
        layers += [L.Conv2D(k.shape[3], k.shape[:2], activation="relu"), L.MaxPooling2D(2)]
    if convs:
        layers.append(L.Flatten())
    for i, name in enumerate(denses):
        layers.append(L.Dense(params[f"{name}/kernel"].shape[1], activation="relu" if i < len(denses) - 1 else None))
    net = keras.Sequential(layers)
    names = [f"{layer}/{w}" for layer in convs + denses for w in ("kernel", "bias")]
    net.set_weights([params[k] for k in names])
    with tf.GradientTape() as tape:
        logits = net(x, training=True)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    grads = tape.gradient(loss, net.trainable_variables)
    return {"loss": float(loss), "grads": {k: g.numpy() for k, g in zip(names, grads)}}


def max_pool_grad(a: np.ndarray, dout: np.ndarray) -> dict:
    """``tf.nn.max_pool2d`` (2x2, stride 2, valid) of ``a`` and its gradient for output gradient ``dout``."""
    at = tf.constant(a)
    with tf.GradientTape() as tape:
        tape.watch(at)
        out = tf.nn.max_pool2d(at, 2, 2, "VALID")
    return {"out": out.numpy(), "grad": tape.gradient(out, at, output_gradients=tf.constant(dout)).numpy()}


def optimizer_trajectory(kind: str, learning_rate: float, init: dict, grads: dict, dtype: str) -> dict:
    """The weights after every step of Keras' ``kind`` optimizer on variables of ``dtype`` started at
    ``init``; ``grads[k]`` stacks the steps' gradients of ``k``. Per name, shape (steps, *shape)."""
    make = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[kind]
    opt = make(learning_rate=learning_rate)
    names = list(init)
    variables = [keras.Variable(init[k].astype(dtype)) for k in names]
    steps = {k: [] for k in names}
    for i in range(len(grads[names[0]])):
        opt.apply([tf.constant(grads[k][i].astype(dtype)) for k in names], variables)
        for k, v in zip(names, variables):
            steps[k].append(v.numpy())
    return {k: np.array(v) for k, v in steps.items()}


if __name__ == "__main__":
    print(f"tensorflow {tf.__version__}, keras {keras.__version__} ({keras.backend.backend()})")
    serve({f.__name__: f for f in (keras_loss_grads, max_pool_grad, optimizer_trajectory)})
