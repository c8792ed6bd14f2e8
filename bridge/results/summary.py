"""The numbers a results folder is judged by, computed from results.csv's frame: the steady state, the
work an epoch asks, throughput against the measured peak, the per-engine summary table, and the one set
of formatters every table (terminal, report, comparison, sweep) shows values with.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..experiment import models
from . import parity


def throughput(steady_s: float, first_s: float, work: dict | None) -> dict:
    """Examples per second (steady state and first epoch), achieved training GFLOP/s and its fraction
    of the measured peak, from one epoch's ``work`` (:func:`epoch_work`); NaN where not known."""
    nan = float("nan")
    if not work:
        return {"examples_per_s": nan, "first_epoch_examples_per_s": nan, "gflops": nan, "peak_fraction": nan}
    rate = work["examples"] / steady_s if steady_s and steady_s > 0 else nan
    gflops = rate * work["train_flops_per_example"] / 1e9
    peak = work.get("peak_gflops")
    return {"examples_per_s": rate,
            "first_epoch_examples_per_s": work["examples"] / first_s if first_s and first_s > 0 else nan,
            "gflops": gflops, "peak_fraction": gflops / peak if peak else nan}


def epoch_work(plan, peak_gflops: float | None) -> dict:
    """What one training epoch asks of an engine: examples, training FLOPs per example
    (``models.TRAINING_FACTOR`` × the forward pass), and the machine's measured peak to compare with."""
    shapes = plan.parameters
    forward = models.forward_flops(shapes, plan.input_shape)
    return {"examples": plan.meta["n_train"], "parameters": models.parameter_count(shapes),
            "forward_flops_per_example": forward,
            "train_flops_per_example": models.TRAINING_FACTOR * forward, "peak_gflops": peak_gflops}


def summarise(frame: pd.DataFrame, outcomes: list, parity_: dict | None = None,
              work: dict | None = None) -> pd.DataFrame:
    """Per engine and mode, over repeats: medians of time to first epoch and of the steady-state epoch
    time (median of epochs after the first), and the final train/test loss and accuracy.

    A ``mismatch`` repeat trained on batches other than the plan's, so its numbers compare nothing: it
    keeps its row and status here (and its values in results.csv, to look into), but its times, losses
    and accuracies are left out of the medians; an engine whose every repeat mismatched shows none. A
    ``diverged`` repeat counts: its non-finite values are the result. ``parity_`` (label -> entry of
    :func:`bridge.results.parity.engine_parity`) gives each row its parity cell, largest difference and verdict."""
    records = []
    labels = list(dict.fromkeys(o.run.label for o in outcomes))
    for label in labels:
        mine = [o for o in outcomes if o.run.label == label]
        engine, mode = label.split("/", 1)
        compared = [o.repeat for o in mine if o.status != "mismatch"]
        f = frame[(frame.engine == engine) & (frame["mode"] == mode) & frame.repeat.isin(compared)]
        times = epoch_times(f)
        first, steady = times["first_epoch_s"].dropna(), times["steady_epoch_s"].dropna()
        last = f[f.epoch == f.epoch.max()] if len(f) else f

        def final(split, metric):
            v = last[(last.split == split) & (last.metric == metric)].value
            return float(v.median()) if len(v) else np.nan

        statuses = sorted({o.status for o in mine})
        framework = next((o.report.get("framework", "") + " " + o.report.get("framework_version", "")
                          for o in mine if o.report), "").strip() or mine[0].run.framework
        records.append({
            "engine": label,
            "framework": framework,
            "status": ",".join(statuses),
            "runs": f"{sum(o.ok for o in mine)}/{len(mine)}",
            "parity": parity.parity_cell((parity_ or {}).get(label)),
            "parity_max_rel_diff": (parity_ or {}).get(label, {}).get("max_rel_diff", np.nan),
            "parity_pass": (parity_ or {}).get(label, {}).get("pass"),
            "first_epoch_s": (first_s := float(first.median()) if len(first) else np.nan),
            "steady_epoch_s": (steady_s := float(steady.median()) if len(steady) else np.nan),
            **throughput(steady_s, first_s, work),
            "train_loss": final("train", "loss"),
            "test_loss": final("test", "loss"),
            "test_accuracy": final("test", "accuracy"),
        })
    return pd.DataFrame(records)


def epoch_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Per run (engine, mode, repeat): ``first_epoch_s``, the first epoch's seconds (tracing, compilation
    and JIT included), and ``steady_epoch_s``, the median of the epochs after the first: the one
    definition of the steady state, for the summary and the figures."""
    t = frame[frame.metric == "epoch_s"]
    keys = ["engine", "mode", "repeat"]
    first = t[t.epoch == 0].groupby(keys).value.first().rename("first_epoch_s")
    steady = t[t.epoch > 0].groupby(keys).value.median().rename("steady_epoch_s")
    return pd.concat([first, steady], axis=1).reset_index()


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def format_seconds(v) -> str:
    """Seconds as the summary table shows them: ``848.5 ms`` below one second, ``1.23 s`` above."""
    if _missing(v):
        return "-"
    return f"{v * 1e3:.1f} ms" if v < 1 else f"{v:.2f} s"


def format_number(v) -> str:
    if _missing(v):
        return "-"
    return f"{v:.4f}"


def format_rate(v, digits: int = 0) -> str:
    if _missing(v):
        return "-"
    return f"{v:,.{digits}f}"


def format_fraction(v) -> str:
    """A fraction as a percentage: ``45.3%``, and two significant digits below 1% (``0.042%``)."""
    if _missing(v):
        return "-"
    return f"{100 * v:.1f}%" if 100 * v >= 1 else f"{100 * v:.2g}%"


def format_duration(seconds: float) -> str:
    """A wall time as progress lines show it: ``42 s`` up to a minute and a half, ``3.5 min`` above."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def format_table(summary: pd.DataFrame) -> str:
    """The compact summary table printed at the end of a run."""
    if summary.empty:
        return "(no engine ran)"
    show = summary.copy()
    for col in ("first_epoch_s", "steady_epoch_s"):
        show[col] = show[col].map(format_seconds)
    for col in ("train_loss", "test_loss", "test_accuracy"):
        show[col] = show[col].map(format_number)
    show["examples_per_s"] = show["examples_per_s"].map(format_rate)
    show["peak_fraction"] = show["peak_fraction"].map(format_fraction)
    show = show.drop(columns=["parity_max_rel_diff", "parity_pass", "first_epoch_examples_per_s", "gflops"],
                     errors="ignore")
    show = show.rename(columns={"first_epoch_s": "first epoch", "steady_epoch_s": "steady epoch",
                                "train_loss": "train loss", "test_loss": "test loss", "test_accuracy": "test acc",
                                "examples_per_s": "examples/s", "peak_fraction": "of peak"})
    return show.to_string(index=False)
