"""The sweep's results: OUT/points/<spec hash>/ (one comparison's files per point), ``sweep.csv`` and
``sweep.json``. The one module that writes and reads them; :mod:`.command` runs the points and
:mod:`.report` draws them, both through here. A point's numbers are read from its own results through
:mod:`bridge.results.store`, so a sweep row and the point's summary cannot disagree.

``sweep.csv``: one tidy row per point × engine run × repeat, :data:`COLUMNS` with the grid's fields after
``point``. ``sweep.json``: the sweep's definition (the base spec fields given, the axes and their values,
the first point's whole spec, engines, repeats, where it ran, every point with its hash and label).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import atomic_write
from ..results import store
from ..results.target import reached
from ..results.summary import epoch_times, format_interval, format_number, format_rate, throughput
from ..results.timing import DISTURBED_CORES
from .grid import Point, shown

FORMAT = 1
"""sweep.json's format (absent: written before formats were numbered, read as 1)."""
COLUMNS = ["point", "engine", "repeat", "status", "parity_max_rel_diff", "parity_pass", "first_epoch_s",
           "first_epoch_compile_s", "steady_epoch_s", "steady_epoch_s_low", "steady_epoch_s_high", "examples_per_s",
           "first_epoch_examples_per_s", "gflops", "peak_fraction", "examples_per_s_low", "examples_per_s_high",
           "others_cores", "disturbed", "unstable", "test_accuracy", "rss_peak_bytes", "target_accuracy",
           "time_to_target_s", "target_epoch", "parameters", "forward_flops_per_example", "worker", "attempts", "error"]
"""One row per point × engine run × repeat; ``steady_epoch_s_low``/``_high`` and
``examples_per_s_low``/``_high`` (the engine's 95% intervals at the point, over its repeats), ``unstable``
and ``disturbed`` (this repeat: others took more than :data:`bridge.results.timing.DISTURBED_CORES`
cores) as the point's own summary says; ``rss_peak_bytes``: this repeat's peak resident memory while training
(:mod:`bridge.proctree`); ``time_to_target_s`` and ``target_epoch``: this repeat's time to the point's
``target_accuracy`` and the epoch that reached it (empty where it did not: :func:`bridge.results.target.reached`)."""


def point_folder(out: Path, point: Point) -> Path:
    return out / "points" / point.key


def finished(out: Path, point: Point, engines: tuple[str, ...], repeats: int) -> bool:
    """The point's results are in OUT, for the same spec, engines and repeats."""
    try:
        doc = store.read_summary(point_folder(out, point))
    except store.ResultsError:
        return False
    spec = doc.get("spec", {})
    return (doc.get("fingerprint", {}).get("spec_hash") == point.key and tuple(spec.get("engines", ())) == engines
            and spec.get("repeats") == repeats)


def write_point(out: Path, point: Point, files: dict[str, bytes]) -> Path:
    """The point's files under OUT/points/<hash>/, replacing what an earlier run left there; summary.json
    last (its presence marks the point done)."""
    folder = point_folder(out, point)
    (folder / "summary.json").unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    for name, data in sorted(files.items(), key=lambda kv: kv[0] == "summary.json"):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
    return folder


def point_rows(point: Point, folder: Path, worker: str = "", attempts: int = 0) -> list[dict]:
    """The sweep.csv rows of a finished point: one per engine run and repeat, from its own results
    (results.csv and summary.json, read through :mod:`bridge.results`)."""
    doc = store.read_summary(folder)
    frame = store.read_frame(folder)
    work = doc.get("work") or {}
    times = epoch_times(frame)
    accuracy = (frame[(frame.split == "test") & (frame.metric == "accuracy")].sort_values("epoch")
                .groupby(["engine", "mode", "repeat"]).value.last())
    peaks = (frame[(frame.split == "memory") & (frame.metric == "rss_peak_bytes") & frame.epoch.isna()]
             .groupby(["engine", "mode", "repeat"]).value.first())
    runs = (doc.get("parity") or {}).get("runs", {})
    summary = {r["engine"]: r for r in doc.get("summary", [])}
    target = (doc.get("target") or {}).get("accuracy")  # none in a point written before targets
    to_target = reached(frame, target)
    rows = []
    for run in doc.get("engines", []):
        label, repeat = f"{run['engine']}/{run['mode']}", run["repeat"]
        hit = to_target.get((run["engine"], run["mode"], repeat), (0, None, np.nan))  # (epochs, epoch, seconds)
        t = times[(times.engine == run["engine"]) & (times["mode"] == run["mode"]) & (times.repeat == repeat)]
        first = float(t.first_epoch_s.iloc[0]) if len(t) else np.nan
        steady = float(t.steady_epoch_s.iloc[0]) if len(t) else np.nan
        compiled = float(t.first_epoch_compile_s.iloc[0]) if len(t) else np.nan
        parity_ = runs.get(label, {})
        rows.append({"point": point.key, **{k: shown(getattr(point.spec, k)) for k in point.axes},
                     "engine": label, "repeat": repeat, "status": run["status"],
                     "parity_max_rel_diff": parity_.get("max_rel_diff", np.nan), "parity_pass": parity_.get("pass"),
                     "first_epoch_s": first, "first_epoch_compile_s": compiled, "steady_epoch_s": steady,
                     "steady_epoch_s_low": summary.get(label, {}).get("steady_epoch_s_low", np.nan),
                     "steady_epoch_s_high": summary.get(label, {}).get("steady_epoch_s_high", np.nan),
                     **throughput(steady, first, work),
                     "examples_per_s_low": summary.get(label, {}).get("examples_per_s_low", np.nan),
                     "examples_per_s_high": summary.get(label, {}).get("examples_per_s_high", np.nan),
                     "others_cores": run.get("others_cores", np.nan),
                     "disturbed": (run.get("others_cores") or 0) > DISTURBED_CORES,
                     "unstable": bool(summary.get(label, {}).get("unstable", False)),
                     "test_accuracy": accuracy.get((run["engine"], run["mode"], repeat), np.nan),
                     "rss_peak_bytes": peaks.get((run["engine"], run["mode"], repeat), np.nan),
                     "target_accuracy": np.nan if target is None else target,
                     "time_to_target_s": hit[2], "target_epoch": hit[1],
                     "parameters": work.get("parameters"),
                     "forward_flops_per_example": work.get("forward_flops_per_example"),
                     "worker": worker, "attempts": attempts,
                     "error": run.get("message", "") if run["status"] not in ("ok",) else ""})
    return rows


def error_rows(point: Point, error: str, worker: str = "", attempts: int = 0) -> list[dict]:
    return [{"point": point.key, **{k: shown(getattr(point.spec, k)) for k in point.axes}, "engine": "",
             "repeat": np.nan, "status": "error", "worker": worker, "attempts": attempts, "error": error}]


def table(rows: list[dict], axes: list[str]) -> pd.DataFrame:
    """sweep.csv's frame: :data:`COLUMNS` with the grid's fields after ``point``."""
    columns = COLUMNS[:1] + axes + COLUMNS[1:]
    return pd.DataFrame(rows, columns=columns).astype({"target_epoch": "Int64"})  # an epoch, or empty


def format_points(frame: pd.DataFrame, axes: list[str]) -> str:
    """The table a sweep prints at its end: one row per point and engine run (repeats folded: statuses
    joined, medians of the steady epoch, examples/s and test accuracy), with the point's axis values, the
    steady epoch's 95% interval over repeats, examples/s and the test accuracy; a point that failed as a
    whole is one row, engine ``(point)``. ``frame`` is sweep.csv's (:func:`table`)."""
    rows = []
    for (_, engine), g in frame.groupby(["point", "engine"], sort=False):
        first = g.iloc[0]
        steady = g.steady_epoch_s.median()
        rows.append({**{a: first[a] for a in axes}, "engine": engine or "(point)",
                     "status": ",".join(sorted(set(g.status))), "runs": len(g) if engine else 0,
                     "steady epoch (95%)": format_interval(steady, first.get("steady_epoch_s_low"),
                                                           first.get("steady_epoch_s_high"))
                     + (" UNSTABLE" if g.unstable.astype(str).eq("True").any() else ""),
                     "examples/s": format_rate(g.examples_per_s.median()),
                     "test acc": format_number(g.test_accuracy.median())})
    show = pd.DataFrame(rows, columns=[*axes, "engine", "status", "runs", "steady epoch (95%)", "examples/s",
                                       "test acc"])
    show["runs"] = [str(n) if n else "-" for n in show.runs]
    return show.to_string(index=False)


def write_definition(out: Path, doc: dict) -> Path:
    return atomic_write(out / "sweep.json", json.dumps({"format": FORMAT, **doc}, indent=1))


def write_table(out: Path, frame: pd.DataFrame) -> Path:
    return atomic_write(out / "sweep.csv", lambda p: frame.to_csv(p, index=False))


def read_table(out: Path) -> tuple[pd.DataFrame, dict]:
    """sweep.csv and sweep.json of a sweep folder: the one reader, for the report and for users. Columns an
    older bridge did not write are empty; a folder whose files are not a sweep's is a
    :class:`~bridge.results.store.ResultsError` naming what is wrong."""
    out = Path(out)
    fix = "give a folder written by python -m bridge.sweep --out, or run that sweep again"
    try:
        definition = json.loads((out / "sweep.json").read_text())
        axes = definition.get("axes") if isinstance(definition, dict) else None
        if not isinstance(axes, dict) or not axes or not all(isinstance(v, list) for v in axes.values()):
            raise ValueError("its axes are not a table of fields and their values")
        if not all(isinstance(p, dict) and "point" in p for p in definition.get("points", [])):
            raise ValueError("its points are not a list of tables with a point's hash")
        frame = pd.read_csv(out / "sweep.csv", dtype={a: str for a in axes} | {
            "point": str, "engine": str, "status": str, "worker": str, "error": str})
    except (OSError, ValueError) as e:
        raise store.ResultsError(f"{str(out)!r} holds no readable sweep (sweep.json, sweep.csv): {e}; {fix}") from None
    if definition.get("format", 1) > FORMAT:
        raise store.ResultsError(f"{str(out / 'sweep.json')!r} is in format {definition['format']}, newer than this "
                                 f"bridge reads ({FORMAT}); upgrade bridge to read it")
    missing = [c for c in ["point", *axes, "engine", "status"] if c not in frame.columns]
    if missing:
        raise store.ResultsError(f"{str(out / 'sweep.csv')!r} has no column {', '.join(missing)}; {fix}")
    for c in COLUMNS:
        if c not in frame.columns:  # written before the column was
            frame[c] = "" if c in ("worker", "error") else np.nan
    for c in ("engine", "status", "worker", "error"):
        frame[c] = frame[c].fillna("")
    return frame, definition
