"""The figures and the self-contained HTML report of a sweep folder (``python -m bridge.report DIR`` redraws
them).

Reads sweep.csv and sweep.json through :func:`bridge.sweep.results.read_table` only. The x axis of every figure
is the grid's first axis — the batch size as it is, a model size (``hidden``, ``filters``, ``dense``) as
the model's parameter count — and every other axis splits the figures into panels. Curves per engine
run: the median over repeats, with a band from the smallest to the largest repeat.

Figures (``DIR/figures/<name>.png``): ``throughput`` (training examples/s, log–log: the main one),
``gflops`` (achieved training GFLOP/s), ``peak`` (fraction of the measured float32 peak), ``steady``
(steady epoch seconds), ``first_epoch`` (first epoch seconds: tracing, compilation) and ``memory`` (peak
resident memory while training). The report adds
a table of where the engines' throughput curves cross, and one row per point and engine run.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..files import atomic_write
from ..presentation import html
from ..results.summary import format_bytes, format_fraction, format_rate, format_seconds
from .results import read_table

SIZE_AXES = ("hidden", "filters", "dense")
# The run table fits the page: numbers never wrap (nor the point's hash, axes, engine, status); only the
# worker and the error wrap, anywhere in a long address or path; the warnings' long paths wrap too.
CSS = """
table.runs { font-size: .8em; width: 100%; }
table.runs th, table.runs td { padding: .25em .4em; }
table.runs td { white-space: nowrap; text-align: right; font-variant-numeric: tabular-nums; }
table.runs td:nth-child(-n+{engine}), table.runs td:nth-child({status}) { text-align: left; }
table.runs td:nth-last-child(-n+2) { white-space: normal; overflow-wrap: anywhere; text-align: left; min-width: 6em; }
table.runs td:last-child { min-width: 10em; }
.warnings li { overflow-wrap: anywhere; }
"""
FIGURES = {  # name -> (column, y label, log y, caption)
    "throughput": ("examples_per_s", "training examples / s", True,
                   "Steady-state training throughput of each engine run (median over repeats; band: its 95% "
                   "interval with two repeats or more, else min–max)."),
    "gflops": ("gflops", "achieved training GFLOP/s", True,
               "Achieved training GFLOP/s (2 FLOPs per multiply-add, a step counted as 3× the forward pass)."),
    "peak": ("peak_fraction", "fraction of the measured float32 peak", True,
             "Achieved GFLOP/s as a fraction of the machine's float32 peak measured with a GEMM at each point."),
    "steady": ("steady_epoch_s", "steady epoch (s)", True,
               "Steady-state epoch time (median of the epochs after the first)."),
    "first_epoch": ("first_epoch_s", "first epoch (s)", True,
                    "First epoch time: tracing, compilation and the first pass over the data."),
    "memory": ("rss_peak_bytes", "peak memory", False,
               "Peak resident memory of each engine run's worker process tree while it trained."),
}


def x_of(frame: pd.DataFrame, axis: str) -> tuple[pd.Series, str, bool]:
    """The x values of the rows for the grid's first ``axis``: (values, label, numeric)."""
    if axis in SIZE_AXES:
        return frame["parameters"].astype(float), f"parameters (varying {axis})", True
    values = pd.to_numeric(frame[axis], errors="coerce")
    if values.notna().all():
        return values.astype(float), axis.replace("_", " "), True
    order = list(dict.fromkeys(frame[axis]))
    return frame[axis].map(order.index).astype(float), axis.replace("_", " "), False


def curves(frame: pd.DataFrame, definition: dict) -> pd.DataFrame:
    """Median, min and max over repeats of every figure's column, per panel, engine run and x; for the
    throughput the band is the point's 95% interval where one is known."""
    axes = list(definition.get("axes", {}))
    ok = frame[(frame.status == "ok") & (frame.engine != "")].copy()
    if ok.empty:
        return pd.DataFrame()
    ok["x"], _, _ = x_of(ok, axes[0])
    ok["panel"] = ""
    if len(axes) > 1:  # one panel per combination of the other axes, in the grid's order
        ok["panel"] = [" ".join(f"{a}={v}" for a, v in zip(axes[1:], row))
                       for row in ok[axes[1:]].itertuples(index=False)]
    order = {p["point"]: i for i, p in enumerate(definition.get("points", []))}
    ok["order"] = ok.point.map(order)
    columns = [c for c, *_ in FIGURES.values()]
    g = ok.groupby(["panel", "engine", "x"], sort=False)[columns]
    out = g.median().add_suffix("_med").join(g.min().add_suffix("_min")).join(g.max().add_suffix("_max"))
    if {"examples_per_s_low", "examples_per_s_high"} <= set(ok.columns):  # the 95% interval where it is known
        ci = ok.groupby(["panel", "engine", "x"], sort=False)[["examples_per_s_low", "examples_per_s_high"]].median()
        known = ci.notna().all(axis=1)
        out.loc[known, "examples_per_s_min"] = ci.loc[known, "examples_per_s_low"]
        out.loc[known, "examples_per_s_max"] = ci.loc[known, "examples_per_s_high"]
    first = ok.groupby(["panel", "engine", "x"], sort=False).agg(x_label=(axes[0], "first"), order=("order", "min"))
    return out.join(first).reset_index().sort_values(["order", "x"]).reset_index(drop=True)


def figure(data: pd.DataFrame, definition: dict, name: str) -> Figure | None:
    column, ylabel, logy, _ = FIGURES[name]
    if data.empty or data[f"{column}_med"].notna().sum() == 0:
        return None
    axes = list(definition.get("axes", {}))
    panels = list(dict.fromkeys(data.panel))
    fig = Figure(figsize=(5.2 * len(panels) + 1.5, 4.2))
    subplots = fig.subplots(1, len(panels), squeeze=False, sharey=True)
    engines = list(dict.fromkeys(data.engine))
    colors = {e: matplotlib.colormaps["tab10"](i % 10) for i, e in enumerate(engines)}
    _, xlabel, numeric = x_of(pd.DataFrame({axes[0]: ["1"], "parameters": [1]}), axes[0])
    for ax, panel in zip(subplots[0], panels):
        p = data[data.panel == panel]
        for engine in engines:
            d = p[p.engine == engine].sort_values("x")
            if d.empty:
                continue
            ax.plot(d.x, d[f"{column}_med"], marker="o", color=colors[engine], label=engine)
            ax.fill_between(d.x, d[f"{column}_min"], d[f"{column}_max"], color=colors[engine], alpha=0.18, lw=0)
        if numeric:
            ax.set_xscale("log", base=2 if axes[0] == "batch_size" else 10)
            if axes[0] == "batch_size":  # the batch sizes themselves as ticks
                ticks = sorted(set(p.x))
                ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
                ax.minorticks_off()
        else:
            labels = p.drop_duplicates("x").sort_values("x")
            ax.set_xticks(labels.x, labels.x_label)
        if logy:
            ax.set_yscale("log")
        if column.endswith("_bytes"):
            ax.yaxis.set_major_formatter(lambda v, _: format_bytes(v))
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
        if panel:
            ax.set_title(panel, fontsize=10)
    subplots[0][0].set_ylabel(ylabel)
    handles, labels = subplots[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    spec = definition.get("spec", {})
    about = " ".join(str(spec.get(k)) for k in ("dataset", "model") if spec.get(k))
    fig.suptitle(f"{ylabel} against {xlabel}" + (f" — {about}" if about else ""), fontsize=11)
    fig.tight_layout()
    return fig


def crossings(data: pd.DataFrame) -> list[list[str]]:
    """Per panel and pair of engine runs: which is faster (examples/s, medians) at the smallest and the
    largest x, and between which x values the order changes."""
    rows = []
    if data.empty:
        return rows
    for panel, p in data.groupby("panel", sort=False):
        wide = p.pivot(index="x", columns="engine", values="examples_per_s_med").sort_index()
        names = p.drop_duplicates("x").set_index("x").x_label
        for a, b in itertools.combinations(wide.columns, 2):
            both = wide[[a, b]].dropna()
            if len(both) < 2:
                continue
            sign = np.sign(both[a] - both[b])
            where = [f"{names[x0]} – {names[x1]}" for (x0, s0), (x1, s1) in zip(sign.items(), list(sign.items())[1:])
                     if s0 != s1 and s0 != 0 and s1 != 0]
            first, last = both.iloc[0], both.iloc[-1]
            rows.append([panel or "all", f"{a} vs {b}",
                         f"{a if first[a] > first[b] else b} ({_ratio(first[a], first[b])})",
                         f"{a if last[a] > last[b] else b} ({_ratio(last[a], last[b])})",
                         ", ".join(where) if where else "no crossing"])
    return rows


def _ratio(u: float, v: float) -> str:
    return f"{max(u, v) / min(u, v):.2f}×" if min(u, v) > 0 else "-"


def render(frame: pd.DataFrame, definition: dict, images: dict[str, bytes], data: pd.DataFrame) -> str:
    e = html.escape
    axes = definition.get("axes", {})
    spec = definition.get("spec", {})
    heading = " · ".join(str(spec.get(k)) for k in ("dataset", "model", "optimizer") if spec.get(k)) or "sweep"
    subtitle = (f"{len(definition.get('points', []))} points: "
                + e(" × ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in axes.items()))
                + f"; engines {e(', '.join(definition.get('engines', [])) or 'all available')}, "
                  f"{e(str(definition.get('repeats', 1)))} repeat(s) per point, run on "
                  f"{e(str(definition.get('scheduler')))}.")
    bad = frame[frame.status != "ok"]
    parts = [html.warnings([f"point {r['point']} {r['engine'] or '(the point)'}: {r['status']} — {r['error']}"
                            for r in bad.to_dict("records")],
                           "Not every run finished", "Every point and engine run finished.")]
    failing = frame[frame.parity_pass.astype(str) == "False"]
    if len(failing):
        parts.append("<div class='warnings' id='parity'>Engine runs that fail parity (their speed is not comparable): "
                     + e(", ".join(sorted(set(failing.engine)))) + "</div>")
    if "disturbed" in frame:
        disturbed = frame[frame.disturbed.astype(str) == "True"]
        if len(disturbed):
            parts.append("<div class='warnings' id='disturbed'>Engine runs other processes disturbed (their speed is "
                         "not comparable): " + e(", ".join(f"point {r['point']} {r['engine']} repeat {r['repeat']}"
                                                          for r in disturbed.to_dict("records"))) + "</div>")
    parts += _figure("throughput", images)
    parts += ["<h2 id='crossings'>Where the engines cross</h2>",
              "<p>Per pair of engine runs, from the median training throughput: which is faster at the smallest and "
              "at the largest point, and between which points the order changes.</p>",
              html.table(["panel", "pair", "faster at the smallest", "faster at the largest", "crosses between"],
                         crossings(data), "crossings")]
    parts.append("<h2 id='figures'>More figures</h2>")
    for name in FIGURES:
        if name != "throughput":
            parts += _figure(name, images)
    rows = [[r["point"], *[r[a] for a in axes], r["engine"], _count(r["repeat"]), r["status"],
             "-" if pd.isna(r["parity_max_rel_diff"]) else f"{r['parity_max_rel_diff']:.1e}",
             format_seconds(r["first_epoch_s"]), format_seconds(r["steady_epoch_s"]),
             format_rate(r["examples_per_s"]), format_rate(r["gflops"], 1), format_fraction(r["peak_fraction"]),
             "-" if pd.isna(r["test_accuracy"]) else f"{r['test_accuracy']:.4f}", _count(r["attempts"]),
             worker_name(r["worker"]), r["error"]]
            for r in frame.to_dict("records")]
    parts += ["<h2 id='runs'>Every point and engine run</h2>",
              "<p>Each point's own results (results.csv, summary.json, spec.toml) are in "
              "<code>points/&lt;point&gt;/</code>.</p>",
              html.table(["point", *(a.replace("_", " ") for a in axes), "engine", "repeat", "status", "parity",
                          "first epoch", "steady epoch", "examples/s", "GFLOP/s", "of peak", "test accuracy",
                          "attempts", "worker", "error"], rows, "runs")]
    left = CSS.replace("{engine}", str(len(axes) + 2)).replace("{status}", str(len(axes) + 4))
    parts.insert(0, f"<style>{left}</style>")
    return html.page(f"bridge sweep — {heading}", subtitle, parts)


def worker_name(address: str) -> str:
    """A worker as the run table shows it: its address without the ``tcp://`` every Dask address has."""
    return address.removeprefix("tcp://")


def _count(v) -> str:
    """A repeat (from 0) or a number of attempts as a whole number; ``-`` where there is none."""
    return "-" if pd.isna(v) or v == "" else str(int(float(v)))


def _figure(name: str, images: dict[str, bytes]) -> list[str]:
    if name not in images:
        return []
    return [html.figure(name, images[name], FIGURES[name][3], f"<code>figures/{name}.png</code>")]


def build(folder: Path, dpi: int = 110) -> Path:
    """Draw ``folder/figures/*.png`` and write ``folder/report.html``; returns the report's path."""
    folder = Path(folder)
    frame, definition = read_table(folder)
    data = curves(frame, definition)
    (folder / "figures").mkdir(exist_ok=True)
    images = {}
    for name in FIGURES:
        fig = figure(data, definition, name)
        if fig is None:
            continue
        path = folder / "figures" / f"{name}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        images[name] = path.read_bytes()
    return atomic_write(folder / "report.html", render(frame, definition, images, data))
