"""The jax engine: JAX with optax, mode ``jit``: one ``jax.jit``-compiled train step called per batch.

Parameters are a pytree (a dict ``name -> array``) holding the plan's weights in the neutral Keras
layout as they are: dense kernels ``(in, out)`` (``x @ K + b``), conv kernels HWIO. Images are NHWC:
each epoch's NCHW arrays are copied to NHWC once (:func:`bridge.experiment.layouts.nchw_to_nhwc`) before the
clock starts, as the keras engine does, so the NHWC flatten after the convolutions is Keras' and no
weight is reordered. Convolutions are ``jax.lax.conv_general_dilated`` with dimension numbers
``("NHWC", "HWIO", "NHWC")`` (cross-correlation, as Keras'), max pooling ``jax.lax.reduce_window``.

Compilation. The train step is traced and compiled on its first call, so the first epoch's time
includes compilation. The plan keeps the partial last batch, whose shape differs, so it triggers one
more compilation, also in the first epoch; later epochs reuse both executables. The seconds spent
compiling inside each epoch are reported (``compile_s``, from JAX's own compile events:
:class:`bridge.engines.common.xla.CompileClock`).

Optimizers. SGD is ``optax.sgd(lr)`` (lr rounded through float32 as Keras does). ``optax.adam`` adds
epsilon to the square root of the *bias-corrected* second moment and Keras to the uncorrected one, so
Adam is :func:`keras_adam`, an ``optax.GradientTransformation`` mirroring
:class:`bridge.engines.common.numpy_nn.Adam` in float32. The loss is
``optax.softmax_cross_entropy_with_integer_labels`` averaged over the batch.

Device and precision. ``--device cpu`` sets ``JAX_PLATFORMS=cpu`` before JAX is imported;
``--device cuda`` needs a JAX GPU backend (``jax.devices("gpu")``) and fails at once without one.
``jax_default_matmul_precision`` is ``"highest"`` (no TF32 / reduced-precision passes on GPUs), and the
threads are XLA's CPU pool (both: :mod:`bridge.engines.common.xla`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np

from bridge.contract import EngineReport, EpochResult, Job, stopwatch
from bridge.experiment import layouts
from bridge.experiment.models import layer_sizes
from bridge.experiment.plan import OptimizerSettings

from .common import xla

FRAMEWORK = "jax"
MODES = ("jit",)
REQUIRES = ("jax", "jaxlib", "optax")
INSTALL = "pip install 'bridge[jax]' (NVIDIA GPUs: also pip install 'jax[cuda13]')"


# --- model, loss, optimizer ------------------------------------------------------------------------

def forward(params: dict, x):
    """Logits ``(N, K)``: ``x`` is ``(N, F)`` for the mlp, NHWC for the cnn; params in Keras layout."""
    import jax
    import jax.numpy as jnp

    h = x
    n_conv, n_dense = (len(sizes) for sizes in layer_sizes({k: v.shape for k, v in params.items()}))
    for i in range(n_conv):
        h = jax.lax.conv_general_dilated(h, params[f"conv_{i}/kernel"], window_strides=(1, 1), padding="VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        h = jax.nn.relu(h + params[f"conv_{i}/bias"])
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    if n_conv:
        h = h.reshape(h.shape[0], -1)  # NHWC flatten, as Keras
    for i in range(n_dense):
        h = h @ params[f"dense_{i}/kernel"] + params[f"dense_{i}/bias"]
        if i < n_dense - 1:
            h = jax.nn.relu(h)
    return h


def loss_fn(params: dict, x, y):
    import optax

    return optax.softmax_cross_entropy_with_integer_labels(forward(params, x), y).mean()


class KerasAdamState(NamedTuple):
    count: object  # int32 scalar: steps taken
    mu: object     # first moment, params-shaped pytree
    nu: object     # second moment


def keras_adam(learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
               epsilon: float = 1e-7):
    """Keras 3 Adam as an ``optax.GradientTransformation``, mirroring ``numpy_nn.Adam`` in float32::

        t     = count + 1                                  (float32)
        alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m    += (g - m) * (1 - beta_1)
        v    += (g*g - v) * (1 - beta_2)
        update = -(m * alpha) / (sqrt(v) + epsilon)        (optax.apply_updates adds it)

    lr, beta_1, beta_2 and epsilon are float32; ``1 - beta`` is computed in double, then rounded.
    Epsilon goes on the square root of the UNcorrected second moment (Keras), not the bias-corrected
    one (``optax.adam``).
    """
    import jax
    import jax.numpy as jnp
    import optax

    f = np.float32
    lr, b1, b2, eps = f(learning_rate), f(beta_1), f(beta_2), f(epsilon)
    c1, c2 = f(1 - beta_1), f(1 - beta_2)

    def init(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return KerasAdamState(jnp.zeros((), jnp.int32), zeros, jax.tree_util.tree_map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        del params
        count = state.count + 1
        t = count.astype(jnp.float32)
        one = jnp.float32(1)
        alpha = lr * jnp.sqrt(one - jnp.power(b2, t)) / (one - jnp.power(b1, t))
        mu = jax.tree_util.tree_map(lambda m, g: m + (g - m) * c1, state.mu, grads)
        nu = jax.tree_util.tree_map(lambda v, g: v + (jnp.square(g) - v) * c2, state.nu, grads)
        updates = jax.tree_util.tree_map(lambda m, v: -((m * alpha) / (jnp.sqrt(v) + eps)), mu, nu)
        return updates, KerasAdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)


def make_optimizer(opt: OptimizerSettings):
    import optax

    if opt.name == "sgd":
        return optax.sgd(float(np.float32(opt.learning_rate)))  # Keras rounds lr through float32
    return keras_adam(opt.learning_rate, opt.beta_1, opt.beta_2, opt.epsilon)


def make_step(optimizer):
    """The jit-compiled train step ``(params, opt_state, x, y) -> (params, opt_state, loss)``; the loss
    is the batch's before the update."""
    import jax
    import optax

    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1))


# --- the protocol ----------------------------------------------------------------------------------

@dataclass
class JaxSession:
    jax: Any
    device: Any  # a jax.Device
    params: dict  # name -> device array, neutral layout
    opt_state: Any
    step: Callable  # the jit-compiled train step
    forward: Callable  # the jit-compiled forward pass
    slices: list[slice]
    image: bool
    compiling: xla.CompileClock  # the seconds JAX spends compiling, per epoch


def prepare(job: Job) -> tuple[JaxSession, EngineReport]:
    plan = job.plan
    if job.device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
    xla.request_threads(job.threads)
    report: EngineReport = {}
    with stopwatch(report, "import_s"):
        import jax
        import jax.numpy as jnp
        import jaxlib
        import optax

    with stopwatch(report, "build_s"):
        precision = xla.full_float32(jax)
        if job.device == "cuda":
            try:
                gpus = jax.devices("gpu")
            except RuntimeError:
                gpus = []
            if not gpus:
                raise RuntimeError(f"--device cuda: JAX {jax.__version__} has no GPU backend (no CUDA device, or no "
                                   "jax CUDA plugin); run with --device cpu or pip install 'jax[cuda13]'")
            device = gpus[0]
        else:
            device = jax.devices("cpu")[0]
        weights = plan.weights()
        params = {name: jax.device_put(jnp.asarray(weights[name], dtype=jnp.float32), device)
                  for name in plan.parameters}  # neutral layout = the layout used here
        optimizer = make_optimizer(plan.optimizer)
        s = JaxSession(jax, device, params, jax.device_put(optimizer.init(params), device), make_step(optimizer),
                       jax.jit(forward), plan.batch_slices(), len(plan.input_shape) == 3, xla.CompileClock(jax))
        jax.block_until_ready((s.params, s.opt_state))
    report.update(framework_version=jax.__version__, jaxlib_version=jaxlib.__version__,
                  optax_version=optax.__version__, device=device.device_kind if job.device == "cuda" else "cpu",
                  platform=device.platform, **xla.threads_report(job.threads, job.device), **precision,
                  x64=bool(jax.config.jax_enable_x64))
    return s, report


def _inputs(s: JaxSession, x: np.ndarray) -> np.ndarray:
    return layouts.nchw_to_nhwc(x) if s.image else np.asarray(x)


def train_epoch(s: JaxSession, x: np.ndarray, y: np.ndarray) -> EpochResult:
    jax = s.jax
    xk, yk = _inputs(s, x), np.asarray(y)
    batches = [(xk[sl], yk[sl]) for sl in s.slices]
    params, opt_state, step = s.params, s.opt_state, s.step
    start = time.perf_counter()
    out = []
    for xb, yb in batches:
        params, opt_state, loss = step(params, opt_state, xb, yb)
        out.append(loss)
    jax.block_until_ready((params, opt_state))
    losses = _host_values(s, out)
    end = time.perf_counter()
    s.params, s.opt_state = params, opt_state
    return EpochResult(losses, end - start, compile_s=s.compiling.seconds(start, end))


def _host_values(s: JaxSession, scalars: list) -> np.ndarray:
    """The step losses as float64 on the host, read inside the timed region. On the CPU each array is
    read in place (``np.asarray``: a few microseconds for a tiny Iris epoch, where ``jax.device_get``
    of the list costs ~40 µs, 6% of the epoch); on a GPU ``jax.device_get`` starts every copy at once."""
    if s.device.platform == "cpu":
        return np.array([np.asarray(v) for v in scalars], dtype=np.float64)
    return np.array(s.jax.device_get(scalars), dtype=np.float64)


def memory_report(s: JaxSession) -> dict:
    return xla.device_memory(s.device)


def predict(s: JaxSession, x: np.ndarray) -> np.ndarray:
    return np.asarray(s.forward(s.params, _inputs(s, x)))
