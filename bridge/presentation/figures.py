"""Figures of a results folder, each a pure function of its ``results.csv``: ``<name>_data(frame)`` returns
the plotted series as a tidy DataFrame (the tests compare it with the results, not pixels) and
``<name>_figure(data, about) -> Figure`` draws it; :func:`write` saves every figure that has data as PNG and
SVG under ``DIR/figures/``. Figures are :class:`matplotlib.figure.Figure` objects, never pyplot's: no global
registry, no GUI backend, nothing left open between calls.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..experiment.semantics import EXACT_VARIANT, REFERENCE
from ..results.parity import PARITY_STEPS, TOLERANCE, rel_diff
from ..results.store import read_frame
from ..results.intervals import median_interval
from ..results.summary import format_bytes, format_seconds
from ..results.target import time_to_target

SPLITS = ("train", "test")
COLOURS = matplotlib.colormaps["tab10"].colors
WIDE = 30.0  # a max/min ratio above this gets a log axis: a first epoch with compilation dwarfs the rest
EXACT_FLOOR = 1e-18  # where an exactly equal step is drawn on the log axis of the parity figure


def about(frame: pd.DataFrame) -> str:
    """``iris · mlp · adam`` — what the experiment was, for figure titles."""
    parts = [", ".join(dict.fromkeys(frame[c])) for c in ("dataset", "model", "optimizer") if c in frame]
    return " · ".join(p for p in parts if p)


def _labels(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per engine/mode in order of first appearance; ``order`` fixes its colour in every figure."""
    first = frame.drop_duplicates("label")[["label", "legend"]].reset_index(drop=True)
    first["order"] = first.index
    return first


def _with_labels(data: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    data = data.merge(_labels(frame), on="label", how="left")
    return data[["label", "legend", "order"] + [c for c in data.columns if c not in ("label", "legend", "order")]]


def _spread(grouped) -> pd.DataFrame:
    return grouped.agg(median="median", min="min", max="max", repeats="count").reset_index()


def _log_if_wide(ax, values, axis: str = "y") -> None:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) and v.max() / v.min() > WIDE:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def _style(order) -> dict:
    """Colour, dash and width of an engine's line. Engines that agree draw exactly on top of each other
    (that is the point of parity), so later engines are thinner and dashed and the first stays visible."""
    k = int(order)
    return {"color": COLOURS[k % len(COLOURS)], "linestyle": ("-", "--", ":", "-.")[k % 4],
            "linewidth": max(2.6 - 0.5 * k, 1.0)}


def _legend_below(fig: Figure, ax) -> None:
    """One legend under the panels, where it never covers a curve, in as many columns (up to 3) as fit."""
    handles, labels = ax.get_legend_handles_labels()
    for ncol in range(min(len(labels), 3), 0, -1):
        legend = fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize="small")
        if ncol == 1 or _fits(fig, legend):
            return
        legend.remove()


def _suptitle(fig: Figure, text: str) -> None:
    """The title over the panels, its lines wrapped where they are wider than the figure."""
    title, width = fig.suptitle(text), max(map(len, text.splitlines()))
    while not _fits(fig, title) and width > 30:
        width = int(width * 0.85)
        title.set_text("\n".join(textwrap.fill(line, width) for line in text.splitlines()))


def _fits(fig: Figure, artist) -> bool:
    return artist.get_window_extent().width <= 0.98 * fig.bbox.width


def _title(what: str, about: str) -> str:
    return f"{what} — {about}" if about else what


def _empty(columns: list[str]) -> pd.DataFrame:  # a figure with nothing to draw is not written
    return pd.DataFrame(columns=columns)


# -- loss and accuracy per epoch -------------------------------------------------------------------------

def _per_epoch(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    f = frame[(frame.metric == metric) & frame.split.isin(SPLITS)]
    if f.empty:
        return _empty(["label", "legend", "order", "split", "epoch", "median", "min", "max", "repeats"])
    data = _spread(f.groupby(["label", "split", "epoch"]).value)
    data["epoch"] = data["epoch"].astype(int)
    return _with_labels(data, frame).sort_values(["order", "split", "epoch"], ignore_index=True)


def loss_data(frame: pd.DataFrame) -> pd.DataFrame:
    """Whole-split cross-entropy after each epoch: median, min, max over repeats per engine, split, epoch."""
    return _per_epoch(frame, "loss")


def accuracy_data(frame: pd.DataFrame) -> pd.DataFrame:
    """Whole-split accuracy (fraction) after each epoch: median, min, max over repeats."""
    return _per_epoch(frame, "accuracy")


def _per_epoch_figure(data: pd.DataFrame, title: str, ylabel: str, log_ok: bool) -> Figure:
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    repeats = int(data["repeats"].max()) if len(data) else 0
    for ax, split in zip(axes, SPLITS):
        for (order, legend), d in data[data.split == split].groupby(["order", "legend"], sort=True):
            x = d.epoch + 1  # a count: after epoch 0 (the first pass over the training split), 1 epoch trained
            ax.fill_between(x, d["min"], d["max"], color=_style(order)["color"], alpha=0.25, linewidth=0)
            ax.plot(x, d["median"], label=legend, marker="o" if len(d) <= 20 else None, markersize=3,
                    **_style(order))
        ax.set_title(f"{split} split")
        ax.set_xlabel("epochs trained")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if log_ok and len(data):
        _log_if_wide(axes[0], pd.concat([data["min"], data["max"]]))
    axes[0].set_ylabel(ylabel)
    _legend_below(fig, axes[0])
    _suptitle(fig, f"{title}\nline: median over {repeats} repeat(s), band: min–max over repeats")
    return fig


def loss_figure(data: pd.DataFrame, about: str = "") -> Figure:
    return _per_epoch_figure(data, _title("Loss per epoch", about), "cross-entropy loss", True)


def accuracy_figure(data: pd.DataFrame, about: str = "") -> Figure:
    return _per_epoch_figure(data, _title("Accuracy per epoch", about), "accuracy (fraction correct)", False)


# -- loss against wall-clock time ------------------------------------------------------------------------

def _against_time(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``metric`` after each epoch against cumulative training seconds (sum of ``epoch_s`` up to and
    including that epoch, evaluation excluded); both the median over repeats per engine, split and epoch."""
    t = frame[frame.metric == "epoch_s"].sort_values(["label", "repeat", "epoch"])
    values = frame[(frame.metric == metric) & frame.split.isin(SPLITS)]
    if t.empty or values.empty:
        return _empty(["label", "legend", "order", "split", "epoch", "seconds", metric, "repeats"])
    t = t.assign(seconds=t.groupby(["label", "repeat"]).value.cumsum())[["label", "repeat", "epoch", "seconds"]]
    both = values.merge(t, on=["label", "repeat", "epoch"])
    data = both.groupby(["label", "split", "epoch"]).agg(
        seconds=("seconds", "median"), **{metric: ("value", "median")}, repeats=("value", "count")).reset_index()
    data["epoch"] = data["epoch"].astype(int)
    return _with_labels(data, frame).sort_values(["order", "split", "epoch"], ignore_index=True)


def loss_time_data(frame: pd.DataFrame) -> pd.DataFrame:
    """Loss after each epoch against cumulative training seconds, the median over repeats."""
    return _against_time(frame, "loss")


def loss_time_figure(data: pd.DataFrame, about: str = "") -> Figure:
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True, sharex=True)
    for ax, split in zip(axes, SPLITS):
        for (order, legend), d in data[data.split == split].groupby(["order", "legend"], sort=True):
            ax.plot(d.seconds, d.loss, label=legend, marker="o" if len(d) <= 20 else None, markersize=3,
                    **_style(order))
        ax.set_title(f"{split} split")
        ax.set_xlabel("training time (seconds, cumulative over epochs)")
        ax.grid(alpha=0.3, which="both")
    if len(data):
        _log_if_wide(axes[0], data.seconds, "x")
        _log_if_wide(axes[0], data.loss)
    axes[0].set_ylabel("cross-entropy loss")
    _legend_below(fig, axes[0])
    _suptitle(fig, _title("Loss against wall-clock training time", about) + "\n"
                 "median over repeats; the first point includes tracing/compilation, evaluation is excluded")
    return fig


# -- accuracy against wall-clock time, and the time to the target accuracy -------------------------------

def accuracy_time_data(frame: pd.DataFrame) -> pd.DataFrame:
    """Accuracy after each epoch against cumulative training seconds (as :func:`loss_time_data`), with
    ``target`` (the target test accuracy, from the frame's ``target_accuracy``; NaN without one) and
    ``at_target``: the test split's point at each engine's target epoch, where every repeat reached it
    (:func:`bridge.results.target.time_to_target`, the summary's own)."""
    data = _against_time(frame, "accuracy")
    target = frame["target_accuracy"].iloc[0] if "target_accuracy" in frame and len(frame) else np.nan
    target = float(target) if target is not None and np.isfinite(target) else np.nan
    epochs = {label: time_to_target(g, target if np.isfinite(target) else None)["target_epoch"]
              for label, g in frame.groupby("label", sort=False)}
    data["target"] = target
    data["at_target"] = [split == "test" and epochs.get(label) is not None and epoch == epochs[label]
                         for label, split, epoch in zip(data.label, data.split, data.epoch)]
    return data


def accuracy_time_figure(data: pd.DataFrame, about: str = "") -> Figure:
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True, sharex=True)
    target = float(data["target"].iloc[0]) if len(data) else np.nan
    for ax, split in zip(axes, SPLITS):
        for (order, legend), d in data[data.split == split].groupby(["order", "legend"], sort=True):
            ax.plot(d.seconds, d.accuracy, label=legend, marker="o" if len(d) <= 20 else None, markersize=3,
                    **_style(order))
            hit = d[d.at_target.astype(bool)]
            ax.plot(hit.seconds, hit.accuracy, linestyle="none", marker="*", markersize=13,
                    markeredgecolor="black", color=_style(order)["color"])
        ax.set_title(f"{split} split")
        ax.set_xlabel("training time (seconds, cumulative over epochs)")
        ax.grid(alpha=0.3, which="both")
    if np.isfinite(target):
        axes[1].axhline(target, color="black", linestyle=":", linewidth=1.2)
        axes[1].annotate(f"target {target:g}", (0, target), xycoords=("axes fraction", "data"), xytext=(4, 3),
                         textcoords="offset points", fontsize="small")
    if len(data):
        _log_if_wide(axes[0], data.seconds, "x")
    axes[0].set_ylabel("accuracy (fraction correct)")
    _legend_below(fig, axes[0])
    mark = (f"dotted: the target test accuracy {target:g}; star: the time to it (the first epoch that reaches it)"
            if np.isfinite(target) else "no target accuracy")
    _suptitle(fig, _title("Accuracy against wall-clock training time", about) + "\n"
                 f"median over repeats; the first point includes tracing/compilation; {mark}")
    return fig


# -- timing: first epoch and steady state ----------------------------------------------------------------

def timing_data(frame: pd.DataFrame) -> pd.DataFrame:
    """Per engine: seconds of the first epoch (compilation/JIT included) and of the steady state (each
    repeat's median of the epochs after the first), as the summary table gives them: the median over
    repeats with its 95% interval (``low``, ``high``; NaN with one repeat, ``reason`` says why), and the
    min and max over repeats."""
    columns = ["label", "legend", "order", "phase", "median", "low", "high", "min", "max", "repeats", "reason"]
    t = frame[frame.metric == "epoch_s"]
    rows = []
    for label, d in t.groupby("label", sort=False):
        for phase, part in (("first epoch", d[d.epoch == 0]), ("steady epoch", d[d.epoch > 0])):
            groups = [g.value.to_numpy() for _, g in part.groupby("repeat")]
            if not groups:
                continue
            per_repeat = [float(np.median(g)) for g in groups]
            iv = median_interval(groups)
            rows.append({"label": label, "phase": phase, "median": iv.point, "low": iv.low, "high": iv.high,
                         "min": min(per_repeat), "max": max(per_repeat), "repeats": len(groups),
                         "reason": iv.reason})
    if not rows:
        return _empty(columns)
    return _with_labels(pd.DataFrame(rows), frame)[columns].sort_values(["order", "phase"], ignore_index=True)


def timing_figure(data: pd.DataFrame, about: str = "") -> Figure:
    legends = list(dict.fromkeys(data.sort_values("order").legend))
    fig = Figure(figsize=(11, 1.6 + 0.9 * len(legends)), layout="constrained")
    ax = fig.subplots()
    height = 0.38
    styles = {"first epoch": ("#d62728", "time to first epoch (tracing/compilation included)"),
              "steady epoch": ("#1f77b4", "steady-state epoch (median of epochs after the first)")}
    for k, (phase, (colour, name)) in enumerate(styles.items()):
        d = data[data.phase == phase].set_index("legend").reindex(legends)
        y = np.arange(len(legends)) + (k - 0.5) * height
        # whiskers: the 95% interval; none where one repeat gives no interval
        err = np.nan_to_num(np.vstack([d["median"] - d["low"], d["high"] - d["median"]]), nan=0.0)
        ax.barh(y, d["median"], height, xerr=err, color=colour, alpha=0.85, label=name, capsize=3,
                error_kw={"elinewidth": 1})
        ends = d["high"].where(d["high"].notna(), d["median"])
        for yi, v, end in zip(y, d["median"], ends):
            if np.isfinite(v):  # the value past the whisker, where it covers nothing
                ax.annotate(format_seconds(v), (end, yi), xytext=(5, 0), textcoords="offset points", va="center",
                            fontsize="small")
    ax.set_yticks(np.arange(len(legends)), legends)
    ax.set_ylim(len(legends) - 0.5, -0.5)  # first engine on top, as in the summary table
    _log_if_wide(ax, pd.concat([data["median"], data["low"], data["high"]]).dropna(), "x")
    ax.set_xlabel("seconds per epoch" + (" (log scale)" if ax.get_xscale() == "log" else ""))
    ax.grid(alpha=0.3, axis="x", which="both")
    ax.margins(x=0.12)  # room for the value labels
    _legend_below(fig, ax)
    repeats = int(data["repeats"].max()) if len(data) else 0
    whiskers = ("whiskers: 95% interval (hierarchical bootstrap over repeats and their steady epochs)"
                if data["low"].notna().any() else "no interval: one repeat; run --repeats 3 or more")
    _suptitle(fig, _title("Time per epoch", about) + f"\nbar: median over {repeats} repeat(s), {whiskers}")
    return fig


# -- memory: the worker's process tree ----------------------------------------------------------------

MEMORY_PHASES = {"rss_baseline_bytes": "baseline (Python, NumPy, bridge, the plan)",
                 "rss_import_bytes": "after the framework's import", "rss_build_bytes": "after the model's build",
                 "rss_peak_bytes": "training peak (sampled)"}


def memory_data(frame: pd.DataFrame) -> pd.DataFrame:
    """Per engine and phase (:data:`MEMORY_PHASES`: the whole-run rows of split ``memory``), the resident
    bytes of the worker's process tree: median, min and max over repeats."""
    columns = ["label", "legend", "order", "phase", "metric", "median", "min", "max", "repeats"]
    m = frame[(frame.split == "memory") & frame.epoch.isna() & frame.metric.isin(list(MEMORY_PHASES))]
    if m.empty:
        return _empty(columns)
    data = _spread(m.groupby(["label", "metric"]).value)
    data["phase"] = data.metric.map(MEMORY_PHASES)
    data["rank"] = data.metric.map(list(MEMORY_PHASES).index)
    return _with_labels(data, frame).sort_values(["order", "rank"], ignore_index=True)[columns]


def memory_figure(data: pd.DataFrame, about: str = "") -> Figure:
    legends = list(dict.fromkeys(data.sort_values("order").legend))
    fig = Figure(figsize=(11, 1.8 + 1.1 * len(legends)), layout="constrained")
    ax = fig.subplots()
    height = 0.8 / len(MEMORY_PHASES)
    colours = ("#7f7f7f", "#2ca02c", "#1f77b4", "#d62728")
    for k, (metric, name) in enumerate(MEMORY_PHASES.items()):
        d = data[data.metric == metric].set_index("legend").reindex(legends)
        y = np.arange(len(legends)) + (k - (len(MEMORY_PHASES) - 1) / 2) * height
        err = np.nan_to_num(np.vstack([d["median"] - d["min"], d["max"] - d["median"]]), nan=0.0)
        ax.barh(y, d["median"] / 2 ** 20, height, xerr=err / 2 ** 20, color=colours[k], label=name, capsize=2,
                error_kw={"elinewidth": 1})
        for yi, v in zip(y, d["median"]):
            if np.isfinite(v):
                ax.annotate(format_bytes(v), (v / 2 ** 20, yi), xytext=(4, 0), textcoords="offset points",
                            va="center", fontsize="x-small")
    ax.set_yticks(np.arange(len(legends)), legends)
    ax.set_ylim(len(legends) - 0.5, -0.5)  # first engine on top, as in the summary table
    ax.set_xlabel("resident memory of the worker's process tree (MiB)")
    ax.grid(alpha=0.3, axis="x")
    ax.margins(x=0.15)  # room for the value labels
    _legend_below(fig, ax)
    repeats = int(data["repeats"].max()) if len(data) else 0
    _suptitle(fig, _title("Memory per engine", about) + f"\nbar: median over {repeats} repeat(s), whiskers: "
                   "min–max; the framework's share is what lies above the baseline")
    return fig


# -- parity against the reference ------------------------------------------------------------------------

def parity_data(frame: pd.DataFrame) -> pd.DataFrame:
    """Per step, every engine's batch loss against the reference variant that models its framework
    (``compared_with``; the exact variant when the frame does not say, or when that variant did not run):
    ``rel_diff = |loss − ref| / |ref|`` for each repeat (the reference is deterministic; its value is the
    median over its repeats). The reference's NNlib variant appears against its exact one. Empty when
    there is no reference or nothing to compare with it."""
    columns = ["label", "legend", "order", "repeat", "epoch", "step", "loss", "reference_label", "reference",
               "rel_diff", "window", "tolerance"]
    s = frame[frame.metric == "step_loss"]
    refs = {lab: g.groupby("step").value.median() for lab, g in s[s.engine == REFERENCE].groupby("label")}
    exact = f"{REFERENCE}/{EXACT_VARIANT}"
    fallback = exact if exact in refs else next(iter(refs), None)
    pieces = []
    for label, g in s.groupby("label", sort=False):
        wanted = g["compared_with"].iloc[0] if "compared_with" in g else ""
        if label == exact or (g.engine.iloc[0] == REFERENCE and not wanted):
            continue
        ref_label = wanted if wanted in refs else fallback
        if ref_label is None or ref_label == label:
            continue
        piece = g[["label", "repeat", "epoch", "step", "value"]].rename(columns={"value": "loss"}).merge(
            refs[ref_label].rename("reference"), left_on="step", right_index=True)
        pieces.append(piece.assign(reference_label=ref_label))
    if not pieces:
        return _empty(columns)
    data = pd.concat(pieces, ignore_index=True)
    data["rel_diff"] = rel_diff(data["loss"], data["reference"])
    data[["epoch", "step"]] = data[["epoch", "step"]].astype(int)
    # what the table's parity judges: the window of first steps and the tolerance, drawn on the figure
    data["window"] = PARITY_STEPS.get(frame["model"].iloc[0], 0) if "model" in frame else 0
    data["tolerance"] = TOLERANCE.get(frame["optimizer"].iloc[0], np.nan) if "optimizer" in frame else np.nan
    return _with_labels(data, frame).sort_values(["order", "repeat", "step"], ignore_index=True)[columns]


def parity_figure(data: pd.DataFrame, about: str = "") -> Figure:
    fig = Figure(figsize=(11, 5.2), layout="constrained")
    ax = fig.subplots()
    for (order, legend, ref), d in data.groupby(["order", "legend", "reference_label"], sort=True):
        per_step = d.groupby("step").rel_diff.agg(["median", "min", "max"]).clip(lower=EXACT_FLOOR)
        ax.fill_between(per_step.index, per_step["min"], per_step["max"], color=_style(order)["color"], alpha=0.25,
                        linewidth=0)
        thin = {**_style(order), "linewidth": max(1.6 - 0.4 * order, 0.6)}  # 1000s of noisy steps
        ax.plot(per_step.index, per_step["median"], label=f"{legend} vs {ref}", **thin)
    eps = np.finfo(np.float32).eps
    ax.axhline(eps, color="black", linestyle=(0, (1, 3)), linewidth=1, label=f"float32 machine epsilon ({eps:.2g})")
    window, tolerance = int(data["window"].iloc[0]), float(data["tolerance"].iloc[0])
    if window:
        ax.axvspan(-0.5, window - 0.5, color="0.5", alpha=0.12, linewidth=0,
                   label=f"parity window: the first {window} steps, which the table judges")
    if np.isfinite(tolerance):
        ax.axhline(tolerance, color="#d62728", linestyle="--", linewidth=1, label=f"parity tolerance ({tolerance:g})")
    ax.set_yscale("log")
    ax.set_xlabel("training step (batch)")
    ax.set_ylabel("|loss − reference| / |reference|")
    ax.grid(alpha=0.3, which="both")
    _legend_below(fig, ax)
    _suptitle(fig, _title("Per-step loss against the NumPy float64 reference", about) + "\n"
                 "each engine against the variant that models its framework's max-pool gradient\n"
                 f"line: median over repeats, band: min–max; exact agreement drawn at {EXACT_FLOOR:g}")
    return fig


# name → (data function, figure function, caption for the report)
FIGURES = {
    "loss": (loss_data, loss_figure, "Training and test loss after every epoch, on the whole split."),
    "accuracy": (accuracy_data, accuracy_figure, "Training and test accuracy after every epoch."),
    "loss_time": (loss_time_data, loss_time_figure,
                  "Loss against cumulative training seconds: what a user waits for a given loss."),
    "accuracy_time": (accuracy_time_data, accuracy_time_figure,
                      "Accuracy against cumulative training seconds, the target test accuracy (dotted) and each "
                      "engine's time to it (star): what a user waits until the model is good enough."),
    "timing": (timing_data, timing_figure,
               "Time to the first epoch (tracing, compilation, JIT) and steady-state time per epoch."),
    "memory": (memory_data, memory_figure,
               "Resident memory of each engine's worker and every process it started: before the engine (Python, "
               "NumPy, bridge, the plan opened), after the framework's import, after the model's build, and the "
               "peak while training (sampled; it holds one gathered epoch, the worker's own share). "
               "summary.json and results.csv also hold the worker's VmHWM, the kernel's own peak."),
    "parity": (parity_data, parity_figure,
               "Relative difference of each engine's per-step batch loss from the NumPy float64 reference: the "
               "variant that models its framework (for a CNN, Flux and Knet on the CPU against the variant with "
               "NNlib's max-pool gradient, and that variant against the exact one)."),
}


def write(folder: Path, dpi: int = 120) -> dict[str, Path]:
    """Write ``figures/<name>.png`` and ``.svg`` for every figure with data; returns name → PNG path."""
    folder = Path(folder)
    frame = read_frame(folder)
    (target := folder / "figures").mkdir(exist_ok=True)
    written: dict[str, Path] = {}
    with matplotlib.rc_context({"svg.hashsalt": "bridge", "font.size": 10}):  # stable SVG ids
        for name, (data_fn, figure_fn, _) in FIGURES.items():
            data = data_fn(frame)
            if data.empty:  # and no stale file from an earlier run of this folder either
                for ext in ("png", "svg"):
                    (target / f"{name}.{ext}").unlink(missing_ok=True)
                continue
            fig = figure_fn(data, about(frame))
            fig.savefig(target / f"{name}.png", dpi=dpi)
            fig.savefig(target / f"{name}.svg", metadata={"Date": None})
            written[name] = target / f"{name}.png"
    return written
