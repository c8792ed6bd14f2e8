"""``--threads`` reaches every engine: with ``--threads 1`` each available engine must report (``threads`` in
its report in summary.json, the ``threads`` column of results.csv) the one thread it was given, where
left to itself it would take every core. One comparison run holds every available engine, and a test
engine (tests/fixed_logits_engine.py) that reports the thread variables its worker runs with (those a
framework loaded late, such as Julia's, reads).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bridge import registry
from bridge.worker import THREAD_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
PROBE = "tests.fixed_logits_engine"
RUNS = registry.resolve(())
AVAILABLE = [r for r in RUNS if not registry.unavailable_reason(r.engine)]

@pytest.fixture(scope="module")
def one_thread(tmp_path_factory):
    if not AVAILABLE:
        pytest.skip("no engine can run here")
    out = tmp_path_factory.mktemp("threads")
    engines = ",".join([f"{r.engine}:{r.mode}" for r in AVAILABLE] + [PROBE])
    proc = subprocess.run([sys.executable, "-m", "bridge.compare", "--engines", engines, "--threads", "1",
                           "--dataset", "iris", "--epochs", "1", "--out", str(out), "--no-report", "--quiet"],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600)
    summary = json.loads((out / "summary.json").read_text())
    frame = pd.read_csv(out / "results.csv", dtype={"threads": str})
    return proc, summary, frame


@pytest.mark.parametrize("run", RUNS, ids=[r.label for r in RUNS])
def test_the_engine_reports_the_threads_it_was_given(one_thread, run):
    reason = registry.unavailable_reason(run.engine)
    if reason:
        pytest.skip(f"{run.label} is unavailable: {reason}")
    proc, summary, frame = one_thread
    assert summary["fingerprint"]["threads_requested"] == 1
    (entry,) = [e for e in summary["engines"] if (e["engine"], e["mode"]) == (run.engine, run.mode)]
    assert entry["status"] == "ok", (entry["message"], proc.stderr)
    assert entry["report"]["threads"] == 1, entry["report"]
    rows = frame[(frame.engine == run.engine) & (frame["mode"] == run.mode)]
    assert len(rows) and set(rows.threads) == {"1"}


def test_every_worker_runs_with_the_thread_variables_it_was_given(one_thread):
    proc, summary, _ = one_thread
    (entry,) = [e for e in summary["engines"] if e["engine"] == PROBE]
    assert entry["status"] == "ok", (entry["message"], proc.stderr)
    assert entry["report"]["thread_variables"] == {name: "1" for name in THREAD_VARIABLES}
