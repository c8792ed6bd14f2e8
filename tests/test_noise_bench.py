"""bench/noise.py and bench/between_epochs.py run and say what they measured: the smallest runs of each
(the benchmarks themselves take tens of minutes and are not tests; their figures are in the README)."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd

from tests.support import ROOT, needs_torch


@needs_torch
def test_noise_detection_marks_the_run_beside_a_busy_core(tmp_path):
    out = tmp_path / "noise"
    proc = subprocess.run([sys.executable, "bench/noise.py", "--parts", "detection", "--quiet-runs", "1",
                           "--busy-runs", "1", "--epochs", "60", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = pd.read_csv(out / "detection.csv").set_index("machine")
    assert sorted(runs.index) == ["busy", "quiet"]
    busy = runs.loc["busy"]
    assert busy.disturbed and busy.others_cores > 0.6, busy  # a whole other process spinning on one core
    assert runs.steady_epoch_s.gt(0).all()
    text = (out / "noise.md").read_text()
    assert text.startswith("Detection (torch:loop, threshold 0.25 cores)") and "| busy | 1 | 1 |" in text


@needs_torch
def test_between_epochs_compares_every_condition_with_the_back_to_back_epoch():
    proc = subprocess.run([sys.executable, "bench/between_epochs.py", "--rounds", "3"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("torch Iris epoch after each kind of work, median of 3")
    names = [line.split("  ")[1].strip() for line in lines[1:]]
    assert names[:4] == ["back to back", "evaluate", "worker", "worker + scan"]
    assert lines[1].endswith(" 1.000x") and all(line.endswith("x") for line in lines[1:])
