"""``--threads`` reaches every engine: with ``--threads 1`` each available engine must report (``threads`` in
its report in summary.json, the ``threads`` column of results.csv) the one thread it was given, where
left to itself it would take every core. One comparison run holds every available engine, and a test
engine (tests/doubles/fixed_logits_engine.py) that reports the thread variables its worker runs with (those a
framework loaded late, such as Julia's, reads).
"""
import pandas as pd
import pytest

from bridge.results.records import EngineMode
from bridge.running import selection
from bridge.running.worker import THREAD_VARIABLES
from tests.support import run_compare

PROBE = "tests.doubles.fixed_logits_engine"
RUNS = [EngineMode(e, m) for e, m in selection.resolve(())]
AVAILABLE = [r for r in RUNS if not selection.unavailable_reason(r.engine)]

@pytest.fixture(scope="module")
def one_thread(tmp_path_factory):
    if not AVAILABLE:
        pytest.skip("no engine can run here")
    engines = ",".join([f"{r.engine}:{r.mode}" for r in AVAILABLE] + [PROBE])
    run = run_compare("--engines", engines, "--threads", "1", "--dataset", "iris", "--epochs", "1", "--no-report",
                      "--quiet", out=tmp_path_factory.mktemp("threads"), timeout=600)
    return run.proc, run.summary, pd.read_csv(run.out / "results.csv", dtype={"threads": str})


@pytest.mark.parametrize("run", RUNS, ids=[r.label for r in RUNS])
def test_the_engine_reports_the_threads_it_was_given(one_thread, run):
    reason = selection.unavailable_reason(run.engine)
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
