"""Time to a target accuracy: how long a user waits until the model is good enough (MLPerf Training's and
DAWNBench's measure), from results.csv's frame.

An engine run reaches the target at the first epoch whose test accuracy (on the whole test split, after
that epoch) is at least the target; its time to target is the training time up to and including that
epoch: the sum of ``epoch_s`` of epochs 0 to k, the first epoch's tracing and compilation included, the
untimed evaluation excluded (as are ``import_s`` and ``build_s``, reported apart). A run that never gets
there has no time, only how many epochs it ran ("not reached in N epochs"): never a number in its place.

With repeats the time is the median over repeats with its 95% interval, as for the first epoch
(:func:`bridge.results.intervals.median_interval`, each repeat one value), but only when every repeat
reached the target: a median of the repeats that got there would hide those that did not, so "reached in
k of n repeats" stands instead, with no time.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .intervals import median_interval

if TYPE_CHECKING:
    import pandas as pd

SLACK = 1e-9
"""An accuracy is a fraction of whole examples (27/30), a target a decimal (0.9): they are compared with
this much room, so that 27/30 reaches 0.9 whatever the last bit of either."""


def reached(frame: pd.DataFrame, target: float | None) -> dict[tuple, tuple[int, int | None, float]]:
    """Per run ``(engine, mode, repeat)`` in ``frame`` (results.csv's rows): ``(epochs, epoch, seconds)``,
    the epochs it evaluated, the first epoch whose test accuracy reaches ``target`` and the sum of
    ``epoch_s`` of epochs 0 to that one; ``epoch`` None and ``seconds`` NaN where it never does (or
    ``target`` is None)."""
    keys = ["engine", "mode", "repeat"]
    accuracy = frame[(frame.split == "test") & (frame.metric == "accuracy")]
    seconds = frame[frame.metric == "epoch_s"]
    out = {}
    for key, acc in accuracy.groupby(keys, sort=False):
        acc = acc.sort_values("epoch")
        hits = acc[acc.value >= target - SLACK].epoch if target is not None else acc.epoch[:0]
        if not len(hits):
            out[key] = (len(acc), None, float("nan"))
            continue
        k = int(hits.iloc[0])
        mine = seconds[(seconds.engine == key[0]) & (seconds["mode"] == key[1]) & (seconds.repeat == key[2])]
        times = mine[mine.epoch <= k].value.to_numpy(dtype=float)
        out[key] = (len(acc), k, float(times.sum()) if len(times) == k + 1 else float("nan"))
    return out


def time_to_target(frame: pd.DataFrame, target: float | None, repeats: list[int] | None = None) -> dict:
    """The summary row's fields of one engine run (``frame``: its results.csv rows; ``repeats``: those it
    is judged over, default those in ``frame``; a repeat with no evaluated epoch counts as not reached):
    ``target_accuracy``; ``time_to_target_s`` with ``_low`` and ``_high`` (its 95% interval) and
    ``target_epoch`` (the lower median of the repeats' epochs), all NaN/None unless every repeat reached
    it; ``target_reached`` and ``target_repeats`` (how many of how many reached it); ``target_reason``:
    empty, or why there is no time (``not reached in 5 epochs``, ``reached in 2 of 3 repeats``)."""
    runs = reached(frame, target)
    repeats = sorted({k[2] for k in runs}) if repeats is None else list(repeats)
    per_repeat = {r: next((v for k, v in runs.items() if k[2] == r), (0, None, float("nan"))) for r in repeats}
    done = [v for v in per_repeat.values() if v[1] is not None and np.isfinite(v[2])]
    n, epochs = len(per_repeat), max((v[0] for v in per_repeat.values()), default=0)
    nan = float("nan")
    fields = {"target_accuracy": target, "time_to_target_s": nan, "time_to_target_s_low": nan,
              "time_to_target_s_high": nan, "target_epoch": None, "target_reached": len(done),
              "target_repeats": n}
    if target is None:
        return {**fields, "target_reason": "no target"}
    if not epochs:
        return {**fields, "target_reason": "no epoch finished"}
    if len(done) < n:
        reason = f"reached in {len(done)} of {n} repeats" if done else f"not reached in {epochs} epochs"
        return {**fields, "target_reason": reason}
    iv = median_interval([[v[2]] for v in done])
    return {**fields, "time_to_target_s": iv.point, "time_to_target_s_low": iv.low, "time_to_target_s_high": iv.high,
            "target_epoch": int(np.percentile([v[1] for v in done], 50, method="lower")), "target_reason": ""}
