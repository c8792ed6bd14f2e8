"""The README's SLURM recipe, run as written against a real one-node SLURM cluster started here
(tests/sweep/slurm_cluster.py: munge, slurmctld and slurmd on localhost).

The script is the README's Python block, verbatim but for the two values the README tells a user to set
for their cluster (``memory``, one node's; ``jobs``). It runs a small Iris sweep of the NumPy reference,
and the tests check what the Dask tests check: every point's step losses equal an embedded run's, the
worker column names a worker that a SLURM job started, and no job or engine process is left at the end; then
a job cancelled with ``scancel`` in the middle of a point, and Ctrl-C on the client.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bridge.results import store as results
from bridge.sweep import results as sweepresults
from tests.support import ROOT, environment
from tests.sweep import slurm_cluster

pytest.importorskip("distributed", reason="Dask distributed is not installed: pip install 'bridge[sweep]'")
pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is not installed: pip install 'bridge[sweep]'")

README_VALUES = {'memory="32GB"': 'memory="1GB"', "jobs=8": "jobs=2"}
"""What a user sets for their cluster (the README says so), as set for this one node."""
IRIS = ["--dataset", "iris", "--engines", "reference", "--grid", "batch_size=8,16", "--no-report"]


def readme_script() -> str:
    """The README's Python block after "On SLURM", with :data:`README_VALUES` set."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"On SLURM.*?```python\n(.*?)```", text, re.S).group(1)
    for written, here in README_VALUES.items():
        assert block.count(written) == 1, f"the README's SLURM recipe no longer sets {written}"
        block = block.replace(written, here)
    return block


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    absent = slurm_cluster.missing()
    if absent:
        pytest.skip(f"SLURM is not installed here (missing: {', '.join(absent)}; Debian: apt-get install -y "
                    "slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("a one-node SLURM cluster needs root here: slurmd starts jobs as their user")
    cluster = slurm_cluster.SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def start_script(slurm, folder: Path, *args: str) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "sweep_on_slurm.py"
    script.write_text(readme_script())
    return subprocess.Popen([sys.executable, str(script), *args], cwd=folder, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment(**slurm.environment()))


def left_behind(slurm, timeout: float = 30) -> tuple[list[str], str]:
    """Jobs still queued and engine or Dask worker processes still running, after up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = slurm.jobs()
        procs = subprocess.run(["pgrep", "-af", "bridge.running.worker|distributed.cli.dask_worker|dask_jobqueue"],
                               capture_output=True, text=True).stdout.strip()
        if (not jobs and not procs) or time.monotonic() > deadline:
            return jobs, procs
        time.sleep(0.5)


def step_losses(folder: Path):
    frame = results.read_frame(folder)
    return frame[frame.metric == "step_loss"].sort_values(["engine", "mode", "repeat", "step"]).value.to_numpy()


def job_logs(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted((folder / "slurm-logs").glob("*")))


def test_the_readme_recipe_runs_a_sweep_on_slurm_as_an_embedded_cluster_runs_it(slurm, tmp_path):
    proc = start_script(slurm, tmp_path / "slurm", *IRIS, "--epochs", "3", "--out", "sweep")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stdout + stderr
    out = tmp_path / "slurm" / "sweep"
    local = subprocess.run([sys.executable, "-m", "bridge.sweep", *IRIS, "--epochs", "3", "--out",
                            str(tmp_path / "local")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr
    frame, definition = sweepresults.read_table(out)
    assert len(frame) == 2 and (frame.status == "ok").all(), frame
    for point in definition["points"]:
        a = step_losses(out / "points" / point["point"])
        assert len(a) == 3 * -(-120 // int(point["batch_size"]))
        np.testing.assert_array_equal(a, step_losses(tmp_path / "local" / "points" / point["point"]))
    # each point ran on a Dask worker that a SLURM job started: its job log names the worker's address
    logs = job_logs(tmp_path / "slurm")
    assert all(w.startswith("tcp://") and w in logs for w in frame.worker), (frame.worker.tolist(), logs[-2000:])
    jobs, procs = left_behind(slurm)
    assert jobs == [] and procs == "", (jobs, procs)


def test_a_job_cancelled_in_the_middle_of_a_point_has_the_point_run_again_on_another_job(slurm, tmp_path):
    # about 10 s a point: long enough to cancel the job running it
    proc = start_script(slurm, tmp_path / "slurm", *IRIS, "--epochs", "1500", "--out", "sweep")
    cancelled, lines = None, []
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        lines.append(line)
        if cancelled is None and "started on" in line:
            time.sleep(2)  # in the middle of its point
            running = slurm.run("squeue", "-h", "-t", "RUNNING", "-o", "%i").stdout.split()
            assert len(running) == 1, running  # --exclusive: one job on the node at a time
            cancelled = running[0]
            slurm.run("scancel", cancelled)
        if time.monotonic() > deadline:
            proc.kill()
            break
    proc.wait(timeout=120)
    stdout = "".join(lines)
    assert cancelled is not None and proc.returncode == 0, stdout + proc.stderr.read()
    frame, _ = sweepresults.read_table(tmp_path / "slurm" / "sweep")
    assert len(frame) == 2 and (frame.status == "ok").all(), frame
    assert frame.attempts.max() == 2 and "(attempt 2)" in stdout, frame[["point", "worker", "attempts"]]
    jobs, procs = left_behind(slurm)
    assert jobs == [] and procs == "", (jobs, procs)


def test_ctrl_c_on_the_client_keeps_finished_points_and_cancels_the_jobs(slurm, tmp_path):
    proc = start_script(slurm, tmp_path / "slurm", *IRIS, "--epochs", "1500", "--out", "sweep")
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if " done" in line and "point " in line:  # the first point finished
            break
    time.sleep(1)  # the second point runs
    proc.send_signal(signal.SIGINT)
    rest, stderr = proc.communicate(timeout=120)
    stdout = "".join(lines) + rest
    assert proc.returncode == 130, stdout + stderr
    frame, _ = sweepresults.read_table(tmp_path / "slurm" / "sweep")
    assert len(frame[frame.status == "ok"]) == 1, frame
    assert "resume with: python -m bridge.sweep" in stderr, stderr
    jobs, procs = left_behind(slurm)
    assert jobs == [] and procs == "", (jobs, procs)
