"""Results are data: the one module that writes and reads a results folder.

Files under ``--out`` (each written atomically): ``results.csv`` (one row per measured value),
``summary.json`` (spec, fingerprints, per-engine status and errors, the summary table, warnings; its
``format`` is :data:`FORMAT`), ``checksums.csv`` (every batch handed to each engine) and ``spec.toml``.
Figures, the report and comparisons read a folder through :func:`read_summary` and :func:`read_frame`.

Metrics in ``results.csv``: ``step_loss`` (split train, one per step, the loss of the batch before its
update), ``loss`` and ``accuracy`` (split train / test, after each epoch, on the whole split),
``epoch_s`` (split timing, seconds per training epoch, evaluation excluded), ``compile_s`` (split
timing, per epoch, only from an engine whose framework says how much of ``epoch_s`` it compiled: the
Julia engines), ``import_s`` and ``build_s`` (split timing, once per run), and split ``memory``, in bytes (:data:`MEMORY_METRICS`, once
per run where measured; ``rss_peak_bytes`` also per epoch, with its epoch).

One convention for counting: ``repeat``, ``epoch`` and ``step`` are indices from 0 (the first epoch is
epoch 0, as in the batch plan), integers in the files (``epoch`` and ``step`` are empty in the rows of a
whole run), and the terminal and the report name them the same way (``repeat 0``). The files hold
data, never display strings: counts, seconds, booleans, and a few fixed words (statuses, parity roles);
tables format them when shown (:mod:`.summary`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UsageError
from ..files import atomic_write
from . import parity
from .summary import epoch_work, summarise
from . import intervals
from .timing import (DISTURBED_CORES, MIN_STEADY_EPOCHS, NOISE, UNSTABLE_WIDTH, describe_others, others_cores,
                     speed_ratios)

FORMAT = 2
"""summary.json's format: a reader refuses a newer one rather than misread it, and reads an older one as
this one (:func:`read_summary`). 2: typed summary rows (``runs_ok``, ``runs_total``, ``parity_role``
instead of format 1's display strings ``runs`` "2/2" and ``parity`` "3.8e-07 ok"; no ``precision`` cell,
which ``timing.adaptive`` holds as data) and integer ``epoch``/``step`` in results.csv. Absent: written
before formats were numbered, read as 1."""
ID_COLUMNS = ["engine", "mode", "framework", "framework_version", "device", "threads", "dataset", "model",
              "optimizer", "repeat", "host", "started", "ended"]
"""Which engine run a row belongs to; ``started`` and ``ended`` are its worker's, UTC, ISO 8601."""
FINGERPRINT_COLUMNS = ["spec_hash", "git_commit", "python", "numpy", "cpu"]
COLUMNS = ID_COLUMNS + ["epoch", "step", "split", "metric", "value"] + FINGERPRINT_COLUMNS
INTEGER_COLUMNS = {"repeat": "int64", "epoch": "Int64", "step": "Int64"}
MEMORY_METRICS = ("rss_baseline_bytes", "rss_import_bytes", "rss_build_bytes", "rss_peak_bytes", "hwm_bytes",
                  "epoch_bytes", "device_memory_peak_bytes", "device_memory_total_bytes", "julia_maxrss_bytes",
                  "julia_gc_live_bytes")
"""Split ``memory``: the worker's process tree before the engine, after its import and build, its peak while
training, the worker's ``VmHWM``, one gathered epoch (:mod:`bridge.proctree`), and what the
framework reports (:class:`bridge.contract.EngineReport`); absent in folders written before they were."""
"""Counted from 0; ``epoch`` and ``step`` empty in a row of a whole run (pandas' nullable integer)."""


@dataclass
class Results:
    frame: pd.DataFrame
    summary: pd.DataFrame
    outcomes: list
    out: Path
    warnings: list[str]
    semantics: dict = field(default_factory=dict)
    disturbed: list[str] = field(default_factory=list)
    """The warnings of runs whose times other processes disturbed: shown even with ``--quiet``."""
    speed: list[dict] = field(default_factory=list)
    """Every comparable pair's steady-epoch ratio, interval and verdict (summary.json's ``speed``)."""
    kept: list = field(default_factory=list)
    """The folder's finished runs of engines this run left alone, in the results as they were."""
    adaptive: dict | None = None
    """With ``--repeats auto``: what was asked and what each engine got (summary.json's ``timing.adaptive``)."""

    @property
    def failed(self) -> bool:
        return any(o.failed for o in self.outcomes)


def _rows(outcome, spec, env: dict, steps_per_epoch: int) -> list[dict]:
    rep = outcome.report
    ident = {"engine": outcome.run.engine, "mode": outcome.run.mode,
             "framework": rep.get("framework", ""), "framework_version": rep.get("framework_version", ""),
             "device": rep.get("device", spec.device), "threads": str(rep.get("threads", "")),
             "dataset": spec.dataset, "model": spec.model, "optimizer": spec.optimizer,
             "repeat": outcome.repeat, "host": outcome.host, "started": outcome.started, "ended": outcome.ended,
             **{k: env[k] for k in FINGERPRINT_COLUMNS}}
    rows = []

    def add(epoch, step, split, metric, value):
        rows.append({**ident, "epoch": epoch, "step": step, "split": split, "metric": metric, "value": value})

    for metric in ("import_s", "build_s"):
        if metric in rep:
            add(np.nan, np.nan, "timing", metric, rep[metric])
    for metric in MEMORY_METRICS:
        if rep.get(metric) is not None:
            add(np.nan, np.nan, "memory", metric, rep[metric])
    others = others_cores([ep.get("machine") for ep in outcome.epochs])
    if others is not None:
        add(np.nan, np.nan, "machine", "others_cores", others)
    for ep in outcome.epochs:
        e = ep["epoch"]
        for i, loss in enumerate(ep["losses"]):
            add(e, e * steps_per_epoch + i, "train", "step_loss", loss)
        add(e, np.nan, "timing", "epoch_s", ep["seconds"])
        if ep.get("compile_s") is not None:
            add(e, np.nan, "timing", "compile_s", ep["compile_s"])
        if ep.get("rss_peak_bytes") is not None:
            add(e, np.nan, "memory", "rss_peak_bytes", ep["rss_peak_bytes"])
        for split in ("train", "test"):
            add(e, np.nan, split, "loss", ep[f"{split}_loss"])
            add(e, np.nan, split, "accuracy", ep[f"{split}_accuracy"])
    return rows


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


def _peak(environment: dict) -> tuple[float | None, str]:
    """The peak every engine's rate is a fraction of, and what it is: the GPU's measured GEMM on a cuda run
    where it could be measured, else the CPU's."""
    device = environment.get("device_gemm_peak") or {}
    if "gflops" in device:
        return device["gflops"], f"{device['device']} float32 GEMM ({device['framework']})"
    return environment.get("cpu_gemm_peak_gflops"), "CPU float32 GEMM (NumPy)"


def write(spec, plan, outcomes: list, out: Path, environment: dict, adaptive: dict | None = None,
          kept: list = (), incomplete: dict | None = None) -> Results:
    """Write the results of ``outcomes`` (every engine run of ``spec`` on ``plan`` in ``out``, ``kept``
    among them: those of earlier runs of this folder, :func:`bridge.running.resume.kept`) under ``out``.
    ``environment``: the parent's fingerprint and the machine's measured peaks
    (:mod:`bridge.running.fingerprint`, :mod:`bridge.running.peaks`), recorded as they are; ``adaptive``:
    with ``--repeats auto``, what was asked and what each engine got
    (:meth:`bridge.running.adaptive.Precision.summary`); ``incomplete``: for a run a signal stopped, the
    signal, the runs it stopped, those that never started and the command that resumes it."""
    env = {**environment, "data_source": plan.meta["data_source"], "data_split": plan.meta["data_split"],
           "official_split": plan.meta.get("official_split")}
    rows = [row for o in outcomes for row in _rows(o, spec, env, plan.steps_per_epoch)]
    frame = pd.DataFrame(rows, columns=COLUMNS).astype(INTEGER_COLUMNS)
    runs = list(dict.fromkeys(o.run for o in outcomes))
    parity_ = parity.engine_parity(frame, spec.model, spec.optimizer, runs)
    peak, source = _peak(env)
    work = {**epoch_work(plan, peak), "peak_source": source}
    target, target_source = spec.target()
    summary = summarise(frame, outcomes, parity_, work, target)
    ran_now = {o.run.label for o in outcomes if all(o is not k for k in kept)}
    summary["kept"] = [label not in ran_now for label in summary.get("engine", [])]  # all from an earlier run
    checksums = _checksum_table(outcomes)
    warnings = [f"{o.run.label} {o.status}: {o.message}" if o.status in ("unavailable", "skipped") else o.message
                for o in outcomes if not o.ok]
    warnings += [f"{label} fails parity: {parity.parity_failure(entry)}"
                 for label, entry in parity_.items() if entry.get("pass") is False]
    warnings += (env.get("cpu_gemm_peak") or {}).get("warnings", [])  # disturbed, or its cache unusable
    if "error" in (env.get("device_gemm_peak") or {}):
        warnings.append(f"{env['device_gemm_peak']['error']}; fractions of peak are of the CPU's")
    if spec.epochs < 2:
        warnings.append(f"--epochs {spec.epochs}: no steady-state time, which is the median of the epochs after "
                        f"the first (that one includes tracing and compilation); give --epochs "
                        f"{MIN_STEADY_EPOCHS + 1} or more")
    warnings += plan.meta.get("data_notes", [])  # a fallback taken while loading the data
    if env["official_split"] is False:
        warnings.append(f"not the official train/test split: {env['data_split']}")
    reported = {str(o.report.get("threads")) for o in outcomes if o.report}
    if len(reported) > 1:
        warnings.append(f"engines report different thread settings: {', '.join(sorted(reported))}")
    shares = {(o.run.label, o.repeat): others_cores([ep.get("machine") for ep in o.epochs]) for o in outcomes}
    disturbed = [f"{label}{f' repeat {r}' if spec.repeats > 1 else ''} disturbed: "
                 f"{describe_others(cores, env.get('logical_cores'))} while it trained; its times are not comparable"
                 for (label, r), cores in shares.items() if cores is not None and cores > DISTURBED_CORES]
    warnings += disturbed
    warnings += [f"{row['engine']} unstable: {row['unstable_reason']}; differences in its times smaller than that "
                 "are not readable"
                 for row in summary.to_dict("records") if row.get("unstable")]
    kept_ids = {id(o) for o in kept}
    doc = {
        "format": FORMAT,
        "incomplete": incomplete,
        "spec": spec.to_dict(),
        "work": work,
        "fingerprint": env,
        "engines": [{"engine": o.run.engine, "mode": o.run.mode, "repeat": o.repeat, "status": o.status,
                     "message": o.message, "epochs_completed": len(o.epochs), "wall_s": o.wall_s,
                     "started": o.started, "ended": o.ended, "host": o.host, "kept": id(o) in kept_ids,
                     "others_cores": shares[o.run.label, o.repeat], "report": o.report, "log": o.log}
                    for o in outcomes],
        "timing": {"interval": {"level": intervals.LEVEL, "method": intervals.METHOD},
                   "disturbed_cores": DISTURBED_CORES, "unstable_width": UNSTABLE_WIDTH,
                   "min_steady_epochs": MIN_STEADY_EPOCHS, "noise": NOISE, "adaptive": adaptive},
        "speed": (speed := speed_ratios(frame, summary.to_dict("records"))),
        "target": {"accuracy": target, "source": target_source, "split": "test"},
        "batches_identical": not any(o.status == "mismatch" for o in outcomes) and len(checksums) > 0,
        "parity": {"steps": parity.PARITY_STEPS[spec.model], "tolerance": parity.TOLERANCE[spec.optimizer],
                   "runs": parity_},
        "agreement": parity.agreement(frame, spec.model),
        "semantics": (semantics := parity.semantics(spec.model, runs, frame)),
        "summary": json.loads(summary.to_json(orient="records")),
        "warnings": warnings,
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "results.csv", lambda p: frame.to_csv(p, index=False))
    atomic_write(out / "checksums.csv", lambda p: checksums.to_csv(p, index=False))
    atomic_write(out / "summary.json", json.dumps(doc, indent=1, default=str))
    atomic_write(out / "spec.toml", spec.to_toml())
    return Results(frame, summary, outcomes, out, warnings, semantics, disturbed, speed, list(kept), adaptive)


# --- reading a results folder: the one reader, for figures, report and comparisons --------------------

REQUIRED = ("results.csv", "summary.json")
# Read as text: a version such as "2.10" or a hash of digits must not turn into a number.
TEXT_COLUMNS = [c for c in COLUMNS if c not in (*INTEGER_COLUMNS, "value")]


class ResultsError(UsageError):
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
    if doc.get("format", 1) > FORMAT:
        raise ResultsError(f"{str(folder / 'summary.json')!r} is in format {doc['format']}, newer than this "
                           f"bridge reads ({FORMAT}); upgrade bridge to read it")
    return _upgrade(doc)


def _upgrade(doc: dict) -> dict:
    """A summary.json of an older format as this format holds it (the file itself is left as it is)."""
    if doc.get("format", 1) >= FORMAT:
        return doc
    runs = (doc.get("parity") or {}).get("runs", {})
    rows = []
    for row in doc.get("summary", []):
        row = dict(row)
        ok, _, total = str(row.pop("runs", "")).partition("/")
        row["runs_ok"], row["runs_total"] = (int(ok), int(total)) if ok.isdigit() and total.isdigit() else (None, None)
        row.pop("parity", None)
        row.pop("precision", None)
        row["parity_role"] = parity.role(runs.get(row.get("engine")))
        rows.append(row)
    return {**doc, "summary": rows, "format": FORMAT, "read_from_format": doc.get("format", 1)}


def read_frame(folder: Path) -> pd.DataFrame:
    """``results.csv`` of a results folder, with ``label`` (engine/mode), ``legend``, ``compared_with``
    (the reference run each run's parity is measured against, from summary.json; :mod:`bridge.parity`)
    and ``target_accuracy`` (summary.json's target; NaN without one) columns added."""
    folder = Path(folder)
    frame = pd.read_csv(folder / "results.csv", dtype={c: str for c in TEXT_COLUMNS})
    frame = frame.astype({c: t for c, t in INTEGER_COLUMNS.items() if c in frame})  # format 1 wrote 3.0
    present = [c for c in TEXT_COLUMNS if c in frame]
    frame[present] = frame[present].fillna("")
    frame["label"] = frame["engine"] + "/" + frame["mode"]
    framework = (frame["framework"] + " " + frame["framework_version"]).str.strip()
    frame["legend"] = [f"{lab} ({fw})" if fw else lab for lab, fw in zip(frame["label"], framework)]
    try:
        doc = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):  # the figures need only results.csv
        doc = {}
    runs = doc.get("semantics", {}).get("maxpool_gradient", {})
    frame["compared_with"] = [runs.get(lab, {}).get("compared_with", "") or "" for lab in frame["label"]]
    frame["target_accuracy"] = float((doc.get("target") or {}).get("accuracy") or np.nan)
    return frame
