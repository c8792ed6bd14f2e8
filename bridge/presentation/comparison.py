"""Comparing two results folders, engine by engine: B against A, with the interval of each speed ratio
and a verdict, every environment field that differs, and a page with a figure of the ratios.

Two folders of different experiments are not compared (their times measure different work) unless asked:
:func:`spec_differences` names the fields. The times of one engine run in the two folders are compared as
the ratio of their steady epochs, B over A, with the interval of a hierarchical bootstrap of both
(:func:`bridge.results.intervals.ratio_interval`) and the verdict of :func:`bridge.results.timing.verdict`,
which names a side whose run was disturbed or unstable.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..results.intervals import ratio_interval
from ..results.summary import format_number, format_ratio, format_seconds
from ..results.timing import NOISE, caveats, qualified, steady_groups
from . import html

# Per-engine report fields whose difference between two folders makes their times incomparable.
ENGINE_FIELDS = ("framework", "framework_version", "threads", "device", "blas", "reduced_precision")
# fingerprint values measured (or taken from the machine's peak cache) with their dates: they differ between
# two runs on one machine without making their times incomparable
MEASURED = ("cpu_gemm_peak_gflops", "cpu_gemm_peak", "device_gemm_peak")
# spec fields that do not define the experiment (none enters the spec hash)
NOT_THE_EXPERIMENT = ("engines", "repeats", "timeout", "target_accuracy")
COLUMNS = ["engine", "steady_a_s", "steady_b_s", "steady_ratio", "ratio_low", "ratio_high", "verdict",
           "test_accuracy_a", "test_accuracy_b", "test_accuracy_diff"]


def spec_differences(a: dict, b: dict) -> list[str]:
    """``field: A → B`` for every spec field that defines the experiment and differs between two folders."""
    sa, sb = a.get("spec", {}), b.get("spec", {})
    return [f"{k}: {sa.get(k)} → {sb.get(k)}" for k in dict.fromkeys([*sa, *sb])
            if k not in NOT_THE_EXPERIMENT and sa.get(k) != sb.get(k)]


def compare(a: dict, b: dict, frame_a: pd.DataFrame | None = None, frame_b: pd.DataFrame | None = None
            ) -> pd.DataFrame:
    """Engine by engine (those in both): steady-state epoch time of each, the ratio B/A with its 95%
    interval (from the folders' results.csv, ``frame_a`` and ``frame_b``) and verdict, and the final test
    accuracy of each and the difference B−A."""
    sa = {r["engine"]: r for r in a.get("summary", [])}
    sb = {r["engine"]: r for r in b.get("summary", [])}
    rows = []
    for label in [k for k in sa if k in sb]:
        ta, tb = sa[label].get("steady_epoch_s"), sb[label].get("steady_epoch_s")
        acc_a, acc_b = sa[label].get("test_accuracy"), sb[label].get("test_accuracy")
        row = {"engine": label, "steady_a_s": ta, "steady_b_s": tb,
               "steady_ratio": tb / ta if ta and tb is not None else math.nan, "ratio_low": math.nan,
               "ratio_high": math.nan, "verdict": "",
               "test_accuracy_a": acc_a, "test_accuracy_b": acc_b,
               "test_accuracy_diff": acc_b - acc_a if None not in (acc_a, acc_b) else math.nan}
        if frame_a is not None and frame_b is not None:
            iv = ratio_interval(steady_groups(frame_b, *label.split("/", 1)), steady_groups(frame_a, *label.split("/", 1)))
            notes = [f"{side} {c}" for side, r in (("A", sa[label]), ("B", sb[label])) for c in caveats(r)]
            row.update(steady_ratio=iv.point, ratio_low=iv.low, ratio_high=iv.high, verdict=qualified(iv, notes))
        rows.append(row)
    floats = [c for c in COLUMNS if c not in ("engine", "verdict")]
    return pd.DataFrame(rows, columns=COLUMNS).astype({c: float for c in floats})


def slower_than(table: pd.DataFrame, factor: float) -> list[str]:
    """The engines whose B/A ratio is above ``factor`` beyond doubt: its whole 95% interval is."""
    return [r.engine for r in table.itertuples() if not math.isnan(r.ratio_low) and r.ratio_low > factor]


def _engine_fields(doc: dict) -> dict[str, dict]:
    """engine/mode → its first reported environment (framework version, threads, device, BLAS)."""
    fields: dict[str, dict] = {}
    for r in doc.get("engines", []):
        if r.get("report"):
            fields.setdefault(f"{r.get('engine')}/{r.get('mode')}", r["report"])
    return fields


def fingerprint_differences(a: dict, b: dict) -> list[str]:
    """``field: A value vs B value`` for every fingerprint field and per-engine environment field that
    differs between two results folders (engines in both only)."""
    fa, fb = a.get("fingerprint", {}), b.get("fingerprint", {})
    diffs = [f"{k}: {fa.get(k)!r} vs {fb.get(k)!r}" for k in dict.fromkeys([*fa, *fb])
             if fa.get(k) != fb.get(k) and k not in MEASURED]
    ea, eb = _engine_fields(a), _engine_fields(b)
    for label in [k for k in ea if k in eb]:
        for k in ENGINE_FIELDS:
            if str(ea[label].get(k)) != str(eb[label].get(k)):
                diffs.append(f"{label} {k}: {ea[label].get(k)!r} vs {eb[label].get(k)!r}")
    return diffs


def _shown(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "engine": table.engine,
        "steady A": table.steady_a_s.map(format_seconds), "steady B": table.steady_b_s.map(format_seconds),
        "B/A (95%)": [format_ratio(r.steady_ratio, r.ratio_low, r.ratio_high) for r in table.itertuples()],
        "verdict": table.verdict,
        "test acc A": table.test_accuracy_a.map(format_number), "test acc B": table.test_accuracy_b.map(format_number),
        "B-A": table.test_accuracy_diff.map(lambda v: "-" if math.isnan(v) else f"{v:+.4f}")})


def format_comparison(table: pd.DataFrame, a: Path, b: Path) -> str:
    if table.empty:
        return f"no engine is in both {a} and {b}"
    return (f"B = {b} against A = {a}, engine by engine (B/A of the steady epoch; within {NOISE - 1:.0%} is "
            f"noise):\n" + _shown(table).to_string(index=False))


def ratio_figure(table: pd.DataFrame) -> Figure:
    """Each engine's B/A steady-epoch ratio with its 95% interval, on a log axis around 1."""
    fig = Figure(figsize=(8, 0.5 * len(table) + 1.6), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(table))[::-1]
    ratio = table.steady_ratio.to_numpy()
    low = np.where(np.isnan(table.ratio_low), ratio, table.ratio_low)
    high = np.where(np.isnan(table.ratio_high), ratio, table.ratio_high)
    ax.errorbar(ratio, y, xerr=[ratio - low, high - ratio], fmt="o", color="black", capsize=4)
    ax.axvline(1.0, color="grey", linewidth=1)
    ax.axvspan(1 / NOISE, NOISE, color="grey", alpha=0.15, linewidth=0, label=f"within {NOISE - 1:.0%}: noise")
    ax.set_xscale("log")
    ax.set_yticks(y, table.engine)
    ax.set_xlabel("steady epoch, B / A (above 1: B slower)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def page(table: pd.DataFrame, a: Path, b: Path, spec_diffs: list[str], env_diffs: list[str]) -> str:
    """The comparison page: the table, the figure of the ratios, and what differs between the folders."""
    buffer = io.BytesIO()
    if not table.empty:
        ratio_figure(table).savefig(buffer, format="png", dpi=110)
    shown = _shown(table)
    parts = [html.warnings([f"different experiments: {d}" for d in spec_diffs] + [f"environments differ: {d}"
                                                                                   for d in env_diffs],
                           "What differs", "Same experiment, same environment."),
             html.table(list(shown.columns), shown.values.tolist(), "summary")]
    if buffer.getvalue():
        parts.append(html.figure("ratios", buffer.getvalue(), "B/A of each engine's steady epoch with its 95% "
                                 "interval; the grey band is noise.", "this page only"))
    subtitle = (f"B = <code>{html.escape(str(b))}</code> against A = <code>{html.escape(str(a))}</code>; a ratio "
                f"is slower or faster only when its whole 95% interval is outside {NOISE:g}× either way")
    return html.page("bridge comparison", subtitle, parts)
