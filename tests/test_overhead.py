"""bench/overhead.py and the standalone scripts it measures bridge against: they train what bridge trains
(same final test loss), import nothing of bridge, and the harness's table says so."""
from __future__ import annotations

import ast
import subprocess
import sys

import pandas as pd

from tests.support import ROOT, needs_jax, needs_torch

STANDALONE = ROOT / "bench" / "standalone"


def test_the_standalone_scripts_import_nothing_of_bridge():
    scripts = sorted(STANDALONE.glob("*.py"))
    assert {p.name for p in scripts} >= {"keras_fit.py", "tf_loop.py", "torch_loop.py", "jax_jit.py", "plan_files.py"}
    for path in scripts:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "bridge" or n.startswith("bridge.") for n in names), (path.name, names)


@needs_torch
@needs_jax
def test_overhead_pairs_bridge_with_standalone_runs_of_the_same_experiment(tmp_path):
    out = tmp_path / "overhead"
    proc = subprocess.run([sys.executable, "bench/overhead.py", "--pairs", "1", "--cases", "iris-mlp",
                           "--engines", "torch:loop,jax:jit", "--epochs", "4", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = pd.read_csv(out / "overhead.csv")
    assert sorted(zip(runs.engine, runs.side)) == [("jax:jit", "bridge"), ("jax:jit", "standalone"),
                                                   ("torch:loop", "bridge"), ("torch:loop", "standalone")]
    assert (runs.steady_s > 0).all() and runs.error.isna().all()
    for engine, g in runs.groupby("engine"):
        losses = g.set_index("side").test_loss
        assert abs(losses["bridge"] - losses["standalone"]) <= 1e-4 * losses["standalone"], engine
    table = (out / "overhead.md").read_text()
    assert table == proc.stdout[proc.stdout.index("| case"):]
    assert "| iris-mlp | torch:loop |" in table and "| iris-mlp | jax:jit |" in table and "failed" not in table


def test_overhead_refuses_an_unknown_engine():
    proc = subprocess.run([sys.executable, "bench/overhead.py", "--engines", "torch:fit"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "engine 'torch:fit' is not known" in proc.stderr
