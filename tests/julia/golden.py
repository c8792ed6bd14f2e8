"""Golden fixtures for the Julia packages' own tests: ``python -m tests.julia.golden [DIR]`` (from the
repository root; the fixtures are committed, and tests/julia/test_julia_engines.py checks they are current).

``DIR/golden.toml`` lists the cases. Each case replays one of the saved batch plans in ``DIR/<plan>/``
(the folder ``--save-plan`` writes, less the neutral-layout weights: plan.toml, checksums.npy, the splits,
each epoch's permutation, the initial weights in Julia layout) with an optimizer's settings, and
``DIR/expected/<case>.npy`` holds the per-step training losses the NumPy reference computes on it in
float64; ``DIR/expected/<plan>.x_train.eNNNN.npy`` (and ``y_``) hold every epoch as Python gathers it,
which Julia's ``epoch_data`` must reproduce exactly. The sgd and adam cases of a model share one plan.
``Pkg.test`` of BridgeFlux and BridgeKnet replays every case and compares within the tolerance golden.toml
carries (:data:`bridge.results.parity.TOLERANCE`), so Julia's own CI checks parity without Python.

The expected losses use the reference variant that models Flux and Knet on the CPU: NNlib's max-pool
gradient rule (:mod:`bridge.experiment.semantics`). The CNN plan is chosen so that the rule matters there: with
Keras' exact rule its losses differ from the expected ones by far more than the tolerance (see
``tests/test_golden.py``), and its feature map (2×3×64 in Julia's W×H×C, from 3×20×16 inputs) is large
enough and non-square, so a wrong flatten order fails too. Two more plans, ``mlp_sized`` (hidden 8, 6) and
``cnn_sized`` (one conv of 6 filters, dense 12), have sizes other than the defaults, which the Julia
engines must read from the plan. Default DIR: ``julia/golden``.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from bridge.engines import flux, reference
from bridge.experiment import plan as batch_plan
from bridge.experiment.semantics import rule_of
from bridge.experiment.spec import Spec
from bridge.julia import plan as julia_plan
from bridge.results.parity import TOLERANCE

PLANS = {
    "mlp": Spec(dataset="iris", epochs=2, batch_size=16),
    "cnn": Spec(dataset="synthetic", model="cnn", synthetic_shape="3,20,16", synthetic_samples=44, classes=4,
                epochs=2, batch_size=16),
    # sizes other than the defaults: the engines build their layers from the plan's shapes
    "mlp_sized": Spec(dataset="iris", epochs=2, batch_size=16, hidden=(8, 6)),
    "cnn_sized": Spec(dataset="synthetic", model="cnn", synthetic_shape="3,20,16", synthetic_samples=44, classes=4,
                      epochs=2, batch_size=16, filters=(6,), dense=12),
}
"""The saved plans; 44 CNN examples make batches of 16, 16 and 12 (a partial last batch)."""
OPTIMIZERS = {"sgd": dict(optimizer="sgd", learning_rate=0.1), "adam": dict(optimizer="adam", learning_rate=0.01)}
CNN_OPTIMIZERS = {"sgd": dict(optimizer="sgd", learning_rate=0.05), "adam": dict(optimizer="adam", learning_rate=0.001)}
CASES = {f"{plan}-{name}": (plan, settings)
         for plan in PLANS for name, settings in (CNN_OPTIMIZERS if plan.startswith("cnn") else OPTIMIZERS).items()}
"""case name -> (plan, the optimizer settings that replace the plan's)."""
MAXPOOL_GRADIENT = rule_of(flux, "loop", "cpu")
"""The max-pool gradient rule the expected losses follow: Flux's (and Knet's) on the CPU."""


def gathered_file(plan: str, what: str, e: int) -> str:
    """``expected/<plan>.<x|y>_train.eNNNN.npy``: epoch ``e`` of ``plan`` as Python gathers it."""
    return f"{plan}.{what}_train.e{e:04d}.npy"


def case_spec(name: str) -> Spec:
    plan, settings = CASES[name]
    return PLANS[plan].replace(**settings)


def reference_losses(plan: batch_plan.BatchPlan, rule: str = MAXPOOL_GRADIENT) -> np.ndarray:
    """Per-step losses of the reference engine (the variant for ``rule``) over every epoch of ``plan``, with
    the plan's optimizer."""
    session = reference.session(plan, rule)
    return np.concatenate([reference.train_epoch(session, *plan.epoch(e)).losses for e in range(plan.epochs)])


def golden_toml() -> str:
    keys = ("optimizer", "learning_rate", "beta_1", "beta_2", "epsilon")
    lines = ["# Written by `python -m tests.julia.golden`; read by the Pkg.test of BridgeFlux and BridgeKnet.",
             "# Each case trains plan <plan> with the optimizer settings given here (they replace the plan's)",
             "# and compares its per-step losses with expected/<case>.npy: the NumPy float64 reference's, with",
             "# the max-pool gradient rule named below. tolerance: largest relative per-step difference.",
             f"maxpool_gradient = {json.dumps(MAXPOOL_GRADIENT)}", "", "[tolerance]"]
    lines += [f"{k} = {v!r}" for k, v in TOLERANCE.items()]
    for name, (plan, _) in CASES.items():
        spec = case_spec(name)
        lines += ["", f"[cases.{name}]", f"plan = {json.dumps(plan)}"]
        lines += [f"{k} = {json.dumps(getattr(spec, k))}" for k in keys]
    return "\n".join(lines) + "\n"


def write(root: Path) -> dict[str, np.ndarray]:
    """Write every plan, golden.toml and the expected losses under ``root``; returns case -> losses."""
    root = Path(root)
    plans = {}
    for name, spec in PLANS.items():
        shutil.rmtree(root / name, ignore_errors=True)
        plans[name] = batch_plan.prepare(spec, root / name)
        julia_plan.export(plans[name])
    out = {case: reference_losses(plans[name].with_optimizer(**_settings(case))) for case, (name, _) in CASES.items()}
    (root / "expected").mkdir(parents=True, exist_ok=True)
    for name, saved in plans.items():  # Python's gather of every epoch, for Julia's epoch_data to be compared with
        for e in range(saved.epochs):
            for what, array in zip(("x", "y"), saved.epoch(e)):
                np.save(root / "expected" / gathered_file(name, what, e), array)
        shutil.rmtree(root / name / "weights")  # the Julia tests read julia/weights and plan.toml only
    for case, losses in out.items():
        np.save(root / "expected" / f"{case}.npy", losses)
    (root / "golden.toml").write_text(golden_toml())
    return out


def _settings(case: str) -> dict:
    """The optimizer settings case ``case`` trains its plan with, as plan.toml names them."""
    spec = case_spec(case)
    return {k: getattr(spec, k) for k in ("optimizer", "learning_rate", "beta_1", "beta_2", "epsilon")}


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "julia/golden")
    for name, losses in write(target).items():
        print(f"{target} {name}: {len(losses)} steps, loss {losses[0]:.6f} -> {losses[-1]:.6f}")
