"""Engines run isolated: one that raises, exits hard or hangs never loses the others' results."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT, environment, run_compare, start_compare

FAULTY = "tests.doubles.faulty_engines"


def test_failing_engines_leave_the_others_results_and_a_nonzero_exit(tmp_path):
    run = run_compare("--engines", f"reference,{FAULTY}:raise,{FAULTY}:exit,{FAULTY}:hang", "--epochs", "3",
                      "--timeout", "20", out=tmp_path / "out")
    assert run.returncode == 1, run.stderr
    assert f"{FAULTY}/raise failed: FloatingPointError: loss became NaN at step 3" in run.stderr
    assert f"{FAULTY}/exit exited with code 3" in run.stderr
    assert f"{FAULTY}/hang passed its timeout of 20 s" in run.stderr
    ref = run.frame[run.frame.engine == "reference"]
    assert sorted(ref[ref.metric == "accuracy"].epoch.unique()) == [0, 1, 2]
    status = {e["mode"]: e["status"] for e in run.summary["engines"]}
    assert status == {"float64": "ok", "raise": "error", "exit": "crashed", "hang": "timeout"}
    assert "reference/float64" in run.stdout  # the table still shows the engine that ran


def test_an_unknown_engine_is_a_usage_error(tmp_path):
    run = run_compare("--engines", "reference,pytorch3", out=tmp_path, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0
    assert ("engine 'pytorch3' is not known; accepted: reference, keras, keras-jax, keras-torch, torch, jax, flux, "
            "knet") in run.stderr


def test_an_engine_run_stopped_by_its_timeout_alone_makes_the_exit_code_1(tmp_path):
    run = run_compare("--engines", f"reference,{FAULTY}:hang", "--epochs", "2", "--timeout", "8", "--no-report",
                      out=tmp_path / "out")
    assert run.returncode == 1, run.stderr
    assert {e["mode"]: e["status"] for e in run.summary["engines"]} == {"float64": "ok", "hang": "timeout"}
    assert f"{FAULTY}/hang passed its timeout of 8 s" in run.stderr


GIL_ENGINE = "tests.doubles.gil_engine"
GIL_PREMISE = """
import sys, threading, time
from tests.doubles.gil_engine import hold_the_gil
ticks = []
def tick():
    while True:
        ticks.append(time.monotonic()); time.sleep(0.01)
threading.Thread(target=tick, daemon=True).start()
time.sleep(0.2)
start = time.monotonic(); hold_the_gil(2); end = time.monotonic()
print(sum(start + 0.1 < t < end - 0.1 for t in ticks))
"""


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's (prctl)")
def test_a_worker_inside_a_call_that_holds_the_gil_dies_within_2_s_of_its_parent(tmp_path):
    # the premise: while the stand-in's call runs, no other Python thread of its process runs
    premise = subprocess.run([sys.executable, "-c", GIL_PREMISE], cwd=ROOT, env=environment(), capture_output=True,
                             text=True, timeout=60)
    assert premise.returncode == 0 and premise.stdout.strip() == "0", premise.stdout + premise.stderr
    mark = tmp_path / "worker.pid"
    parent = start_compare("--dataset", "iris", "--epochs", "2", "--engines", GIL_ENGINE, "--quiet", "--no-report",
                           "--out", str(tmp_path / "out"), env=environment(BRIDGE_GIL_ENGINE_MARK=str(mark)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not mark.exists() and parent.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mark.exists(), parent.stderr.read() if parent.poll() is not None else "no epoch began in 120 s"
        time.sleep(0.3)  # well inside the call
        worker = int(mark.read_text())
        assert alive(worker)
        parent.kill()  # SIGKILL: the parent can stop nothing
        parent.wait(timeout=30)
        killed = time.monotonic()
        while alive(worker) and time.monotonic() - killed < 10:
            time.sleep(0.02)
        took = time.monotonic() - killed
        assert not alive(worker), "the orphaned worker still ran 10 s after its parent was killed"
        assert took < 2, took
    finally:
        if parent.poll() is None:
            parent.kill()
        if mark.exists() and alive(int(mark.read_text())):
            os.kill(int(mark.read_text()), signal.SIGKILL)
