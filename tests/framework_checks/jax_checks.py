"""JAX and optax for tests/engines/test_jax.py: the jax engine's forward pass, Keras' Adam as the engine's optax
transformation (and ``optax.adam``), optax's SGD step. Run by ``tests.support.framework_check``
(JAX_PLATFORMS=cpu unless set)."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import jax  # noqa: E402
import optax  # noqa: E402

from bridge.engines import jax as jax_engine  # noqa: E402
from tests.framework_checks.exchange import serve  # noqa: E402


def forward(weights: dict, x: np.ndarray) -> np.ndarray:
    """The engine's jit-compiled ``forward`` (Keras layout weights, NHWC or (N, F) inputs)."""
    return np.asarray(jax.jit(jax_engine.forward)(weights, x))


def adam_run(optimizer: str, w0: dict, grads: dict, lr: float, epsilon: float) -> dict:
    """The weights after ``len(grads[k])`` jit-compiled steps of ``optimizer``: ``keras`` (the engine's
    ``keras_adam``) or ``optax`` (``optax.adam``); ``grads[k]`` stacks the steps' gradients of ``k``."""
    tx = jax_engine.keras_adam(lr, 0.9, 0.999, epsilon) if optimizer == "keras" else optax.adam(lr, eps=epsilon)
    params = {k: jax.numpy.asarray(v) for k, v in w0.items()}
    state = tx.init(params)

    @jax.jit
    def step(params, state, g):
        updates, state = tx.update(g, state, params)
        return optax.apply_updates(params, updates), state

    for i in range(len(next(iter(grads.values())))):
        params, state = step(params, state, {k: g[i] for k, g in grads.items()})
    return {k: np.asarray(v) for k, v in params.items()}


def sgd_step(w: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
    """One ``optax.sgd`` step from ``w`` with gradient ``g``."""
    tx = optax.sgd(lr)
    updates, _ = tx.update(g, tx.init(w))
    return np.asarray(optax.apply_updates(w, updates))


if __name__ == "__main__":
    print(f"jax {jax.__version__} ({jax.default_backend()}), optax {optax.__version__}")
    serve({f.__name__: f for f in (forward, adam_run, sgd_step)})
