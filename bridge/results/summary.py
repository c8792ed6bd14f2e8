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
from .target import time_to_target
from .timing import NOISE, timing


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
              work: dict | None = None, target: float | None = None) -> pd.DataFrame:
    """Per engine and mode, over repeats: medians of time to first epoch and of the steady-state epoch
    time (median of epochs after the first), with their intervals and what the machine was doing
    (:func:`bridge.results.timing.timing`), and the final train/test loss and accuracy.

    A ``mismatch`` repeat trained on batches other than the plan's, so its numbers compare nothing: it
    keeps its row and status here (and its values in results.csv, to look into), but its times, losses
    and accuracies are left out of the medians; an engine whose every repeat mismatched shows none. A
    ``diverged`` repeat counts: its non-finite values are the result. ``parity_`` (label -> entry of
    :func:`bridge.results.parity.engine_parity`) gives each row its parity role, largest difference and verdict;
    ``target`` (a test accuracy) its time to target (:func:`bridge.results.target.time_to_target`).

    Every value is data (counts, seconds, booleans, one of a few words); how a table shows it is the
    formatters' below, at display only."""
    records = []
    labels = list(dict.fromkeys(o.run.label for o in outcomes))
    for label in labels:
        mine = [o for o in outcomes if o.run.label == label]
        engine, mode = label.split("/", 1)
        compared = [o.repeat for o in mine if o.status != "mismatch"]
        f = frame[(frame.engine == engine) & (frame["mode"] == mode) & frame.repeat.isin(compared)]
        times = timing(f, [o for o in mine if o.repeat in compared], (work or {}).get("examples"))
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
            "runs_ok": sum(o.ok for o in mine),
            "runs_total": len(mine),
            "parity_role": parity.role((parity_ or {}).get(label)),
            "parity_max_rel_diff": (parity_ or {}).get(label, {}).get("max_rel_diff", np.nan),
            "parity_pass": (parity_ or {}).get(label, {}).get("pass"),
            "first_epoch_s": times["first_epoch_s"],
            "first_epoch_compile_s": float(epoch_times(f).first_epoch_compile_s.median()) if len(f) else np.nan,
            "steady_epoch_s": times["steady_epoch_s"],
            **throughput(times["steady_epoch_s"], times["first_epoch_s"], work),
            "train_loss": final("train", "loss"),
            "test_loss": final("test", "loss"),
            "test_accuracy": final("test", "accuracy"),
            **{k: v for k, v in times.items() if k not in ("first_epoch_s", "steady_epoch_s")},
            **memory_measures(f),
            **time_to_target(f, target, compared),
        })
    summary = pd.DataFrame(records)
    if "target_epoch" in summary:  # an epoch, or null where not reached: never 3.0
        summary["target_epoch"] = summary["target_epoch"].astype("Int64")
    return summary


def memory_measures(frame: pd.DataFrame) -> dict:
    """Each whole-run memory measure of one engine's rows (split ``memory``, no epoch: ``rss_peak_bytes``,
    ``rss_baseline_bytes``, ... in bytes), the median over its repeats; ``rss_peak_bytes`` NaN where none
    was measured."""
    m = frame[(frame.split == "memory") & frame.epoch.isna()] if len(frame) else frame
    return {"rss_peak_bytes": np.nan, **(m.groupby("metric").value.median().to_dict() if len(m) else {})}


def epoch_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Per run (engine, mode, repeat): ``first_epoch_s``, the first epoch's seconds (tracing, compilation
    and JIT included), ``steady_epoch_s``, the median of the epochs after the first: the one definition
    of the steady state, for the summary and the figures; and ``first_epoch_compile_s``, the part of the
    first epoch the framework itself says it spent compiling (the Julia engines' ``compile_s``; NaN where
    a framework does not say)."""
    t = frame[frame.metric == "epoch_s"]
    keys = ["engine", "mode", "repeat"]
    first = t[t.epoch == 0].groupby(keys).value.first().rename("first_epoch_s")
    steady = t[t.epoch > 0].groupby(keys).value.median().rename("steady_epoch_s")
    c = frame[(frame.metric == "compile_s") & (frame.epoch == 0)]
    compiled = c.groupby(keys).value.first().rename("first_epoch_compile_s")
    return pd.concat([first, steady, compiled], axis=1).reset_index()


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


def format_bytes(v) -> str:
    """Bytes in binary units, as tables show memory: ``412 MiB``, ``1.6 GiB``, ``740 KiB``."""
    if _missing(v):
        return "-"
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if abs(v) >= size:
            return f"{v / size:.1f} {unit}" if unit == "GiB" else f"{v / size:.0f} {unit}"
    return f"{v:.0f} B"


def format_duration(seconds: float) -> str:
    """A wall time as progress lines show it: ``42 s`` up to a minute and a half, ``3.5 min`` above."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def format_interval(point, low, high) -> str:
    """A time with its 95% interval relative to it: ``2.13 ms (-3%, +5%)``; the time alone without one."""
    if _missing(point) or _missing(low) or _missing(high) or not point:
        return format_seconds(point)
    return f"{format_seconds(point)} ({(low - point) / point:+.0%}, {(high - point) / point:+.0%})"


def format_target(rec: dict) -> str:
    """Time to the target accuracy from a summary row: ``1.23 s (ep 3)`` (epoch counted from 0), with the
    interval over repeats ``1.23 s (-3%, +5%) (ep 3)``; else why there is none: ``not reached in 5 epochs``,
    ``reached in 2 of 3 repeats``, ``no target``; ``-`` in a row written before it was measured."""
    reason = rec.get("target_reason")
    if not isinstance(reason, str):
        return "-"
    if reason or _missing(rec.get("time_to_target_s")):
        return reason or "-"
    cell = format_interval(rec["time_to_target_s"], rec.get("time_to_target_s_low"), rec.get("time_to_target_s_high"))
    return f"{cell} (ep {rec['target_epoch']})"


def format_machine(others, disturbed) -> str:
    """What others took from the machine while a run trained: ``quiet 0.02``, ``DISTURBED 0.97`` (cores),
    ``-`` when not measured."""
    if _missing(others):
        return "-"
    return f"{'DISTURBED' if disturbed else 'quiet'} {others:.2f}"


def format_ratio(ratio, low, high) -> str:
    """``0.45x (0.41-0.50)``, or the ratio alone without an interval."""
    if _missing(ratio):
        return "-"
    return f"{ratio:.2f}x" + ("" if _missing(low) or _missing(high) else f" ({low:.2f}-{high:.2f})")


def format_speed(speed: list[dict], baseline: str | None = None) -> str:
    """Each engine run's steady epoch against ``baseline`` (``keras:fit``, ``keras/fit``, or an engine name;
    default: the first run that is not the reference), with the interval and verdict; one line of reason
    where there are none."""
    bases = list(dict.fromkeys(r["baseline"] for r in speed))
    wanted = (baseline or "").replace(":", "/")
    base = next((b for b in bases if b == wanted or b.split("/")[0] == wanted), None) if wanted else \
        next((b for b in bases if not b.startswith("reference/")), bases[0] if bases else None)
    if base is None:
        return (f"no speed comparison: {wanted} did not run comparably" if wanted
                else "no speed comparison: fewer than two engine runs with comparable times")
    rows = [r for r in speed if r["baseline"] == base]
    lines = [f"steady epoch against {base} (95% interval; within {NOISE - 1:.0%} is noise):"]
    width = max(len(r["engine"]) for r in rows)
    for r in rows:
        lines.append(f"  {r['engine']:<{width}}  {format_ratio(r['ratio'], r['low'], r['high']):<20}  {r['verdict']}")
    return "\n".join(lines)


def precision_cell(adaptive: dict, label: str) -> str:
    """With ``--repeats auto``: ``met 8%`` or ``short 14% (budget spent)``, the width an engine's steady
    epoch reached against the target; ``-`` for an engine run that did not take part."""
    e = adaptive["engines"].get(label)
    if e is None:
        return "-"
    reached = "no interval" if e["width"] is None else f"{e['width']:.0%}"
    return f"met {reached}" if e["met"] else f"short {reached} ({e['stopped']})"


def format_runs(rec: dict) -> str:
    """Finished engine runs of all asked: ``2/2``."""
    ok, total = rec.get("runs_ok"), rec.get("runs_total")
    if ok is None and isinstance(rec.get("runs"), str):  # a summary row of format 1
        return rec["runs"]
    return "-" if total is None else f"{ok}/{total}"


def format_parity(rec: dict) -> str:
    """An engine's parity as tables show it: ``2.1e-07 ok``, ``1.0e-03 FAIL``, ``reference``, ``not checked``
    (no reference to compare with) or ``-`` (no step to compare); from a summary row's typed fields."""
    role = rec.get("parity_role")
    if role is None and isinstance(rec.get("parity"), str):  # a summary row of format 1
        return rec["parity"]
    if role == parity.COMPARED and not _missing(rec.get("parity_max_rel_diff")):
        return f"{rec['parity_max_rel_diff']:.1e} {'ok' if rec.get('parity_pass') else 'FAIL'}"
    return {parity.REFERENCE_ROLE: "reference", parity.NOT_CHECKED: "not checked"}.get(role, "-")


def terminal_columns(stream=None) -> int | None:
    """How wide a table may be printed on ``stream`` (default stdout): a terminal's width, else
    ``$COLUMNS`` when set (a pipe or log whose reader said so), else None: no limit."""
    import os
    import sys

    stream = stream if stream is not None else sys.stdout
    try:
        if stream.isatty():
            return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        pass
    given = os.environ.get("COLUMNS", "")
    return int(given) if given.isdigit() and int(given) > 0 else None


ESSENTIAL = ("engine", "parity", "steady epoch (95%)", "test acc")
"""The summary table's columns kept on a narrow terminal (and ``machine`` when a run was disturbed)."""


def format_table(summary: pd.DataFrame, adaptive: dict | None = None, width: int | None = None) -> str:
    """The compact summary table printed at the end of a run; ``adaptive`` (summary.json's
    ``timing.adaptive``, with ``--repeats auto``) adds the precision each engine reached. Wider than
    ``width`` columns, it keeps the :data:`ESSENTIAL` ones and says which it left out and where they are;
    still wider, its columns wrap into blocks."""
    if summary.empty:
        return "(no engine ran)"
    rows = summary.to_dict("records")
    show = pd.DataFrame({
        "engine": [r["engine"] for r in rows], "framework": [r["framework"] for r in rows],
        "status": [r["status"] for r in rows], "runs": [format_runs(r) for r in rows],
        "parity": [format_parity(r) for r in rows],
        "first epoch": [format_seconds(r["first_epoch_s"]) for r in rows],
        "steady epoch (95%)": [format_interval(r["steady_epoch_s"], r.get("steady_epoch_s_low"),
                                               r.get("steady_epoch_s_high")) + (" UNSTABLE" if r.get("unstable") else "")
                               for r in rows],
        "examples/s": [format_rate(r["examples_per_s"]) for r in rows],
        "of peak": [format_fraction(r["peak_fraction"]) for r in rows],
        "machine": [format_machine(r.get("others_cores"), r.get("disturbed")) for r in rows],
        "peak memory": [format_bytes(r.get("rss_peak_bytes")) for r in rows],
        "train loss": [format_number(r["train_loss"]) for r in rows],
        "test loss": [format_number(r["test_loss"]) for r in rows],
        "test acc": [format_number(r["test_accuracy"]) for r in rows]})
    show["to target"] = [format_target(r) for r in rows]  # left out at narrow width (not ESSENTIAL)
    if adaptive:  # --repeats auto: the width each engine reached against the target
        show.insert(4, "precision", [precision_cell(adaptive, r["engine"]) for r in rows])
    text = show.to_string(index=False)
    if width is None or max(map(len, text.splitlines())) <= width:
        return text
    keep = [c for c in show.columns if c in ESSENTIAL or c == "precision"
            or (c == "machine" and any(r.get("disturbed") for r in rows))]
    left_out = [c for c in show.columns if c not in keep]
    note = (f"({len(left_out)} columns left out at {width} columns: {', '.join(left_out)}; "
            f"all are in summary.json and report.html, or widen the terminal to {max(map(len, text.splitlines()))})")
    return show[keep].to_string(index=False, line_width=width) + "\n" + _wrap(note, width)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width=max(width, 20)))
