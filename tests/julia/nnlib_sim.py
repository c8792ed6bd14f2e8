"""An independent float32 NumPy simulation of what BridgeFlux (and BridgeKnet) compute on a golden plan.

Written from the upstream Julia sources, not from ``python/common/numpy_nn.py`` (nothing is imported from
it): arrays are kept in Julia's layouts and index order -- a NumPy array here has Julia's size and
``a[i, j, ...]`` is Julia's ``a[i+1, j+1, ...]``. Images are W×H×C×N, conv kernels (kW, kH, Cin, Cout),
Dense weights (out, in), logits K×N, and "flatten" is a column-major reshape of W×H×C.

Upstream versions read: NNlib v0.9.36, the newest whose sources are readable where this was written
(Flux 0.16.11 requires NNlib 0.9.42 or later, which no one here has read: the version a run resolved is
in its report, ``nnlib_version``, and CI prints the resolved Manifest before ``Pkg.test``, whose canary
and golden CNN cases fail if the ∇maxpool rule changed; Knet 1.4.10 calls the same NNlib kernels on the
CPU, Knet src/ops20/conv.jl `conv4`/`pool`/`poolx`, and NNlib v0.8.21 has the same ∇maxpool rule),
Flux v0.16.11, and the project's julia/BridgeFlux/src/*.jl, julia/common/plan.jl.

Everything is float32, as the engines run, except where the Julia code itself goes through Float64
(the optimizer constants). Reductions (sums inside the convolutions, matmuls, softmax) are not done in
Julia's exact order, so losses agree with a Julia run to float32 rounding, not bit for bit.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (pyproject: tomli there)
    import tomli as tomllib

F32 = np.float32
RULES = ("nnlib", "exact")

# Julia's default `isapprox` tolerance for two Float32s: rtoldefault = sqrt(eps(Float32)), computed in
# Float32 (base/floatfuncs.jl `rtoldefault`), atol = 0. = 0.00034526698f0.
RTOL = np.sqrt(np.finfo(F32).eps)


def julia_isapprox(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Elementwise Julia ``x ≈ y`` on Float32 (base/floatfuncs.jl `isapprox(x::Number, y::Number)`):
    ``x == y || (isfinite(x) && isfinite(y) && abs(x - y) <= rtol * max(abs(x), abs(y)))``, atol = 0,
    every operation in float32."""
    x, y = np.asarray(x, F32), np.asarray(y, F32)
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.abs(x - y) <= RTOL * np.maximum(np.abs(x), np.abs(y))
    return (x == y) | (np.isfinite(x) & np.isfinite(y) & close)


# ---------------------------------------------------------------------------------------------------
# Reading a plan the way julia/common/plan.jl does.

def npzread(path: Path) -> np.ndarray:
    """NPZ.jl `npzread` of a .npy: a C-order file is read into the reversed shape and then
    `permutedims`-ed back (NPZ.jl src/NPZ.jl `npzreadarray`), so Julia's array has NumPy's shape and
    index order: Julia ``a[i, j]`` == ``np.load(path)[i-1, j-1]``."""
    return np.load(path)


def julia_layout(a: np.ndarray) -> np.ndarray:
    """plan.jl `julia_layout`: ``permutedims(a, ndims(a):-1:1)``, i.e. the C-order bytes read
    column-major: (N, F) -> F×N, NCHW -> WHCN. In NumPy index terms that is the transpose."""
    return a.T if a.ndim > 1 else a


def load_case(golden_dir: Path, case: str) -> tuple[dict, dict]:
    """(plan meta with the case's optimizer settings merged in, the case table) from golden.toml."""
    golden_dir = Path(golden_dir)
    golden = tomllib.loads((golden_dir / "golden.toml").read_text())
    settings = dict(golden["cases"][case])
    plan = settings.pop("plan")
    meta = tomllib.loads((golden_dir / plan / "plan.toml").read_text())
    meta.update(settings)  # golden.toml: "the optimizer settings given here (they replace the plan's)"
    meta["dir"] = golden_dir / plan
    return meta, golden


def initial_weights(meta: dict) -> dict[str, np.ndarray]:
    """plan.jl `initial_weights`: ``Float32.(npzread("julia/weights/<name with / as .>.npy"))``."""
    return {name: npzread(meta["dir"] / "julia" / "weights" / (name.replace("/", ".") + ".npy")).astype(F32)
            for name in meta["parameters"]}


def epoch_data(meta: dict, e: int) -> tuple[np.ndarray, np.ndarray]:
    """plan.jl `epoch_data`: inputs in Julia layout, 0-based int32 labels of epoch `e` (0-based).

    ``gather_examples(split_data(p, "train")..., epoch_order(p, e))``: the split in Julia layout
    (examples on the last axis), indexed ``x[:, ..., order]`` with the 1-based permutation
    (``Int.(npzread("order.eNNNN.npy")) .+ 1``), labels ``y[order]``."""
    x = julia_layout(npzread(meta["dir"] / "x_train.npy"))
    y = npzread(meta["dir"] / "y_train.npy")
    order = npzread(meta["dir"] / f"order.e{e:04d}.npy").astype(np.int64) + 1  # 1-based, as Julia indexes
    return x[..., order - 1].astype(F32), y[order - 1]


def batch_ranges(n: int, batch_size: int) -> list[slice]:
    """plan.jl `batch_ranges`: ``i:min(i + batch_size - 1, n)`` -- the partial last batch is kept."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


# ---------------------------------------------------------------------------------------------------
# Layers, forward and backward.

def crosscor(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Valid, stride-1 cross-correlation, W×H×Cin×N with (kW, kH, Cin, Cout) -> W'×H'×Cout×N.

    Flux `CrossCor` builds `DenseConvDims(...; F=true)` (Flux src/layers/conv.jl@v0.16.11:474-477)
    with pad 0, stride 1, dilation 1 by default (:455-462). NNlib conv_direct.jl@v0.9.36:75-76,
    ``kproj(k, _, ::Val{true}) = k``: flipkernel=true indexes the kernel unflipped, and :79,105-114
    give ``y[w,h,co,n] = Σ_{ci,kh,kw} x[w+kw-1, h+kh-1, ci, n] * k[kw, kh, ci, co]`` (1-based).
    (The im2col path, conv_im2col.jl@v0.9.36:5-9 `kernel_index`, is the same.)"""
    kw, kh = k.shape[:2]
    patches = sliding_window_view(x, (kw, kh), axis=(0, 1))  # [w, h, ci, n, a, b] = x[w+a, h+b, ci, n]
    return np.einsum("whcnab,abco->whon", patches, k, optimize=True).astype(F32, copy=False)


def crosscor_backward(x: np.ndarray, k: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of :func:`crosscor` with respect to its input and kernel: the adjoints of the sum
    above (NNlib ∇conv_data / ∇conv_filter compute the same sums, in another order)."""
    kw, kh = k.shape[:2]
    patches = sliding_window_view(x, (kw, kh), axis=(0, 1))
    dk = np.einsum("whcnab,whon->abco", patches, dy, optimize=True).astype(F32, copy=False)
    dx = np.zeros_like(x)
    wo, ho = dy.shape[:2]
    for a in range(kw):
        for b in range(kh):
            dx[a:a + wo, b:b + ho] += np.einsum("co,whon->whcn", k[a, b], dy, optimize=True)
    return dx, dk


def relu(z: np.ndarray) -> np.ndarray:
    """NNlib activations.jl@v0.9.36:190 ``relu(x) = ifelse(x<0, zero(x), x)``."""
    return np.where(z < 0, F32(0), z)


def relu_grad(out: np.ndarray) -> np.ndarray:
    """NNlib activations.jl@v0.9.36:947 derivative from the output: ``Ω > 0`` (so relu'(0) = 0); used by
    `bias_act!`'s fast rrule (NNlib src/bias_act.jl@v0.9.36:60-69), through which Flux's Dense and
    CrossCor apply σ (Flux basic.jl@v0.16.11:199, conv.jl@v0.16.11:488)."""
    return (out > 0).astype(F32)


def _windows(x: np.ndarray, k: tuple[int, int]) -> np.ndarray:
    """The pooling windows of W×H×C×N `x` as Wo×Ho×C×N×(kH*kW), last axis in NNlib's scan order.

    MaxPool(k) has stride = k and pad 0 (Flux conv.jl@v0.16.11:728-731); NNlib's output size is
    ``div(I - K, S) + 1`` (dim_helpers/ConvDims.jl@v0.9.36:42), so a trailing odd row/column is
    dropped. Window (w, h) starts at input ``(w-1)*stride + 1`` (pooling_direct.jl@v0.9.36:36) and is
    scanned ``for kd, kh, kw`` with kw innermost (:81-83, :243-245): scan position kh*kW + kw (0-based).
    """
    kw, kh = k
    wo, ho = x.shape[0] // kw, x.shape[1] // kh
    c, n = x.shape[2:]
    blocks = x[:wo * kw, :ho * kh].reshape(wo, kw, ho, kh, c, n)  # [wo, kw, ho, kh, c, n]
    return blocks.transpose(0, 2, 4, 5, 3, 1).reshape(wo, ho, c, n, kh * kw)


def maxpool(x: np.ndarray, k: tuple[int, int] = (2, 2)) -> np.ndarray:
    """NNlib maxpool_direct! (pooling_direct.jl@v0.9.36:61-62, 91-94): ``m`` starts at
    nextfloat(-Inf) and takes ``xv`` when ``xv > m``, i.e. the window's maximum (no NaNs here)."""
    return _windows(x, k).max(axis=-1)


def maxpool_backward(dy: np.ndarray, y: np.ndarray, x: np.ndarray, k: tuple[int, int] = (2, 2),
                     rule: str = "nnlib") -> np.ndarray:
    """The max-pool input gradient: each window's ``dy`` goes to ONE element of the window.

    ``rule="nnlib"``: NNlib's ∇maxpool_direct! (pooling_direct.jl@v0.9.36:239-264; v0.8.21:217-240 is
    the same): scanning the window in order, the first element with ``y_idx ≈ x[...]`` (Julia
    isapprox, Float32 rtol ≈ 3.45e-4) takes ``dy``; ``maxpool_already_chose`` then breaks the scan.
    ``rule="exact"``: the first element (same scan order) EQUAL to the maximum, as TensorFlow does.
    Both pick the same element on exact ties; they differ on near-ties (a value within rtol of the
    maximum that comes before it in the scan).

    dx starts at zero and gets ``+=`` (pooling.jl@v0.9.36:128 fill!(dx, 0)); with stride == window the
    windows do not overlap, so each element gets at most one ``dy``; dropped trailing rows get none.
    """
    if rule not in RULES:
        raise ValueError(f"unknown max-pool gradient rule {rule!r}; expected one of {RULES}")
    win = _windows(x, k)
    hit = julia_isapprox(y[..., None], win) if rule == "nnlib" else (win == y[..., None])
    first = np.argmax(hit, axis=-1)  # the first True in scan order; y is in the window, so one exists
    dwin = np.where(np.arange(win.shape[-1]) == first[..., None], dy[..., None], F32(0)).astype(F32)
    kw, kh = k
    wo, ho, c, n = y.shape
    dx = np.zeros_like(x)
    dx[:wo * kw, :ho * kh] = dwin.reshape(wo, ho, c, n, kh, kw).transpose(0, 5, 1, 4, 2, 3) \
                                 .reshape(wo * kw, ho * kh, c, n)
    return dx


def flatten(x: np.ndarray) -> np.ndarray:
    """Flux.flatten = MLUtils.flatten (Flux src/layers/stateless.jl@v0.16.11:67): ``reshape(x, :, N)``,
    a column-major reshape: W×H×C×N -> (W*H*C)×N, row index w + W*h + W*H*c (0-based)."""
    return x.reshape(-1, x.shape[-1], order="F")


def logitcrossentropy(logits: np.ndarray, labels: np.ndarray) -> tuple[np.float32, np.ndarray]:
    """Flux losses/functions.jl@v0.16.11:270-273 ``mean(.-sum(y .* logsoftmax(ŷ; dims=1); dims=1))`` with
    y = onehotbatch(labels, 0:K-1) (BridgeFlux engine.jl). logsoftmax: NNlib softmax.jl@v0.9.36:111-121
    (x .- max, then .- log(sum(exp))). Returns the loss and d loss / d logits: the mean's 1/N, the
    ``.- y .*`` pullback, then NNlib ∇logsoftmax_data (softmax.jl@v0.9.36:125) ``dy .- sum(dy) .* exp.(ls)``.
    """
    k, n = logits.shape
    ls = logits - logits.max(axis=0, keepdims=True)
    ls = ls - np.log(np.exp(ls).sum(axis=0, keepdims=True))
    onehot = (np.arange(k)[:, None] == labels[None, :]).astype(F32)
    loss = np.mean(-(onehot * ls).sum(axis=0), dtype=F32)
    dls = -onehot * (F32(1) / F32(n))
    dlogits = dls - dls.sum(axis=0, keepdims=True) * np.exp(ls)
    return F32(loss), dlogits.astype(F32, copy=False)


# ---------------------------------------------------------------------------------------------------
# The model of julia/BridgeFlux/src/model.jl `build_model`, and its gradient.

def _count(w: dict, prefix: str) -> int:
    n = 0
    while f"{prefix}_{n}/kernel" in w:
        n += 1
    return n


def loss_and_grads(w: dict[str, np.ndarray], x: np.ndarray, labels: np.ndarray, rule: str
                   ) -> tuple[np.float32, dict[str, np.ndarray]]:
    """Per conv_i: CrossCor(K, b, relu) then MaxPool((2, 2)); Flux.flatten; Dense(W, b, relu) for every
    dense_i but the last, whose output is the logits (model.jl). Dense: σ.(W*x .+ b) (Flux
    basic.jl@v0.16.11:196-200); conv bias on the channel axis (Flux `conv_reshape_bias`)."""
    tape = []
    a = x
    for i in range(_count(w, "conv")):
        k, b = w[f"conv_{i}/kernel"], w[f"conv_{i}/bias"]
        z = relu(crosscor(a, k) + b[None, None, :, None])
        p = maxpool(z)
        tape.append(("conv", i, a, z, p))
        a = p
    shape4 = a.shape if a.ndim == 4 else None
    a = flatten(a) if shape4 is not None else a
    n_dense = _count(w, "dense")
    for i in range(n_dense):
        out = w[f"dense_{i}/kernel"] @ a + w[f"dense_{i}/bias"][:, None]
        out = relu(out) if i < n_dense - 1 else out
        tape.append(("dense", i, a, out, None))
        a = out
    loss, g = logitcrossentropy(a, labels)

    grads = {}
    for kind, i, inp, out, pooled in reversed(tape):
        if kind == "dense":
            if i < n_dense - 1:
                g = g * relu_grad(out)
            grads[f"dense_{i}/kernel"] = (g @ inp.T).astype(F32, copy=False)
            grads[f"dense_{i}/bias"] = g.sum(axis=1, dtype=F32)
            g = w[f"dense_{i}/kernel"].T @ g
            if i == 0 and shape4 is not None:
                g = g.reshape(shape4, order="F")  # the adjoint of the column-major flatten
        else:
            g = maxpool_backward(g, pooled, out, rule=rule) * relu_grad(out)
            grads[f"conv_{i}/bias"] = g.sum(axis=(0, 1, 3), dtype=F32)
            g, grads[f"conv_{i}/kernel"] = crosscor_backward(inp, w[f"conv_{i}/kernel"], g)
    return loss, grads


# ---------------------------------------------------------------------------------------------------
# Optimizers, as julia/BridgeFlux/src/keras_adam.jl rounds them (T = Float32).

class Descent:
    """`Optimisers.Descent(lr)`: ``x .-= dx .* T(lr)`` (keras_adam.jl `optimiser_rule` docstring,
    Optimisers rules.jl@v0.4.8:20-32). BridgeKnet's KerasSGD: ``w .-= g .* T(Float32(lr))``, the same."""

    def __init__(self, meta: dict):
        self.lr = F32(meta["learning_rate"])

    def step(self, name: str, x: np.ndarray, dx: np.ndarray) -> None:
        x -= dx * self.lr


class KerasAdam:
    """keras_adam.jl `apply!` with T = Float32, state (m, v, t) per parameter:

        b1p = T(Float64(T(beta1))^t)   (`_power`: beta rounded to T, Float64 power, rounded once)
        alpha = T(eta) * sqrt(1 - b2p) / (1 - b1p)          (Float32 arithmetic)
        c1, c2, ϵ = T(1 - beta1), T(1 - beta2), T(epsilon)  (1 - beta in Float64, then rounded)
        m .= m .+ (dx .- m) .* c1;  v .= v .+ (dx .* dx .- v) .* c2
        x .-= m .* alpha ./ (sqrt.(v) .+ ϵ)                 (ϵ on sqrt of the UNcorrected v)
    """

    def __init__(self, meta: dict):
        self.eta, self.beta1, self.beta2 = float(meta["learning_rate"]), float(meta["beta_1"]), float(meta["beta_2"])
        self.c1, self.c2 = F32(1 - self.beta1), F32(1 - self.beta2)
        self.eps = F32(meta["epsilon"])
        self.state: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}

    @staticmethod
    def _power(beta: float, t: int) -> np.float32:
        return F32(float(F32(beta)) ** t)

    def step(self, name: str, x: np.ndarray, dx: np.ndarray) -> None:
        m, v, t = self.state.get(name) or (np.zeros_like(x), np.zeros_like(x), 0)
        t += 1
        b1p, b2p = self._power(self.beta1, t), self._power(self.beta2, t)
        alpha = F32(self.eta) * np.sqrt(F32(1) - b2p) / (F32(1) - b1p)
        m = m + (dx - m) * self.c1
        v = v + (dx * dx - v) * self.c2
        x -= m * alpha / (np.sqrt(v) + self.eps)
        self.state[name] = (m, v, t)


def optimizer(meta: dict):
    return {"sgd": Descent, "adam": KerasAdam}[meta["optimizer"]](meta)


# ---------------------------------------------------------------------------------------------------

def simulate(golden_dir: str | Path, case: str, maxpool: str = "nnlib") -> np.ndarray:
    """Per-step float32 losses of golden case `case` (golden.toml ``[cases.<case>]``): every epoch of
    its plan in order, every batch (the partial last one kept), each batch's loss before its update
    (what `Flux.withgradient` returns in BridgeFlux engine.jl `run_batches!`). `maxpool` is the
    max-pool gradient rule: "nnlib" (what Flux/Knet do on the CPU) or "exact"."""
    if maxpool not in RULES:
        raise ValueError(f"unknown max-pool gradient rule {maxpool!r}; expected one of {RULES}")
    meta, _ = load_case(Path(golden_dir), case)
    w = initial_weights(meta)
    opt = optimizer(meta)
    losses = []
    for e in range(int(meta["epochs"])):
        x, y = epoch_data(meta, e)
        for r in batch_ranges(x.shape[-1], int(meta["batch_size"])):
            loss, grads = loss_and_grads(w, x[..., r], y[r], maxpool)
            for name in meta["parameters"]:  # every leaf gets a gradient at every step
                opt.step(name, w[name], grads[name])
            losses.append(loss)
    return np.asarray(losses, dtype=F32)
