"""How far bridge's timings can be trusted on this machine: is interference detected, and how narrow do
the intervals get with repeats.

1. Detection. ``--quiet-runs`` runs of ``python -m bridge.compare --engines torch:loop`` (Iris, ``--epochs``
   epochs, one repeat) on a quiet machine, then ``--busy-runs`` runs with one other process spinning on a
   core (``while True: pass``, started here, killed by its pid after each run). Each run's summary says
   whether it was marked ``disturbed`` and the cores others took (summary.json ``summary[].others_cores``).
   Goal: every busy run marked, at most one false mark in 20 quiet runs.
2. Interval width against repeats. One run per case with ``--repeats-max`` repeats (engines interleaved);
   the 95% interval of each engine's steady epoch is then computed, as bridge does
   (:func:`bridge.results.intervals.median_interval`), over the first n repeats for every n from 2: the
   width a user would have got had they asked for n.

usage: python bench/noise.py [--quiet-runs 20] [--busy-runs 10] [--epochs 100] [--repeats-max 8]
                             [--parts detection,width] [--out results/noise]
Writes OUT/detection.csv, OUT/width.csv and OUT/noise.md (the tables, as in the README).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from bridge.results.intervals import median_interval
from bridge.results.store import read_frame
from bridge.results.timing import DISTURBED_CORES, steady_groups

CPU_ONLY = {"CUDA_VISIBLE_DEVICES": "-1", "JAX_PLATFORMS": "cpu"}
DETECT_ENGINE = "torch:loop"  # the engine whose times collapse when a core is taken (README: the anchors)
WIDTH_CASES = {
    "iris-mlp": ["--dataset", "iris", "--epochs", "30", "--engines", "keras:loop,torch:loop,jax:jit"],
    "fmnist-cnn": ["--dataset", "fashion-mnist", "--model", "cnn", "--train_size", "2048", "--test_size", "512",
                   "--epochs", "4", "--engines", "keras:loop,torch:loop,jax:jit"],
}


def options(argv=None):
    p = argparse.ArgumentParser(prog="python bench/noise.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quiet-runs", type=int, default=20, dest="quiet_runs")
    p.add_argument("--busy-runs", type=int, default=10, dest="busy_runs")
    p.add_argument("--epochs", type=int, default=100, help="epochs of each detection run (Iris torch:loop)")
    p.add_argument("--repeats-max", type=int, default=8, dest="repeats_max")
    p.add_argument("--parts", default="detection,width", help="comma-separated: detection, width")
    p.add_argument("--cases", default=",".join(WIDTH_CASES), help=f"width cases: {', '.join(WIDTH_CASES)}")
    p.add_argument("--out", default="results/noise")
    a = p.parse_args(argv)
    a.parts, a.cases = a.parts.split(","), a.cases.split(",")
    if a.repeats_max < 2:
        p.error("--repeats-max: give at least 2 (an interval needs two repeats)")
    return a


def compare(args: list[str], out: Path) -> dict:
    env = {**os.environ, **CPU_ONLY}
    proc = subprocess.run([sys.executable, "-m", "bridge.compare", *args, "--out", str(out), "--no-report",
                           "--quiet", "--fresh"], env=env, capture_output=True, text=True)
    if not (out / "summary.json").exists():
        raise SystemExit(f"bridge.compare {' '.join(args)} wrote nothing: {proc.stderr.strip()[-500:]}")
    return json.loads((out / "summary.json").read_text())


def detection(a, out: Path) -> pd.DataFrame:
    rows = []
    # quiet and busy runs spread evenly through each other, so a drift of the machine falls on both
    plan = [state for _, state in sorted([((i + 0.5) / a.quiet_runs, "quiet") for i in range(a.quiet_runs)]
                                         + [((j + 0.5) / a.busy_runs, "busy") for j in range(a.busy_runs)])]
    for n, state in enumerate(plan):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if state == "busy" else None
        try:
            time.sleep(0.5 if spinner else 0)
            doc = compare(["--engines", DETECT_ENGINE, "--epochs", str(a.epochs)], out / f"detect-{n}")
        finally:
            if spinner:
                spinner.kill()
                spinner.wait()
        (row,) = [r for r in doc["summary"] if r["engine"] == DETECT_ENGINE.replace(":", "/")]
        rows.append({"run": n, "machine": state, "disturbed": bool(row.get("disturbed")),
                     "others_cores": row.get("others_cores"), "steady_epoch_s": row.get("steady_epoch_s")})
        print(f"detection {n + 1}/{len(plan)}: {state}, others {row.get('others_cores')}, "
              f"{'DISTURBED' if row.get('disturbed') else 'quiet'}", flush=True)
    return pd.DataFrame(rows)


def widths(a, out: Path) -> pd.DataFrame:
    rows = []
    for case in a.cases:
        folder = out / f"width-{case}"
        doc = compare([*WIDTH_CASES[case], "--repeats", str(a.repeats_max)], folder)
        frame = read_frame(folder)
        for r in doc["summary"]:
            if r["status"] != "ok":
                continue
            groups = steady_groups(frame, *r["engine"].split("/", 1))
            for n in range(2, len(groups) + 1):
                iv = median_interval(groups[:n])
                rows.append({"case": case, "engine": r["engine"], "repeats": n, "steady_epoch_s": iv.point,
                             "width": iv.relative_width, "others_cores": r.get("others_cores")})
        print(f"width {case}: done", flush=True)
    return pd.DataFrame(rows)


def md(frame: pd.DataFrame) -> str:
    """A frame as a Markdown table (no extra dependency)."""
    head = [str(c) for c in frame.columns]
    rows = [[str(v) for v in r] for r in frame.itertuples(index=False)]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def markdown(det: pd.DataFrame | None, wid: pd.DataFrame | None) -> str:
    parts = []
    if det is not None and len(det):
        g = det.groupby("machine")
        t = pd.DataFrame({"runs": g.size(), "marked disturbed": g.disturbed.sum(),
                          "others' cores median": g.others_cores.median().round(2),
                          "others' cores min-max": g.others_cores.agg(lambda s: f"{s.min():.2f}-{s.max():.2f}"),
                          "steady epoch median": (g.steady_epoch_s.median() * 1e3).round(1).astype(str) + " ms"})
        parts.append(f"Detection ({DETECT_ENGINE}, threshold {DISTURBED_CORES:g} cores):\n\n"
                     + md(t.reset_index()))
    if wid is not None and len(wid):
        t = wid.pivot_table(index=["case", "engine"], columns="repeats", values="width").map(lambda v: f"{v:.0%}")
        parts.append("Relative width of the steady epoch's 95% interval over the first n repeats:\n\n"
                     + md(t.reset_index()))
    return "\n\n".join(parts) + "\n"


def main(argv=None) -> int:
    a = options(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    det = wid = None
    if "detection" in a.parts:
        det = detection(a, out)
        det.to_csv(out / "detection.csv", index=False)
    if "width" in a.parts:
        wid = widths(a, out)
        wid.to_csv(out / "width.csv", index=False)
    text = markdown(det, wid)
    (out / "noise.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
