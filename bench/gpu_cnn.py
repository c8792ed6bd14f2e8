"""The CNN comparison on a CUDA machine, for the engines that machine has.

    python bench/gpu_cnn.py [OUT]                  (default OUT: ./gpu-cnn)
    python bench/gpu_cnn.py OUT --device cpu --quick   (a small dry run of the script itself)

Two runs on synthetic Fashion-MNIST-shaped data (no download needed):
1. parity — 10 CNN steps, Adam, every available GPU engine against the NumPy reference (on the CPU),
   each against the reference variant of its max-pool gradient rule (bridge.experiment.semantics; on a GPU every
   engine's rule is compared with the exact variant, cuDNN's tie rule being undocumented);
2. speed — 3 epochs of 12,800 examples at batch 128, 3 repeats, engines interleaved; steady-state
   epoch time and time to first epoch, as ratios to the first engine that ran.
Every worker starts with NVIDIA_TF32_OVERRIDE=0 (cuBLAS and cuDNN honour it); the Python engines also
turn TF32 off through their own settings. Every engine reports ``reduced_precision`` and, in its framework's
words, ``precision``, and synchronises the device before reading its clocks.
Needs bridge's dependencies importable (``pip install -e '.[torch,jax]'`` or equivalent).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bridge.experiment.spec import Spec
from bridge.results.parity import rel_diff
from bridge.results.summary import format_table
from bridge.running import runner, selection

GPU_ENGINES = ("torch", "jax", "keras", "keras-jax", "keras-torch", "flux", "knet")
DATA = dict(dataset="synthetic", model="cnn", synthetic_shape="1,28,28")
SPEED = dict(synthetic_samples=12800, epochs=3, repeats=3)
QUICK = dict(synthetic_samples=640, epochs=2, repeats=1)


def available(device: str) -> tuple[str, ...]:
    """The GPU-capable engines that can run on ``device`` here; each one left out is named with why (knet on
    a GPU of compute capability 9.0 or later, an engine not installed or not set up)."""
    names = []
    for engine in GPU_ENGINES:
        reason = selection.unavailable_reason(engine, device=device)
        if reason:
            print(f"left out: {reason}", flush=True)
        else:
            names.append(engine)
    if not names:
        sys.exit(f"no GPU-capable engine can run on {device} here (torch, jax, keras, flux, knet)")
    return tuple(names)


def parity_pass(engines, out: Path, device: str) -> None:
    spec = Spec(engines=("reference", *engines), synthetic_samples=320, batch_size=32, epochs=1,
                optimizer="adam", learning_rate=0.001, device=device, **DATA)
    res = runner.run(spec, out)
    steps = res.frame[res.frame.metric == "step_loss"]
    losses = {f"{e}/{m}": g.sort_values("step").value.to_numpy()[:10]
              for (e, m), g in steps.groupby(["engine", "mode"])}
    print("parity, CNN, Adam, first 10 steps, max relative step-loss difference vs the reference (float64, CPU):")
    for label, run in res.semantics.get("maxpool_gradient", {}).items():
        ref = run["compared_with"]
        if ref and label in losses and ref in losses:
            print(f"  {label} ({run['maxpool_gradient']} max-pool gradient) vs {ref}: "
                  f"{rel_diff(losses[label], losses[ref]).max():.2e}")
    for o in res.outcomes:
        if o.failed:
            print(f"  {o.message}")


def speed_pass(engines, out: Path, device: str, sizes: dict) -> None:
    spec = Spec(engines=engines, batch_size=128, optimizer="adam", learning_rate=0.001, device=device,
                **sizes, **DATA)
    res = runner.run(spec, out)
    print(format_table(res.summary))
    ok = res.summary.dropna(subset=["steady_epoch_s"])
    if len(ok):
        base = ok.iloc[0]
        print(f"ratios to {base.engine} (steady-state epoch time, time to first epoch):")
        for _, row in ok.iterrows():
            print(f"  {row.engine}: {row.steady_epoch_s / base.steady_epoch_s:.2f}x, "
                  f"{row.first_epoch_s / base.first_epoch_s:.2f}x")
    for o in res.outcomes:
        if o.report:
            print(f"  {o.run.label} r{o.repeat}: device {o.report.get('device')}, reduced precision "
                  f"{o.report.get('reduced_precision')} ({o.report.get('precision')})")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", nargs="?", default="gpu-cnn", help="results folder (default: ./gpu-cnn)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    p.add_argument("--engines", help="comma-separated subset (default: every GPU-capable engine installed)")
    args = p.parse_args()
    engines = tuple(args.engines.split(",")) if args.engines else available(args.device)
    print(f"engines: {', '.join(engines)}; device {args.device}", flush=True)
    parity_pass(engines, Path(args.out) / "parity", args.device)
    speed_pass(engines, Path(args.out) / "speed", args.device, QUICK if args.quick else SPEED)
