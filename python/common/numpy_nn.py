"""Pure-NumPy reference math: forward, backward and optimizers with Keras 3 semantics.

This module is the parity oracle of the project, so it imports NumPy only (and two tables of bridge's own:
the model's layer counts, the max-pool gradient rules).
Parameters are a dict ``name -> ndarray`` in the neutral (Keras) layout:

* ``model="mlp"``: ``dense_i/kernel`` (in, out), ``dense_i/bias`` (out,);
  ``y = x @ K + b``, relu after every dense layer but the last (logits).
* ``model="cnn"``: ``conv_i/kernel`` (kh, kw, Cin, Cout) HWIO and ``conv_i/bias``
  (Cout,), each conv (valid, stride 1, cross-correlation) followed by relu and
  a 2x2/stride-2 valid max-pool; the NHWC result is flattened by plain reshape
  and fed to the dense stack above.  Input is NHWC (N, H, W, C).

The compute dtype is the dtype of the parameter arrays (float64 for the
oracle, float32 also supported); inputs are cast to it.  The loss is Keras
``SparseCategoricalCrossentropy(from_logits=True)`` averaged over the batch.

The max-pool gradient has two variants (``maxpool=``), because frameworks differ there:
``"exact"`` gives each window's gradient to the first element (row-major) equal to the
window's maximum, as TensorFlow, PyTorch and XLA do; ``"nnlib"`` gives it to the first
element in the same scan order that is Julia-``≈`` the maximum, as NNlib's CPU
``∇maxpool`` does (Flux's ``MaxPool``, Knet's ``pool``; NNlib src/impl/pooling_direct.jl,
``y_idx ≈ x[...]``), which may be an element slightly below the maximum.
"""

from __future__ import annotations

import numpy as np

from bridge.experiment.models import layer_sizes
from bridge.experiment.semantics import REFERENCE_VARIANTS

__all__ = ["forward", "loss_and_grads", "SGD", "Adam", "MAXPOOL_RULES", "NNLIB_RTOL"]

MAXPOOL_RULES = tuple(REFERENCE_VARIANTS.values())  # the rules the reference models: "exact", "nnlib"
# Julia's `isapprox(x::Float32, y::Float32)` default: rtol = sqrt(eps(Float32)), atol = 0
# (base/floatfuncs.jl `rtoldefault`); NNlib compares Float32 activations with it.
NNLIB_RTOL = float(np.sqrt(np.finfo(np.float32).eps))


def _dtype(params: dict) -> np.dtype:
    dtypes = {np.asarray(v).dtype for v in params.values()}
    if len(dtypes) != 1 or not np.issubdtype(next(iter(dtypes)), np.floating):
        raise ValueError(f"params must share one floating dtype, got {sorted(map(str, dtypes))}")
    return next(iter(dtypes))


def _conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray):
    """Valid stride-1 cross-correlation. x (N,H,W,C), kernel (kh,kw,C,O) -> (N,H-kh+1,W-kw+1,O).

    Returns the output and the im2col matrix (N*Ho*Wo, kh*kw*C) kept for backward.
    """
    kh, kw, c, o = kernel.shape
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    n, ho, wo = win.shape[:3]
    # (i, j, c) ordering of a patch row matches a C-order reshape of the HWIO kernel,
    # so the whole layer is one GEMM against kernel.reshape(kh*kw*C, O).
    cols = np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(n * ho * wo, kh * kw * c)
    y = cols @ kernel.reshape(kh * kw * c, o) + bias
    return y.reshape(n, ho, wo, o), cols


def _conv_backward(dy: np.ndarray, cols: np.ndarray, kernel: np.ndarray, x_shape, need_dx: bool):
    """dy (N,Ho,Wo,O) -> (dkernel (kh,kw,C,O), dbias (O,), dx (N,H,W,C) or None)."""
    kh, kw, c, o = kernel.shape
    n, ho, wo, _ = dy.shape
    dy2 = dy.reshape(n * ho * wo, o)
    dk = (cols.T @ dy2).reshape(kernel.shape)
    db = dy2.sum(axis=0)
    if not need_dx:
        return dk, db, None
    dx = np.zeros(x_shape, dtype=dy.dtype)
    # col2im one kernel offset at a time: a (N*Ho*Wo, C) GEMM plus a shifted add per
    # offset, which avoids materialising the (N*Ho*Wo, kh*kw*C) column gradient.
    for i in range(kh):
        for j in range(kw):
            dx[:, i:i + ho, j:j + wo, :] += (dy2 @ kernel[i, j].T).reshape(n, ho, wo, c)
    return dk, db, dx


# Window slots in row-major order (h outer, w inner): on ties the gradient goes to the FIRST
# slot holding the maximum, where TF's CPU MaxPoolGrad routes it. NNlib scans the same order
# (WHCN, kh outer, kw inner).
_SLOTS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _maxpool(a: np.ndarray):
    """2x2 stride-2 valid max-pool. a (N,H,W,C) -> (N,H//2,W//2,C); odd trailing row/col dropped.

    Returns the output and the cache (input, output) for ``_maxpool_backward``.
    """
    h2, w2 = a.shape[1] // 2, a.shape[2] // 2
    # Four strided views instead of a reshape/transpose copy: ~4x faster at batch 128.
    s = [a[:, di:2 * h2:2, dj:2 * w2:2, :] for di, dj in _SLOTS]
    out = np.maximum(np.maximum(s[0], s[1]), np.maximum(s[2], s[3]))
    return out, (a, out)


def _pool_match(slot: np.ndarray, out: np.ndarray, rule: str) -> np.ndarray:
    """Where a window's element counts as its maximum under ``rule`` (see the module docstring)."""
    if rule == "exact":
        return slot == out
    if rule == "nnlib":
        # Julia's isapprox: x == y || (isfinite(x) && isfinite(y) && |x - y| <= rtol * max(|x|, |y|))
        close = np.abs(out - slot) <= NNLIB_RTOL * np.maximum(np.abs(out), np.abs(slot))
        return (slot == out) | (close & np.isfinite(slot) & np.isfinite(out))
    raise AssertionError(rule)  # loss_and_grads checked it


def _maxpool_backward(dout: np.ndarray, cache, rule: str = "exact") -> np.ndarray:
    """dout (N,H//2,W//2,C) -> da (N,H,W,C); dropped rows/cols get zero."""
    a, out = cache
    h2, w2 = out.shape[1], out.shape[2]
    da = np.zeros(a.shape, dtype=dout.dtype)
    free = np.ones(out.shape, dtype=bool)
    for di, dj in _SLOTS:
        hit = _pool_match(a[:, di:2 * h2:2, dj:2 * w2:2, :], out, rule) & free
        free &= ~hit
        da[:, di:2 * h2:2, dj:2 * w2:2, :] = dout * hit
    return da


def _run(model: str, params: dict, x: np.ndarray, keep: bool):
    """Forward pass. Returns logits (N, K) and, if ``keep``, the tape for ``_backprop``."""
    if model not in ("mlp", "cnn"):
        raise ValueError(f"unknown model {model!r}; expected 'mlp' or 'cnn'")
    dt = _dtype(params)
    h = np.asarray(x, dtype=dt)
    tape = []
    n_conv, n_dense = (len(sizes) for sizes in layer_sizes({k: np.shape(v) for k, v in params.items()}))
    if model == "cnn":
        if h.ndim != 4:
            raise ValueError(f"cnn input must be NHWC (N,H,W,C), got shape {h.shape}")
        for i in range(n_conv):
            z, cols = _conv(h, params[f"conv_{i}/kernel"], params[f"conv_{i}/bias"])
            a = np.maximum(z, 0)
            p, pcache = _maxpool(a)
            if keep:
                tape.append(("conv", i, cols, h.shape, z, pcache))
            h = p
        if keep:
            tape.append(("flatten", h.shape))
        h = h.reshape(h.shape[0], -1)
    if n_dense == 0:
        raise ValueError("params hold no dense_0/kernel")
    for i in range(n_dense):
        z = h @ params[f"dense_{i}/kernel"] + params[f"dense_{i}/bias"]
        if keep:
            tape.append(("dense", i, h, z))
        h = np.maximum(z, 0) if i < n_dense - 1 else z
    return h, tape


def _backprop(params: dict, tape: list, dlogits: np.ndarray, maxpool: str) -> dict:
    grads = {}
    g = dlogits
    last = True
    for entry in reversed(tape):
        kind, rest = entry[0], entry[1:]
        if kind == "dense":
            i, h, z = rest
            if not last:
                # ReLU'(0) = 0, matching TF's ReluGrad (gradient where features > 0).
                g = g * (z > 0)
            last = False
            grads[f"dense_{i}/kernel"] = h.T @ g
            grads[f"dense_{i}/bias"] = g.sum(axis=0)
            g = g @ params[f"dense_{i}/kernel"].T
        elif kind == "flatten":
            g = g.reshape(rest[0])
        else:
            i, cols, x_shape, z, pcache = rest
            g = _maxpool_backward(g, pcache, maxpool) * (z > 0)
            dk, db, g = _conv_backward(g, cols, params[f"conv_{i}/kernel"], x_shape, need_dx=i > 0)
            grads[f"conv_{i}/kernel"] = dk
            grads[f"conv_{i}/bias"] = db
    return grads


def _log_softmax(z: np.ndarray) -> np.ndarray:
    # Shift by the row max so exp never overflows and the largest term is exp(0) = 1.
    s = z - z.max(axis=1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def _labels(y, n: int) -> np.ndarray:
    y = np.asarray(y).reshape(-1).astype(np.intp)
    if y.shape[0] != n:
        raise ValueError(f"{y.shape[0]} labels for {n} examples")
    return y


def forward(model: str, params: dict, x: np.ndarray) -> np.ndarray:
    """Logits (N, K) for x: (N, F) for "mlp", NHWC (N, H, W, C) for "cnn"."""
    return _run(model, params, x, keep=False)[0]


def loss_and_grads(model: str, params: dict, x, y, maxpool: str = "exact") -> tuple[float, dict]:
    """Mean sparse softmax cross-entropy over the batch and its gradients.

    x as in ``forward``; y (N,) integer labels in [0, K); ``maxpool`` one of
    ``MAXPOOL_RULES``.  Returns (loss, grads) with grads having the keys, shapes and
    dtype of params.
    """
    if maxpool not in MAXPOOL_RULES:
        raise ValueError(f"max-pool gradient rule {maxpool!r} is not known; accepted: {', '.join(MAXPOOL_RULES)}")
    logits, tape = _run(model, params, x, keep=True)
    n = logits.shape[0]
    y = _labels(y, n)
    logp = _log_softmax(logits)
    rows = np.arange(n)
    loss = -logp[rows, y].mean()
    dlogits = np.exp(logp)
    dlogits[rows, y] -= 1
    dlogits /= n
    grads = _backprop(params, tape, dlogits, maxpool)
    return float(loss), {k: grads[k] for k in params}


def _tf_cast(value: float, dt: np.dtype):
    # keras ops.cast on the TF backend is tf.cast(x, dtype), which first converts a
    # Python float to a float32 tensor (Keras 3.15, backend/tensorflow/core.py, `cast`);
    # the lr is moreover stored in a floatx()=float32 Variable (optimizers/base_optimizer.py,
    # `BaseOptimizer.__init__`, the `_learning_rate` variable).  So for float64 variables
    # both lr and beta arrive as float64(float32(x)).
    return dt.type(np.float32(value))


class SGD:
    """Keras SGD with momentum=0, nesterov=False: ``var -= g * lr``, in place.

    lr is rounded through float32 as Keras does (see ``_tf_cast``).
    """

    def __init__(self, learning_rate: float):
        self.learning_rate = float(learning_rate)
        self.iterations = 0

    def apply(self, params: dict, grads: dict) -> None:
        """params/grads: dicts of same-keyed, same-shaped arrays; params updated in place."""
        for name, var in params.items():
            g = np.asarray(grads[name], dtype=var.dtype)
            var -= g * _tf_cast(self.learning_rate, var.dtype)
        self.iterations += 1


class Adam:
    """Keras 3.15.1 Adam (amsgrad=False), bit-for-bit in the variable's dtype.

    Follows keras/src/optimizers/adam.py, ``update_step`` (lines 102-137)::

        t     = iterations + 1                              (cast to var dtype)
        alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m    += (g - m) * (1 - beta_1)
        v    += (g*g - v) * (1 - beta_2)
        var  -= m * alpha / (sqrt(v) + epsilon)

    Casts reproduced (TF backend): lr and beta go through ``ops.cast``, i.e. via
    float32 (``_tf_cast``), so for float64 variables lr = float64(float32(lr))
    and the powers use float64(float32(beta)) ** t; ``1 - beta`` is evaluated in
    Python double and epsilon is a Python float, both converted straight to the
    var dtype.  For float32 variables every scalar is simply float32.  Epsilon
    is added to the square root of the UNcorrected second moment (the bias
    correction lives in alpha), unlike the paper's eps-hat form.
    State m, v (zeros, var-shaped) is created per parameter on first use.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.learning_rate = float(learning_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.iterations = 0
        self.m: dict = {}
        self.v: dict = {}

    def apply(self, params: dict, grads: dict) -> None:
        """params/grads: dicts of same-keyed, same-shaped arrays; params updated in place."""
        for name, var in params.items():
            f = var.dtype.type
            g = np.asarray(grads[name], dtype=var.dtype)
            if name not in self.m:
                self.m[name] = np.zeros_like(var)
                self.v[name] = np.zeros_like(var)
            m, v = self.m[name], self.v[name]
            t = f(self.iterations + 1)
            one = f(1)
            b1_power = _tf_cast(self.beta_1, var.dtype) ** t
            b2_power = _tf_cast(self.beta_2, var.dtype) ** t
            alpha = _tf_cast(self.learning_rate, var.dtype) * np.sqrt(one - b2_power) / (one - b1_power)
            # ops.multiply/ops.add convert a Python float straight to the var dtype.
            m += (g - m) * f(1 - self.beta_1)
            v += (np.square(g) - v) * f(1 - self.beta_2)
            var -= (m * alpha) / (np.sqrt(v) + f(self.epsilon))
        self.iterations += 1
