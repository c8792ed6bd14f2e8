"""What bridge itself costs an engine: each Python engine's steady epoch when bridge runs it, against the
same experiment written as a standalone script (``bench/standalone/``), in fresh processes, interleaved.

For every case (the Iris MLP at its defaults; a Fashion-MNIST CNN) and engine, ``--pairs`` pairs of runs:
``python -m bridge.compare --engines E`` (one fresh worker, the default threads) and the standalone script
for E on the same batch plan (same model, batch, epochs, initial weights, data order; the framework's
default threads; the same device: GPUs hidden). The order inside a pair alternates, so drift in the
machine's speed falls on both sides. Each side's steady epoch is bridge's definition (median of the epochs
after the first, :func:`bridge.results.summary.epoch_times`); the table gives the median over pairs of the ratio
bridge / standalone with its min–max, the spread of the standalone runs alone (the noise floor), and the
largest relative difference of the final test loss between the two sides (they trained the same thing).

usage: python bench/overhead.py [--pairs 5] [--cases iris-mlp,fmnist-cnn] [--engines keras:fit,...]
                                [--out results/overhead]
Writes OUT/overhead.csv (one row per run) and OUT/overhead.md (the table, as in the README).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bridge.experiment import plan as batchplan
from bridge.experiment.spec import from_mapping
from bridge.results import store
from bridge.results.summary import epoch_times, format_seconds

HERE = Path(__file__).resolve().parent
STANDALONE = HERE / "standalone"
TARGET = 1.05
LOSS_AGREEMENT = 1e-4  # relative; float32 runs of the same steps in a different op order stay far inside

CASES = {
    # the Iris defaults (Adam 0.01, batch 16, 100 epochs): a tiny model, where per-step costs dominate
    "iris-mlp": dict(dataset="iris", model="mlp"),
    # the default Fashion-MNIST CNN settings (Adam 1e-3, batch 64) on a 6400-example cut: 100 steps an epoch
    "fmnist-cnn": dict(dataset="fashion-mnist", model="cnn", train_size=6400, test_size=2000, epochs=4),
}
ENGINES = {  # bridge engine run -> standalone script, its environment
    "keras:fit": ("keras_fit.py", {"KERAS_BACKEND": "tensorflow"}),
    "keras:loop": ("tf_loop.py", {}),
    "keras-jax:fit": ("keras_fit.py", {"KERAS_BACKEND": "jax"}),
    "keras-torch:fit": ("keras_fit.py", {"KERAS_BACKEND": "torch"}),
    "torch:loop": ("torch_loop.py", {}),
    "jax:jit": ("jax_jit.py", {}),
}
CPU_ONLY = {"CUDA_VISIBLE_DEVICES": "-1", "JAX_PLATFORMS": "cpu"}


def options(argv=None):
    p = argparse.ArgumentParser(prog="python bench/overhead.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=5, help="bridge/standalone pairs per case and engine (default 5)")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated: {', '.join(CASES)}")
    p.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated: {', '.join(ENGINES)}")
    p.add_argument("--epochs", type=int, default=0, help="override every case's epochs (at least 2; 0 = the case's)")
    p.add_argument("--out", default="results/overhead", help="folder for overhead.csv and overhead.md")
    a = p.parse_args(argv)
    a.cases, a.engines = a.cases.split(","), a.engines.split(",")
    for name, values, known in (("case", a.cases, CASES), ("engine", a.engines, ENGINES)):
        bad = [v for v in values if v not in known]
        if bad:
            p.error(f"{name} {bad[0]!r} is not known; accepted: {', '.join(known)}")
    if a.pairs < 1:
        p.error(f"--pairs {a.pairs}: give at least 1")
    if a.epochs == 1 or a.epochs < 0:
        p.error(f"--epochs {a.epochs}: a steady epoch needs at least 2 epochs")
    return a


def case_spec(name: str, epochs: int):
    values = dict(CASES[name])
    if epochs:
        values["epochs"] = epochs
    return from_mapping(values)


def compare_args(spec) -> list[str]:
    """The bridge.compare options that give ``spec`` (every field that differs from the defaults)."""
    default = from_mapping({"dataset": spec.dataset})
    return [f"--{k}={v}" for k, v in spec.to_dict().items()
            if k not in ("engines", "repeats", "timeout") and v != getattr(default, k)] + [f"--dataset={spec.dataset}"]


def run_bridge(spec, engine: str, out: Path) -> dict:
    cmd = [sys.executable, "-m", "bridge.compare", *compare_args(spec), f"--engines={engine}", f"--out={out}",
           "--fresh", "--overwrite", "--quiet", "--no-report"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    frame = store.read_frame(out)
    times = epoch_times(frame).iloc[0]
    last = frame[(frame.split == "test") & (frame.metric == "loss")].sort_values("epoch").iloc[-1]
    return {"steady_s": float(times.steady_epoch_s), "first_s": float(times.first_epoch_s),
            "test_loss": float(last.value), "plan_hash": batchplan.open_plan(out / "plan").spec_hash}


def run_standalone(engine: str, plan_dir: Path, out: Path) -> dict:
    script, env = ENGINES[engine]
    cmd = [sys.executable, str(STANDALONE / script), str(plan_dir), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env={**os.environ, **CPU_ONLY, **env})
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    doc = json.loads(out.read_text())
    epochs = pd.DataFrame({"engine": engine, "mode": "", "repeat": 0, "metric": "epoch_s",
                           "epoch": range(len(doc["epoch_s"])), "value": doc["epoch_s"]})
    times = epoch_times(epochs).iloc[0]  # bridge's steady-state definition, for both sides
    return {"steady_s": float(times.steady_epoch_s), "first_s": float(times.first_epoch_s),
            "test_loss": doc["test_loss"]}


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (case, engine), g in runs.groupby(["case", "engine"], sort=False):
        ok = g.dropna(subset=["steady_s"])
        wide = ok.pivot(index="pair", columns="side", values="steady_s").dropna()
        loss = ok.pivot(index="pair", columns="side", values="test_loss").dropna()
        errors = g["error"].dropna().astype(str)
        errors = errors[errors != ""]
        row = {"case": case, "engine": engine, "pairs": len(wide), "error": errors.iloc[0] if len(errors) else ""}
        if len(wide):
            ratio = wide["bridge"] / wide["standalone"]
            alone = wide["standalone"]
            row.update(bridge_s=wide["bridge"].median(), standalone_s=alone.median(), ratio=ratio.median(),
                       ratio_min=ratio.min(), ratio_max=ratio.max(), noise=alone.max() / alone.min() - 1,
                       loss_rel_diff=float((abs(loss["bridge"] - loss["standalone"]) / abs(loss["standalone"])).max()))
            row["verdict"] = verdict(row)
        else:
            row["verdict"] = "failed"
        rows.append(row)
    return pd.DataFrame(rows)


def verdict(row: dict) -> str:
    if row["loss_rel_diff"] > LOSS_AGREEMENT:
        return "not the same experiment (test losses differ)"
    if row["ratio_max"] <= TARGET:
        return f"within {TARGET:.2f}x"
    if row["ratio_min"] > TARGET:
        return f"over {TARGET:.2f}x"
    return f"undecided: pairs span {TARGET:.2f}x"


def table(summary: pd.DataFrame) -> str:
    f = format_seconds
    lines = ["| case | engine | bridge steady epoch | standalone | ratio (median) | ratio min–max | standalone spread "
             "| test-loss diff | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for r in summary.to_dict("records"):
        if r["verdict"] == "failed":
            lines.append(f"| {r['case']} | {r['engine']} | failed: {r['error']} | | | | | | failed |")
            continue
        lines.append(f"| {r['case']} | {r['engine']} | {f(r['bridge_s'])} | {f(r['standalone_s'])} | "
                     f"{r['ratio']:.3f} | {r['ratio_min']:.3f}–{r['ratio_max']:.3f} | {100 * r['noise']:.1f}% | "
                     f"{r['loss_rel_diff']:.1e} | {r['verdict']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    a = options(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, started = [], time.monotonic()
    total = len(a.cases) * len(a.engines) * a.pairs * 2
    for case in a.cases:
        spec = case_spec(case, a.epochs)
        plan_dir = out / case / "plan"
        plan = batchplan.prepare(spec, plan_dir)  # the standalone scripts read this folder
        for pair in range(a.pairs):
            for engine in a.engines:
                sides = ("bridge", "standalone") if pair % 2 == 0 else ("standalone", "bridge")
                for side in sides:
                    where = out / case / engine.replace(":", "-") / f"{side}-{pair}"
                    if side == "bridge":
                        got = run_bridge(spec, engine, where)
                        if "plan_hash" in got and got.pop("plan_hash") != plan.spec_hash:
                            sys.exit(f"bridge ran another experiment than the standalone plan in {plan_dir}")
                    else:
                        where.mkdir(parents=True, exist_ok=True)
                        got = run_standalone(engine, plan_dir, where / "result.json")
                    rows.append({"case": case, "engine": engine, "pair": pair, "side": side, **got})
                    done = len(rows)
                    eta = (time.monotonic() - started) / done * (total - done)
                    shown = format_seconds(got["steady_s"]) if "steady_s" in got else got["error"]
                    print(f"[{done}/{total}, ~{eta / 60:.0f} min left] {case} {engine} {side}: {shown}", flush=True)
    runs = pd.DataFrame(rows)
    for col in ("steady_s", "first_s", "test_loss", "error"):
        if col not in runs:
            runs[col] = np.nan
    runs.to_csv(out / "overhead.csv", index=False)
    summary = summarise(runs)
    text = table(summary)
    (out / "overhead.md").write_text(text + "\n")
    print(text)
    return 1 if (summary.verdict == "failed").any() else 0


if __name__ == "__main__":
    sys.exit(main())
