"""Results are data: one tidy long-format DataFrame, an environment fingerprint and a summary.

Files under ``--out`` (each written atomically): ``results.csv`` (one row per measured value),
``summary.json`` (spec, fingerprints, per-engine status and errors, the summary table, warnings),
``checksums.csv`` (every batch handed to each engine) and ``spec.toml``.

Metrics in ``results.csv``: ``step_loss`` (split train, one per step, the loss of the batch before its
update), ``loss`` and ``accuracy`` (split train / test, after each epoch, on the whole split),
``epoch_s`` (split timing, seconds per training epoch, evaluation excluded), ``import_s`` and
``build_s`` (split timing, once per run).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import devicepeak, fingerprint, models, parity

ID_COLUMNS = ["engine", "mode", "framework", "framework_version", "device", "threads", "dataset", "model",
              "optimizer", "repeat"]
FINGERPRINT_COLUMNS = ["spec_hash", "git_commit", "python", "numpy", "cpu"]
COLUMNS = ID_COLUMNS + ["epoch", "step", "split", "metric", "value"] + FINGERPRINT_COLUMNS


@dataclass
class Results:
    frame: pd.DataFrame
    summary: pd.DataFrame
    outcomes: list
    out: Path
    warnings: list[str]
    semantics: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(o.failed for o in self.outcomes)


def _rows(outcome, spec, env: dict, steps_per_epoch: int) -> list[dict]:
    rep = outcome.report
    ident = {"engine": outcome.run.engine, "mode": outcome.run.mode,
             "framework": rep.get("framework", ""), "framework_version": rep.get("framework_version", ""),
             "device": rep.get("device", spec.device), "threads": str(rep.get("threads", "")),
             "dataset": spec.dataset, "model": spec.model, "optimizer": spec.optimizer,
             "repeat": outcome.repeat, **{k: env[k] for k in FINGERPRINT_COLUMNS}}
    rows = []

    def add(epoch, step, split, metric, value):
        rows.append({**ident, "epoch": epoch, "step": step, "split": split, "metric": metric, "value": value})

    for metric in ("import_s", "build_s"):
        if metric in rep:
            add(np.nan, np.nan, "timing", metric, rep[metric])
    for ep in outcome.epochs:
        e = ep["epoch"]
        for i, loss in enumerate(ep["losses"]):
            add(e, e * steps_per_epoch + i, "train", "step_loss", loss)
        add(e, np.nan, "timing", "epoch_s", ep["seconds"])
        for split in ("train", "test"):
            add(e, np.nan, split, "loss", ep[f"{split}_loss"])
            add(e, np.nan, split, "accuracy", ep[f"{split}_accuracy"])
    return rows


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


def epoch_work(spec, plan, peak_gflops: float | None) -> dict:
    """What one training epoch asks of an engine: examples, training FLOPs per example
    (``models.TRAINING_FACTOR`` × the forward pass), and the machine's measured peak to compare with."""
    shapes = {name: tuple(shape) for name, shape in plan.meta["parameters"].items()}
    forward = models.forward_flops(shapes, tuple(plan.meta["input_shape"]))
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
    :func:`bridge.parity.engine_parity`) gives each row its parity cell, largest difference and verdict."""
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
                          for o in mine if o.report), "").strip()
        if not framework:
            from .registry import module
            framework = getattr(module(engine), "FRAMEWORK", "")
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


def _checksum_table(outcomes) -> pd.DataFrame:
    """The worker's checksums of every batch it handed over; the worker compared them with the plan
    (a disagreement is the run's ``mismatch`` status and message)."""
    rows = []
    for o in outcomes:
        for ep in o.epochs:
            for step, crc in enumerate(ep["checksums"]):
                rows.append({"engine": o.run.engine, "mode": o.run.mode, "repeat": o.repeat,
                             "epoch": ep["epoch"], "step": step, "crc32c": crc})
    return pd.DataFrame(rows, columns=["engine", "mode", "repeat", "epoch", "step", "crc32c"])


def _maxpool_rules(spec, outcomes) -> dict:
    """(engine, mode) -> max-pool gradient rule: as the run reported it, else as its module declares it."""
    from .registry import module

    return {(o.run.engine, o.run.mode): o.report.get("maxpool_gradient")
            or parity.maxpool_gradient(module(o.run.engine), spec.device) for o in outcomes}


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def write(spec, plan, data, outcomes: list, out: Path, threads: int) -> Results:
    env = fingerprint.parent(spec.hash())
    rows = [row for o in outcomes for row in _rows(o, spec, env, plan.steps_per_epoch)]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    rules = _maxpool_rules(spec, outcomes)
    parity_ = parity.engine_parity(frame, spec.model, spec.optimizer, rules)
    # the machine's float32 peak, measured now that no engine runs: the CPU's always, the GPU's on a cuda
    # run (then the fraction of peak is of the GPU's)
    peak = fingerprint.gemm_peak(threads)
    device_peak = devicepeak.probe("cuda") if spec.device == "cuda" else None
    work = epoch_work(spec, plan, device_peak["gflops"] if device_peak and "gflops" in device_peak else peak)
    work["peak_source"] = (f"{device_peak['device']} float32 GEMM ({device_peak['framework']})"
                           if device_peak and "gflops" in device_peak else "CPU float32 GEMM (NumPy)")
    summary = summarise(frame, outcomes, parity_, work)
    checksums = _checksum_table(outcomes)
    warnings = [f"{o.run.label} {o.status}: {o.message}" if o.status in ("unavailable", "skipped") else o.message
                for o in outcomes if not o.ok]
    warnings += [f"{label} fails parity: {parity.parity_failure(entry)}"
                 for label, entry in parity_.items() if entry.get("pass") is False]
    if device_peak and "error" in device_peak:
        warnings.append(f"{device_peak['error']}; fractions of peak are of the CPU's")
    if data.official_split is False:
        warnings.append(f"not the official train/test split: {data.split}")
    reported = {str(o.report.get("threads")) for o in outcomes if o.report}
    if len(reported) > 1:
        warnings.append(f"engines report different thread settings: {', '.join(sorted(reported))}")
    doc = {
        "spec": spec.to_dict(),
        "work": work,
        "fingerprint": {**env, "threads_requested": threads, "cpu_gemm_peak_gflops": peak,
                        "cpu_nominal_peak": fingerprint.nominal_peak(threads), "device_gemm_peak": device_peak,
                        "data_source": data.source,
                        "data_split": data.split, "official_split": data.official_split},
        "engines": [{"engine": o.run.engine, "mode": o.run.mode, "repeat": o.repeat, "status": o.status,
                     "message": o.message, "epochs_completed": len(o.epochs), "wall_s": o.wall_s,
                     "report": o.report, "log": o.log} for o in outcomes],
        "batches_identical": not any(o.status == "mismatch" for o in outcomes) and len(checksums) > 0,
        "parity": {"steps": parity.PARITY_STEPS[spec.model], "tolerance": parity.TOLERANCE[spec.optimizer],
                   "runs": parity_},
        "semantics": (semantics := parity.semantics(spec.model, rules, frame)),
        "summary": json.loads(summary.to_json(orient="records")),
        "warnings": warnings,
    }
    out.mkdir(parents=True, exist_ok=True)
    _atomic(out / "results.csv", lambda p: frame.to_csv(p, index=False))
    _atomic(out / "checksums.csv", lambda p: checksums.to_csv(p, index=False))
    _atomic(out / "summary.json", lambda p: p.write_text(json.dumps(doc, indent=1, default=str)))
    _atomic(out / "spec.toml", lambda p: p.write_text(spec.to_toml()))
    return Results(frame, summary, outcomes, out, warnings, semantics)


# --- reading a results folder: the one reader, for figures, report and comparisons --------------------

REQUIRED = ("results.csv", "summary.json")
# Read as text: a version such as "2.10" or a hash of digits must not turn into a number.
TEXT_COLUMNS = [c for c in COLUMNS if c not in ("repeat", "epoch", "step", "value")]


class ResultsError(Exception):
    """A folder that is not a results folder; the message names it and what is missing."""


def read_summary(folder: Path) -> dict:
    """``summary.json`` of a results folder, after checking the folder holds what a report needs."""
    folder = Path(folder)
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        what = "is not a folder" if not folder.is_dir() else "has no " + " and no ".join(missing)
        raise ResultsError(f"{str(folder)!r} {what}; give a folder written by python -m bridge.compare --out")
    try:
        doc = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError) as e:
        raise ResultsError(f"{str(folder / 'summary.json')!r} cannot be read as JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ResultsError(f"{str(folder / 'summary.json')!r} does not hold a JSON object")
    return doc


def read_frame(folder: Path) -> pd.DataFrame:
    """``results.csv`` of a results folder, with ``label`` (engine/mode), ``legend`` and ``compared_with``
    (the reference run each run's parity is measured against, from summary.json; :mod:`bridge.parity`)
    columns added."""
    folder = Path(folder)
    frame = pd.read_csv(folder / "results.csv", dtype={c: str for c in TEXT_COLUMNS})
    present = [c for c in TEXT_COLUMNS if c in frame]
    frame[present] = frame[present].fillna("")
    frame["label"] = frame["engine"] + "/" + frame["mode"]
    framework = (frame["framework"] + " " + frame["framework_version"]).str.strip()
    frame["legend"] = [f"{lab} ({fw})" if fw else lab for lab, fw in zip(frame["label"], framework)]
    try:
        runs = json.loads((folder / "summary.json").read_text()).get("semantics", {}).get("maxpool_gradient", {})
    except (OSError, ValueError):  # the figures need only results.csv
        runs = {}
    frame["compared_with"] = [runs.get(lab, {}).get("compared_with", "") or "" for lab in frame["label"]]
    return frame


def epoch_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Per run (engine, mode, repeat): ``first_epoch_s``, the first epoch's seconds (tracing, compilation
    and JIT included), and ``steady_epoch_s``, the median of the epochs after the first: the one
    definition of the steady state, for the summary and the figures."""
    t = frame[frame.metric == "epoch_s"]
    keys = ["engine", "mode", "repeat"]
    first = t[t.epoch == 0].groupby(keys).value.first().rename("first_epoch_s")
    steady = t[t.epoch > 0].groupby(keys).value.median().rename("steady_epoch_s")
    return pd.concat([first, steady], axis=1).reset_index()


# --- formatting: the one way every table (terminal, report, comparison) shows a value ------------------

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
