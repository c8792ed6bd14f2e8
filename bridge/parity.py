"""Parity: how closely an engine's per-step losses follow the reference variant that models its framework.

Defined once here: the relative step-loss difference, its tolerance, and which variant of the reference
each engine is compared with. Frameworks differ in small, documented ways; where one differs from Keras,
the reference has a variant that models it (``numpy_nn.MAXPOOL_RULES``), the engine's parity is measured
against that variant, and the report names the difference.

The one such difference today is the max-pool gradient: TensorFlow, PyTorch and XLA give each window's
gradient to the first element equal to its maximum; NNlib's CPU ``∇maxpool`` (Flux ``MaxPool``, Knet
``pool``) gives it to the first element Julia-``≈`` the maximum (rtol √eps(Float32) ≈ 3.45e-4), which can
be an element slightly below it. An engine module declares its rule per device in ``MAXPOOL_GRADIENT``
(e.g. ``{"cpu": "nnlib", "cuda": "cudnn"}``); undeclared means exact.
"""
from __future__ import annotations

import numpy as np

TOLERANCE = {"sgd": 1e-5, "adam": 1e-4}
"""Largest relative per-step loss difference from the reference variant, by optimizer: over the first 50
steps of an MLP and the first 10 of a CNN in the test suite; the golden fixtures of the Julia packages
carry the same numbers."""

MAXPOOL_GRADIENT = {
    "exact": "to the first element (row-major) equal to the window's maximum, as TensorFlow, PyTorch and XLA do",
    "nnlib": "to the first element (same order) within rtol √eps(Float32) ≈ 3.45e-4 of the window's maximum, "
             "as NNlib's CPU ∇maxpool does (Flux MaxPool, Knet pool)",
    "cudnn": "cuDNN's pooling backward, whose tie rule is not documented; compared with the exact variant",
}
"""Max-pool gradient rules by name, with what each does."""

REFERENCE = "reference"
REFERENCE_MODE = {"exact": "float64", "nnlib": "nnlib", "cudnn": "float64"}
"""The reference mode that models each rule."""


def maxpool_gradient(module, device: str) -> str:
    """The max-pool gradient rule of an engine module on ``device`` (a key of ``MAXPOOL_GRADIENT``)."""
    return getattr(module, "MAXPOOL_GRADIENT", {}).get(device, "exact")


def reference_mode(rule: str, model: str) -> str:
    """The reference mode an engine with max-pool rule ``rule`` is compared with on ``model``; the rules
    differ only where there is a max-pool, so every MLP is compared with the exact variant."""
    return REFERENCE_MODE.get(rule, "float64") if model == "cnn" else "float64"


def rel_diff(got, ref) -> np.ndarray:
    """``|got − ref| / |ref|`` per step, over the steps both have."""
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    n = min(len(got), len(ref))
    return np.abs(got[:n] - ref[:n]) / np.abs(ref[:n])
