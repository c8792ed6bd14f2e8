"""Where frameworks differ by design, and which variant of the reference models each difference.

Frameworks differ in small, documented ways; bridge measures each as it is, and where one differs from
Keras the reference has a variant that models it, against which that engine's parity is measured
(:mod:`bridge.results.parity`). The one such difference today is the max-pool gradient: TensorFlow,
PyTorch and XLA give each window's gradient to the first element equal to its maximum; NNlib's CPU
``∇maxpool`` (Flux ``MaxPool``, Knet ``pool``) gives it to the first element Julia-``≈`` the maximum
(rtol √eps(Float32) ≈ 3.45e-4), which can be an element slightly below it.

An engine module declares its rule with ``maxpool_gradient(mode, device)`` (see :mod:`bridge.contract`);
:func:`rule_of` reads the declaration, once per engine run, when the engines are selected
(:func:`bridge.running.selection.select`), and the run carries it from there.
"""
from __future__ import annotations

RULES = {
    "exact": "to the first element (row-major) equal to the window's maximum, as TensorFlow, PyTorch and XLA do",
    "nnlib": "to the first element (same order) within rtol √eps(Float32) ≈ 3.45e-4 of the window's maximum, "
             "as NNlib's CPU ∇maxpool does (Flux MaxPool, Knet pool)",
    "cudnn": "cuDNN's pooling backward, whose tie rule is not documented; compared with the exact variant",
}
"""Max-pool gradient rules by name, with what each does."""

REFERENCE = "reference"
REFERENCE_VARIANTS = {"float64": "exact", "nnlib": "nnlib"}
"""The reference engine's modes and the rule each models (``float64``: Keras' semantics throughout)."""
EXACT_VARIANT = "float64"


def rule_of(module, mode: str, device: str) -> str:
    """The max-pool gradient rule engine ``module`` follows in ``mode`` on ``device`` (a key of :data:`RULES`)."""
    declared = getattr(module, "maxpool_gradient", None)
    return declared(mode, device) if declared else "exact"


def reference_mode(rule: str, model: str) -> str:
    """The reference mode an engine following ``rule`` is compared with on ``model``: the variant that
    models the rule; the rules differ only where there is a max-pool, so every MLP gets the exact one, and
    so does a rule no variant models (cuDNN's)."""
    if model != "cnn":
        return EXACT_VARIANT
    return next((mode for mode, r in REFERENCE_VARIANTS.items() if r == rule), EXACT_VARIANT)


def compared_with(engine: str, mode: str, rule: str, model: str) -> str | None:
    """The reference run (``engine/mode`` label) a run is compared with; the reference's NNlib variant is
    compared with its exact one, which shows the rules' difference; the exact variant with nothing."""
    if engine == REFERENCE:
        return f"{REFERENCE}/{EXACT_VARIANT}" if mode != EXACT_VARIANT else None
    return f"{REFERENCE}/{reference_mode(rule, model)}"
