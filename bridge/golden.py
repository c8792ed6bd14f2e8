"""Golden fixtures for the Julia packages' own tests: ``python -m bridge.golden [DIR]``.

Each case is a saved batch plan (the same folder ``--save-plan`` writes: plan.toml, the batches, the
initial weights in Julia layout) plus ``expected_losses.npy``, the per-step training losses the NumPy
reference (float64) computes on it. ``Pkg.test`` of BridgeFlux and BridgeKnet replays every case
and compares, so Julia's own CI verifies parity without Python. Default DIR: ``julia/golden``.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

from . import batchplan
from .protocol import Job
from .spec import Spec

SMALL = dict(epochs=2, batch_size=16)
CASES = {
    "mlp-sgd": Spec(dataset="iris", optimizer="sgd", learning_rate=0.1, **SMALL),
    "mlp-adam": Spec(dataset="iris", optimizer="adam", learning_rate=0.01, **SMALL),
    "cnn-sgd": Spec(dataset="synthetic", model="cnn", synthetic_shape="1,12,12", synthetic_samples=40,
                    classes=4, optimizer="sgd", learning_rate=0.05, **SMALL),
    "cnn-adam": Spec(dataset="synthetic", model="cnn", synthetic_shape="1,12,12", synthetic_samples=40,
                     classes=4, optimizer="adam", learning_rate=0.001, **SMALL),
}
TOLERANCE = {"sgd": 1e-5, "adam": 1e-4}
"""Relative per-step loss difference the Julia tests allow (the same as for every engine)."""


def reference_losses(spec: Spec, plan_dir: Path) -> np.ndarray:
    """Per-step losses of the reference engine over every epoch of the plan in ``plan_dir``."""
    from .engines import reference

    job = Job(engine="reference", mode="float64", repeat=0, plan_dir=str(plan_dir), spec=spec.to_dict(),
              threads=1, record_path="")
    session, _ = reference.prepare(job)
    return np.concatenate([reference.train_epoch(session, *job.plan.epoch(e)).losses
                           for e in range(job.plan.epochs)])


def write(root: Path) -> dict[str, np.ndarray]:
    out = {}
    for name, spec in CASES.items():
        case = root / name
        shutil.rmtree(case, ignore_errors=True)
        batchplan.prepare(spec, case)
        out[name] = reference_losses(spec, case)
        shutil.rmtree(case / "weights")  # the Julia tests read julia/weights and plan.toml only
        (case / "plan.json").unlink()
        np.save(case / "expected_losses.npy", out[name])
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "julia/golden")
    for name, losses in write(target).items():
        print(f"{target / name}: {len(losses)} steps, loss {losses[0]:.6f} -> {losses[-1]:.6f}")
