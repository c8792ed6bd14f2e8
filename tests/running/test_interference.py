"""What other processes take from the machine is measured, not guessed: a real busy process, started here
and killed by its pid, while an engine trains makes that run ``disturbed`` with the share it took; before
the first engine starts, a busy machine is said in one line, waited for, or refused.

The engine is tests/doubles/slow_engine.py: the reference's training with a pause inside each timed epoch,
so the run's timed epochs last long enough (about a second) to be measured in the kernel's 10 ms ticks."""
import os
import signal
import subprocess
import sys
import time

import pytest

from bridge.results.timing import others_cores
from bridge.running import interference
from tests import support
from tests.support import run_compare

SLOW = "tests.doubles.slow_engine"
ARGS = ("--engines", SLOW, "--epochs", "8", "--quiet", "--no-report")


@pytest.fixture
def busy_core():
    """One core kept busy by another process for the test's duration."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def slow_run(tmp_path, name: str, *more: str):
    return run_compare(*ARGS, *more, out=tmp_path / name, env=support.environment(BRIDGE_SLOW_ENGINE_S="0.12"))


def only_run(run) -> dict:
    (engine,) = run.summary["engines"]
    (row,) = run.summary["summary"]
    return {"others": engine["others_cores"], "row": row}


def test_a_busy_core_while_an_engine_trains_marks_the_run_disturbed(tmp_path, busy_core):
    run = slow_run(tmp_path, "busy")
    assert run.returncode == 0, run.stderr
    got = only_run(run)
    assert 0.6 < got["others"] < 1.5, got  # one core of another process, as measured
    assert got["row"]["disturbed"] is True and got["row"]["others_cores"] == pytest.approx(got["others"])
    assert f"{SLOW}/slow disturbed: others used {got['others']:.2f} of {os.cpu_count()} cores" in run.stderr
    assert "DISTURBED" in run.stdout  # the table's machine column, even with --quiet
    assert "the machine is busy: others used" in run.stderr  # said before the first engine started
    frame = run.frame
    assert frame[frame.metric == "others_cores"].value.iloc[0] == pytest.approx(got["others"])


def test_the_same_run_on_a_quiet_machine_reads_far_less(tmp_path, busy_core):
    busy = only_run(slow_run(tmp_path, "busy"))["others"]
    os.kill(busy_core.pid, signal.SIGKILL)
    busy_core.wait()
    quiet_run = slow_run(tmp_path, "quiet")
    quiet = only_run(quiet_run)["others"]
    assert quiet < 0.5 and busy - quiet > 0.6, (quiet, busy)
    assert "the machine is busy" not in quiet_run.stderr


def test_refuse_busy_runs_nothing_and_wait_quiet_says_it_waited(tmp_path, busy_core):
    refused = run_compare(*ARGS, "--refuse-busy", "--wait-quiet", "1", out=tmp_path / "refused")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "bridge.compare: error: the machine is busy after waiting 1 s: others used")
    assert "nothing was run" in refused.stderr and not (tmp_path / "refused").exists()


def test_the_default_thread_count_is_the_cores_this_process_may_use(tmp_path):
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        pytest.skip("needs CPU affinity (Linux) and two cores or more")
    code = ("import os, runpy, sys; os.sched_setaffinity(0, {0}); "
            f"sys.argv = ['bridge.compare', '--engines', 'reference', '--epochs', '2', '--no-report', "
            f"'--out', {str(tmp_path / 'one')!r}]; runpy.run_module('bridge.compare', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=support.ROOT, env=support.environment(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"threads 1 (the cores this process may use: its CPU affinity allows 1 of {os.cpu_count()})" in proc.stdout
    assert interference.usable_cores()[0] == len(os.sched_getaffinity(0))


def _others_while(seconds: float) -> tuple[float, float]:
    """What a :class:`Meter` in this process reads as others over ``seconds`` of sleep, and what it read
    as this process tree's own (descendants included), each in cores."""
    meter = interference.Meter()
    meter.start()
    time.sleep(seconds)
    window = meter.stop()
    start, stop = window["start"], window["stop"]
    wall = stop["t"] - start["t"]
    own = (stop["own_s"] - start["own_s"]) / wall
    return others_cores([window]), own


def test_a_process_the_worker_started_is_its_own_work_and_a_stranger_is_not():
    """A framework's helper process (a descendant: spinning here) counts as the run's own CPU; the same
    spinner started outside the tree (double fork, its parent gone) counts as others."""
    helper = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # started and spinning
        others, own = _others_while(1.5)
    finally:
        os.kill(helper.pid, signal.SIGKILL)
        helper.wait()
    assert own > 0.6 and others < 0.5, (own, others)
    launcher = subprocess.run([sys.executable, "-c",
                               "import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', "
                               "'while True: pass'], start_new_session=True, stdout=subprocess.DEVNULL, "
                               "stderr=subprocess.DEVNULL).pid)"],
                              capture_output=True, text=True, timeout=60)
    stranger = int(launcher.stdout)
    try:
        time.sleep(0.3)
        others, own = _others_while(1.5)
    finally:
        os.kill(stranger, signal.SIGKILL)
    assert others > 0.6 and own < 0.3, (own, others)
