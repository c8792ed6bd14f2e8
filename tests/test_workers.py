"""Engines run isolated: one that raises, exits hard or hangs never loses the others' results."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def test_failing_engines_leave_the_others_results_and_a_nonzero_exit(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    engines = "reference,tests.faulty_engines:raise,tests.faulty_engines:exit,tests.faulty_engines:hang"
    proc = subprocess.run([sys.executable, "-m", "bridge.compare", "--engines", engines, "--epochs", "3",
                           "--timeout", "20", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr
    assert "tests.faulty_engines/raise failed: FloatingPointError: loss became NaN at step 3" in err
    assert "tests.faulty_engines/exit exited with code 3" in err
    assert "tests.faulty_engines/hang passed its timeout of 20 s" in err
    frame = pd.read_csv(out / "results.csv")
    ref = frame[frame.engine == "reference"]
    assert sorted(ref[ref.metric == "accuracy"].epoch.unique()) == [0, 1, 2]
    summary = json.loads((out / "summary.json").read_text())
    status = {e["mode"]: e["status"] for e in summary["engines"]}
    assert status == {"float64": "ok", "raise": "error", "exit": "crashed", "hang": "timeout"}
    assert "reference/float64" in proc.stdout  # the table still shows the engine that ran


def test_an_unknown_engine_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bridge.compare", "--engines", "reference,pytorch3",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "engine 'pytorch3' is not known; accepted: reference, keras, keras-jax, keras-torch, torch, jax, flux, knet" in proc.stderr


def test_an_engine_run_stopped_by_its_timeout_alone_makes_the_exit_code_1(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "bridge.compare", "--engines", "reference,tests.faulty_engines:hang",
                           "--epochs", "2", "--timeout", "8", "--no-report", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert {e["mode"]: e["status"] for e in summary["engines"]} == {"float64": "ok", "hang": "timeout"}
    assert "tests.faulty_engines/hang passed its timeout of 8 s" in proc.stderr
