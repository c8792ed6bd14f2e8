"""The torch engine: an idiomatic PyTorch training loop, mode ``loop``.

The model is an ``nn.Sequential`` of ``nn.Conv2d`` / ``nn.ReLU`` / ``nn.MaxPool2d`` / ``nn.Flatten`` /
``nn.Linear``; each step is ``loss = nn.CrossEntropyLoss()(model(x), y)``, ``zero_grad``,
``backward``, ``optimizer.step()``.

Layouts. PyTorch takes NCHW natively, so the plan's NCHW batches are handed over as they are
(``torch.from_numpy``: no copy on the CPU). The plan's weights (neutral Keras layout) are converted
once at load time: ``Linear.weight`` ``(out, in)`` is the Keras kernel transposed, ``Conv2d.weight``
``(Cout, Cin, kH, kW)`` is HWIO transposed (3, 2, 0, 1) (``Conv2d`` is cross-correlation, as Keras',
so no kernel flip), and because ``nn.Flatten`` after the convolutions reads NCHW order ``(c, h, w)``
where Keras reads NHWC ``(h, w, c)``, the rows of the first dense kernel are reordered once
(:func:`bridge.experiment.layouts.dense_rows_nhwc_to_nchw`). Labels become int64 (``CrossEntropyLoss``
wants Long targets), a copy made once per epoch before the clock starts.

Optimizers. SGD is ``torch.optim.SGD(lr)`` (lr rounded through float32 as Keras does). On the CPU it
updates with a fused multiply-add, ``w = fma(-lr, g, w)``, one rounding where Keras' ``w - g*lr`` has
two, so weights may differ from Keras' by one float32 ulp per step (checked in the tests).
``torch.optim.Adam`` adds epsilon to the square root of the *bias-corrected* second moment; Keras adds
it to the uncorrected one, so Adam is :class:`KerasAdam`, a small ``torch.optim.Optimizer`` that
follows :class:`bridge.engines.common.numpy_nn.Adam` line by line in float32.

Timing. Per-step losses are kept as tensors and read once after the loop, inside the timed region
(no device synchronisation per step); on CUDA, batches are copied to the GPU inside the loop, as a
PyTorch user's loop does, and ``torch.cuda.synchronize()`` runs before the clock is read. TF32 is
turned off on CUDA for parity and recorded.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.contract import EngineReport, EpochResult, Job, stopwatch
from bridge.experiment import layouts
from bridge.experiment.models import CNN_KERNEL, CNN_POOL, cnn_feature_shape, layer_sizes
from bridge.experiment.plan import OptimizerSettings

from .common import pytorch

FRAMEWORK = "torch"
MODES = ("loop",)
REQUIRES = ("torch",)
INSTALL = ("pip install 'bridge[torch]' (CPU-only wheel: pip install torch "
           "--index-url https://download.pytorch.org/whl/cpu)")


# --- model and optimizer -------------------------------------------------------------------------

def build_model(torch, shapes: dict, input_shape: tuple[int, ...]):
    """``(nn.Sequential, [(parameter name, torch parameter)])`` for the plan's parameter ``shapes``
    (:func:`bridge.experiment.models.layer_sizes`); ``input_shape`` in plan layout ((F,) or (C, H, W))."""
    nn = torch.nn
    layers, named = [], []
    filters, widths = layer_sizes(shapes)

    def dense(i: int, n_in: int, n_out: int):
        layer = nn.Linear(n_in, n_out)
        named.extend([(f"dense_{i}/kernel", layer.weight), (f"dense_{i}/bias", layer.bias)])
        return layer

    if filters:
        cin = input_shape[0]
        for i, cout in enumerate(filters):
            conv = nn.Conv2d(cin, cout, CNN_KERNEL)  # valid padding, stride 1
            named.extend([(f"conv_{i}/kernel", conv.weight), (f"conv_{i}/bias", conv.bias)])
            layers += [conv, nn.ReLU(), nn.MaxPool2d(CNN_POOL)]
            cin = cout
        h, w, c = cnn_feature_shape(tuple(input_shape), filters)
        sizes = (h * w * c, *widths)
        layers.append(nn.Flatten())
    else:
        sizes = (int(np.prod(input_shape)), *widths)
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(dense(i, n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers), named


def KerasAdam(torch):
    """The class of Keras' Adam as a ``torch.optim.Optimizer`` (built lazily: torch is imported late).

    Mirrors :class:`bridge.engines.common.numpy_nn.Adam` for float32 variables: every scalar is float32
    (lr and beta rounded through float32, ``1 - beta`` computed in double then rounded), the step
    size ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)`` is computed on the host in float32
    (so no device synchronisation), and epsilon is added to the square root of the *uncorrected*
    second moment::

        m   += (g - m) * (1 - beta_1)
        v   += (g*g - v) * (1 - beta_2)
        var -= (m * alpha) / (sqrt(v) + epsilon)

    The float32 scalars are passed as Python floats, which represent them exactly, so each tensor op
    rounds once in float32 whether the kernel computes in float or double.
    """
    class KerasAdam(torch.optim.Optimizer):
        def __init__(self, params, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
            f = np.float32
            defaults = dict(lr=f(lr), beta_1=f(beta_1), beta_2=f(beta_2), one_minus_beta_1=f(1 - beta_1),
                            one_minus_beta_2=f(1 - beta_2), epsilon=f(epsilon))
            super().__init__(params, defaults)
            self.iterations = 0

        @torch.no_grad()
        def step(self, closure=None):
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            f = np.float32
            t = f(self.iterations + 1)
            for group in self.param_groups:
                one = f(1)
                b1_power = group["beta_1"] ** t
                b2_power = group["beta_2"] ** t
                alpha = float(group["lr"] * np.sqrt(one - b2_power) / (one - b1_power))
                c1, c2 = float(group["one_minus_beta_1"]), float(group["one_minus_beta_2"])
                eps = float(group["epsilon"])
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = p.grad
                    state = self.state[p]
                    if not state:
                        state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                        state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    m, v = state["m"], state["v"]
                    m.add_(g.sub(m).mul_(c1))
                    v.add_(g.square().sub_(v).mul_(c2))
                    p.sub_(m.mul(alpha).div_(v.sqrt().add_(eps)))
            self.iterations += 1
            return loss
    return KerasAdam


def make_optimizer(torch, opt: OptimizerSettings, params):
    if opt.name == "sgd":
        # Keras rounds lr through float32; torch then converts it exactly.
        return torch.optim.SGD(params, lr=float(np.float32(opt.learning_rate)))
    return KerasAdam(torch)(params, lr=opt.learning_rate, beta_1=opt.beta_1, beta_2=opt.beta_2, epsilon=opt.epsilon)


# --- the protocol ----------------------------------------------------------------------------------

@dataclass
class TorchSession:
    torch: Any
    device: Any  # torch.device
    model: Any  # nn.Sequential
    loss_fn: Any
    optimizer: Any
    slices: list[slice]

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def prepare(job: Job) -> tuple[TorchSession, EngineReport]:
    plan = job.plan
    report: EngineReport = {}
    with stopwatch(report, "import_s"):
        import torch

    with stopwatch(report, "build_s"):
        torch.set_num_threads(job.threads)
        torch.set_num_interop_threads(job.threads)  # allowed once, before any inter-op work: a fresh worker
        precision = pytorch.full_float32(torch)
        if job.device == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError("--device cuda: torch sees no CUDA GPU (no device, or a CPU-only torch build "
                                   f"{torch.__version__}); run with --device cpu or install a CUDA build of torch")
            report.update(cuda_version=torch.version.cuda, cudnn_version=torch.backends.cudnn.version())
        device = torch.device(job.device)
        model, named = build_model(torch, plan.parameters, plan.input_shape)
        converted = layouts.to_torch(plan.weights(), plan.feature_shape)
        if sorted(name for name, _ in named) != sorted(converted):
            raise RuntimeError(f"torch model parameters {[n for n, _ in named]} do not match the plan's "
                               f"{sorted(converted)}")
        with torch.no_grad():
            for name, param in named:
                param.copy_(torch.from_numpy(converted[name]))
        model.to(device)
        model.train()
        s = TorchSession(torch, device, model, torch.nn.CrossEntropyLoss(),  # mean over the batch
                         make_optimizer(torch, plan.optimizer, model.parameters()), plan.batch_slices())
    report.update(framework_version=torch.__version__, device=torch.cuda.get_device_name(device) if s.cuda else "cpu",
                  threads=int(torch.get_num_threads()), inter_op_threads=int(torch.get_num_interop_threads()),
                  **precision, mkldnn=bool(torch.backends.mkldnn.is_available()),
                  optimizer=type(s.optimizer).__name__)
    return s, report


def _from_numpy(torch, a: np.ndarray):
    """A tensor sharing ``a``'s memory. The plan's splits (what ``predict`` gets) are read-only memory
    maps, which torch accepts with a warning; nothing here writes into inputs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(a)


def train_epoch(s: TorchSession, x: np.ndarray, y: np.ndarray) -> EpochResult:
    torch = s.torch
    xt = _from_numpy(torch, np.asarray(x))                 # NCHW as is, zero copy
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))   # CrossEntropyLoss wants int64
    batches = [(xt[sl], yt[sl]) for sl in s.slices]        # views
    model, loss_fn, optimizer, device = s.model, s.loss_fn, s.optimizer, s.device
    if s.cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = []
    for xb, yb in batches:
        if s.cuda:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        loss = loss_fn(model(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        out.append(loss.detach())
    losses = torch.stack(out).cpu().numpy().astype(np.float64)  # waits for the device
    if s.cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return EpochResult(losses, seconds)


def memory_report(s: TorchSession) -> dict:
    return pytorch.device_memory(s.torch) if s.cuda else {}


def predict(s: TorchSession, x: np.ndarray) -> np.ndarray:
    torch = s.torch
    s.model.eval()
    try:
        with torch.inference_mode():
            logits = s.model(_from_numpy(torch, np.asarray(x)).to(s.device))
            return logits.cpu().numpy()
    finally:
        s.model.train()
