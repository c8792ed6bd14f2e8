"""What a Julia engine reads beside a plan: the initial weights already in Flux/Knet layout.

Python decides layouts and Julia reads them (:mod:`bridge.experiment.layouts`): ``julia/weights/*.npy``
hold arrays whose NumPy shape is the Julia size, so Julia only reverses the axes of a C-order file. The
Julia engines declare :func:`export` as their ``export_plan``; the runner calls it before any worker
starts, and for every plan saved to be kept (``--save-plan``), so ``replay(dir)`` works from the REPL.
"""
from __future__ import annotations

from ..experiment import layouts, weights
from ..experiment.plan import BatchPlan

FOLDER = ("julia", "weights")


def export(plan: BatchPlan) -> None:
    """Write ``plan.root/julia/weights/*.npy``: the plan's initial weights in Flux/Knet layout."""
    weights.save(layouts.to_julia(plan.weights(), plan.feature_shape), plan.root.joinpath(*FOLDER))
