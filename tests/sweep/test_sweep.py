"""bridge.sweep: the grid, a sweep on the embedded Dask cluster checked against its points' own results, a
real ``dask scheduler`` with two ``dask worker`` processes on 127.0.0.1 (same step losses as the embedded
run; a worker killed mid-sweep and its point retried), Ctrl-C and resume, the report in Chromium.

Every sweep runs as ``python -m bridge.sweep`` in a subprocess; the engines are the NumPy reference and,
where installed, keras (each in its own worker process, as always).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bridge.results import store as results
from bridge.results.summary import epoch_times, format_interval
from bridge.running import selection
from bridge.sweep import grid
from bridge.sweep.cluster import RESOURCE
from bridge.sweep import report as sweep_report
from bridge.sweep import results as sweepresults
from bridge.experiment.spec import from_mapping, toml_values

from tests.support import ROOT

pytest.importorskip("distributed", reason="Dask distributed is not installed: pip install 'bridge[sweep]'")

DASK = Path(sys.executable).with_name("dask")
IRIS = ["--dataset", "iris", "--epochs", "3"]


def run_sweep(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge.sweep", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, **kw)


def step_losses(folder: Path) -> pd.DataFrame:
    frame = results.read_frame(folder)
    return frame[frame.metric == "step_loss"].sort_values(["engine", "mode", "repeat", "step"])


# --- the grid ---------------------------------------------------------------------------------------------------

def test_grid_axes_and_points():
    assert grid.parse_axis("batch_size=16,64") == ("batch_size", ["16", "64"])
    assert grid.parse_axis("hidden=64,256/128") == ("hidden", ["64", "256,128"])
    pts = grid.points({"dataset": "fashion-mnist"}, {"batch_size": ["16", "64"], "hidden": ["64", "256,128"]})
    assert [(p.spec.batch_size, p.spec.hidden) for p in pts] == [(16, (64,)), (16, (256, 128)), (64, (64,)),
                                                                 (64, (256, 128))]
    assert pts[1].label == "batch_size=16 hidden=256/128" and len({p.key for p in pts}) == 4
    assert pts[0].spec.learning_rate == 0.001  # each point takes its data set's defaults
    assert grid.table_axes({"hidden": [64, [256, 128]], "batch_size": [16]}) == {
        "hidden": [[64], [256, 128]], "batch_size": [16]}
    assert from_mapping({"dataset": "iris"}).hash() == grid.points({"dataset": "iris"}, {"seed": ["0"]})[0].key


@pytest.mark.parametrize("grid, message", [
    ("batch_size", "--grid 'batch_size' is not FIELD=V1,V2"),
    ("engines=keras,torch", "'engines' cannot be a grid axis"),
    ("colour=red", "'colour' cannot be a grid axis"),
    ("batch_size=16,0", "batch_size must be greater than zero, got 0"),
    ("batch_size=16,16", "are the same experiment"),
    ("filters=8,16", "the mlp has no filters"),
])
def test_bad_grids_are_one_line_usage_errors(grid, message, tmp_path):
    proc = run_sweep(*IRIS, "--grid", grid, "--out", str(tmp_path / "s"), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


def test_without_dask_the_sweep_says_how_to_install_it(tmp_path):
    # Dask is installed here; this stands in for a machine without it by refusing the import
    code = ("import sys\n"
            "class Refuse:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'distributed':\n"
            "            raise ImportError('no distributed here')\n"
            "sys.meta_path.insert(0, Refuse())\n"
            "from bridge import sweep\n"
            f"sys.exit(sweep.main(['--grid', 'batch_size=8,16', '--out', {str(tmp_path / 's')!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "pip install 'bridge[sweep]'" in proc.stderr, proc.stderr


# --- the embedded cluster ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """A 2x2 grid (batch size x hidden width) with the reference and keras' fit on the embedded cluster."""
    reason = selection.unavailable_reason("keras")
    if reason:
        pytest.skip(reason)
    engines = "reference,keras:fit"
    out = tmp_path_factory.mktemp("embedded") / "sweep"
    proc = run_sweep(*IRIS, "--engines", engines, "--grid", "batch_size=16,32", "--grid", "hidden=4,8",
                     "--out", str(out))
    return out, proc, engines.split(",")


def test_a_2x2_sweep_matches_its_points_own_results(embedded):
    out, proc, engines = embedded
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4/4 points" in proc.stdout and "report written to" in proc.stdout
    assert not [line for line in proc.stderr.splitlines() if "distributed." in line], proc.stderr
    frame, definition = sweepresults.read_table(out)
    assert list(definition["axes"]) == ["batch_size", "hidden"] and len(definition["points"]) == 4
    assert len(frame) == 4 * len(engines) and (frame.status == "ok").all() and (frame.attempts == 1).all()
    assert list(frame.columns[:3]) == ["point", "batch_size", "hidden"]
    for point in definition["points"]:
        folder = out / "points" / point["point"]
        summary = results.read_summary(folder)
        assert summary["spec"]["batch_size"] == int(point["batch_size"])
        assert summary["spec"]["hidden"] == [int(point["hidden"])]
        times = epoch_times(results.read_frame(folder))
        rows = frame[frame.point == point["point"]]
        assert sorted(rows.engine) == sorted(r["engine"] for r in summary["summary"])
        for r in rows.to_dict("records"):
            t = times[(times.engine + "/" + times["mode"]) == r["engine"]].iloc[0]
            assert r["steady_epoch_s"] == pytest.approx(t.steady_epoch_s, rel=1e-12)
            assert r["first_epoch_s"] == pytest.approx(t.first_epoch_s, rel=1e-12)
            assert r["examples_per_s"] == pytest.approx(summary["work"]["examples"] / t.steady_epoch_s, rel=1e-12)
            assert r["parameters"] == summary["work"]["parameters"] == 4 * int(point["hidden"]) + int(point["hidden"]) \
                + int(point["hidden"]) * 3 + 3
            last = [x for x in summary["summary"] if x["engine"] == r["engine"]][0]
            assert r["test_accuracy"] == pytest.approx(last["test_accuracy"], rel=1e-9)  # summary.json rounds
            if r["engine"] != "reference/float64":
                assert r["parity_pass"] is True or r["parity_pass"] == "True"


def printed_table(stdout: str) -> list[list[str]]:
    """The rows of the table a sweep prints at its end, split on runs of spaces (its header first)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "steady epoch (95%)" in line)
    return [line.split() for line in lines[start:] if line.strip() and not line.startswith("sweep written")]


def test_a_sweep_ends_with_a_table_of_its_points_and_engine_runs(embedded):
    out, proc, engines = embedded
    frame, _ = sweepresults.read_table(out)
    table = printed_table(proc.stdout)
    assert table[0][:4] == ["batch_size", "hidden", "engine", "status"], table[0]
    assert len(table) == 1 + 4 * len(engines)
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "steady epoch (95%)" in line)
    assert max(len(line) for line in lines[start:start + len(table)]) <= 100, proc.stdout
    for r in frame.to_dict("records"):
        row = next(t for t in table[1:] if t[:3] == [r["batch_size"], r["hidden"], r["engine"]])
        assert row[3] == "ok" and row[-1] == f"{r['test_accuracy']:.4f}"
        assert f"{r['examples_per_s']:,.0f}" in row  # the median of one repeat
        assert format_interval(r["steady_epoch_s"], r["steady_epoch_s_low"], r["steady_epoch_s_high"]).split()[0] \
            in row


def test_the_time_left_never_grows_while_the_last_point_runs(embedded):
    out, proc, engines = embedded
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    third_done = [i for i, line in enumerate(lines) if line.startswith("[3/4 points")][0]
    left = [float(m.group(1)) * (60 if m.group(2) == "min" else 1)
            for line in lines[third_done:] if (m := re.search(r"~([0-9.]+) (s|min) left", line))]
    assert len(left) >= 2, lines
    assert all(b <= a + 1 for a, b in zip(left, left[1:])), lines  # whole seconds as printed


def test_the_sweep_report_renders_in_headless_chromium(embedded, tmp_path):
    out, proc, engines = embedded
    page = (out / "report.html").read_text()
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    for name in sweep_report.FIGURES:  # throughput, gflops, peak, steady, first_epoch, memory
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not on PATH (Debian package chromium: apt-get install -y chromium)")
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}",
                          "--dump-dom", (out / "report.html").as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr
    assert dom.stdout.count("data:image/png;base64,") == len(sweep_report.FIGURES) == 6
    assert "id=\"crossings\"" in dom.stdout and "Where the engines cross" in dom.stdout
    assert "reference/float64 vs keras/fit" in dom.stdout or "keras/fit vs reference/float64" in dom.stdout


def test_a_rerun_skips_the_finished_points(embedded):
    out, _, engines = embedded
    before = {p: (p / "summary.json").stat().st_mtime_ns for p in (out / "points").iterdir()}
    proc = run_sweep(*IRIS, "--engines", ",".join(engines), "--grid", "batch_size=16,32", "--grid", "hidden=4,8",
                     "--out", str(out), "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert "4 finished earlier, kept" in proc.stdout and "started on" not in proc.stdout
    quiet = run_sweep(*IRIS, "--engines", ",".join(engines), "--grid", "batch_size=16,32", "--grid", "hidden=4,8",
                      "--out", str(out), "--no-report", "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert "finished earlier" not in quiet.stdout and len(printed_table(quiet.stdout)) == 1 + 4 * len(engines)
    assert {p: (p / "summary.json").stat().st_mtime_ns for p in (out / "points").iterdir()} == before


# --- a real Dask cluster on 127.0.0.1 ---------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes (one thread, one bridge slot each, no nanny, so
    that a killed worker stays dead); yields (address, {worker address: process})."""
    with dask_cluster(tmp_path, workers=2, resources=True) as running:
        yield running


@contextlib.contextmanager
def dask_cluster(tmp_path: Path, workers: int, resources: bool):
    if not DASK.exists():
        pytest.skip(f"the dask command is not at {DASK}")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=open(logs / "scheduler.log", "w"), start_new_session=True)]
    started = {}
    try:
        for i in range(workers):
            wport = _free_port()
            slot = ["--resources", f"{RESOURCE}=1"] if resources else []
            p = subprocess.Popen([str(DASK), "worker", address, "--nthreads", "1", *slot,
                                  "--no-nanny", "--no-dashboard", "--host", "127.0.0.1", "--worker-port", str(wport),
                                  "--name", f"w{i}"],
                                 stdout=subprocess.DEVNULL, stderr=open(logs / f"worker{i}.log", "w"),
                                 start_new_session=True)
            procs.append(p)
            started[f"tcp://127.0.0.1:{wport}"] = p
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=60)
        yield address, started
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def test_a_sweep_on_a_dask_cluster_trains_what_the_embedded_one_trains(cluster, tmp_path):
    address, workers = cluster
    args = [*IRIS, "--engines", "reference", "--grid", "batch_size=8,16", "--no-report"]
    remote = run_sweep(*args, "--scheduler", address, "--out", str(tmp_path / "remote"))
    assert remote.returncode == 0, remote.stdout + remote.stderr
    local = run_sweep(*args, "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    frame, definition = sweepresults.read_table(tmp_path / "remote")
    assert set(frame.worker) <= set(workers) and len(frame) == 2
    for point in definition["points"]:
        a = step_losses(tmp_path / "remote" / "points" / point["point"])
        b = step_losses(tmp_path / "local" / "points" / point["point"])
        assert len(a) == 3 * -(-120 // int(point["batch_size"]))
        np.testing.assert_array_equal(a.value.to_numpy(), b.value.to_numpy())


def test_a_sweep_needs_workers_that_offer_the_bridge_resource(tmp_path):
    with dask_cluster(tmp_path, workers=1, resources=False) as (address, _):
        proc = run_sweep(*IRIS, "--engines", "reference", "--grid", "batch_size=8,16", "--scheduler", address,
                         "--out", str(tmp_path / "new" / "s"), timeout=120)
    assert proc.returncode == 2 and f"--resources {RESOURCE}=1" in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"bridge.sweep: error: --scheduler {address}:") and proc.stderr.count("\n") == 1
    assert not (tmp_path / "new").exists()  # no sweep.json, no folder


def test_a_scheduler_address_where_nothing_listens_is_refused_in_seconds_before_anything_is_written(tmp_path):
    address = f"tcp://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    proc = run_sweep(*IRIS, "--engines", "reference", "--grid", "batch_size=8,16", "--scheduler", address,
                     "--out", str(tmp_path / "new" / "s"), timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"bridge.sweep: error: --scheduler {address}: no Dask scheduler answered") \
        and proc.stderr.count("\n") == 1, proc.stderr
    assert "dask scheduler" in proc.stderr and "leave out --scheduler" in proc.stderr
    assert not (tmp_path / "new").exists() and proc.stdout == ""
    assert took < 15, took  # 5 s of trying, and starting Python


@pytest.fixture
def dashboard_port_taken():
    """Something listening on 127.0.0.1:8787, Dask's dashboard port (or already something else there)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 8787))
            s.listen()
        except OSError:
            pass  # taken already: the same situation
        yield


def test_dask_s_log_lines_go_to_the_sweep_folder_unless_verbose(tmp_path, dashboard_port_taken):
    args = [*IRIS, "--epochs", "2", "--engines", "reference", "--grid", "batch_size=16,32", "--no-report"]
    proc = run_sweep(*args, "--out", str(tmp_path / "quiet"), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not [line for line in (proc.stdout + proc.stderr).splitlines()
                if "distributed." in line or "Port 8787" in line or "Traceback" in line], proc.stderr
    log = (tmp_path / "quiet" / "dask.log").read_text()
    assert "distributed.scheduler" in log and "distributed.worker" in log  # the worker process's own lines too
    loud = run_sweep(*args, "--out", str(tmp_path / "verbose"), "--verbose", timeout=300)
    assert loud.returncode == 0, loud.stdout + loud.stderr
    assert "distributed.scheduler" in loud.stderr and not (tmp_path / "verbose" / "dask.log").exists()


def test_a_worker_killed_mid_sweep_has_its_point_retried_elsewhere(cluster, tmp_path):
    address, workers = cluster
    out = tmp_path / "sweep"
    # about 10 s a point: long enough to kill a worker in the middle of one
    proc = subprocess.Popen([sys.executable, "-m", "bridge.sweep", "--dataset", "iris", "--epochs", "1500",
                             "--engines", "reference", "--grid", "batch_size=8,16", "--scheduler", address,
                             "--out", str(out), "--no-report"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    killed, lines = None, []
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        lines.append(line)
        if killed is None and "started on" in line:
            killed = line.rsplit("started on ", 1)[1].split()[0]
            time.sleep(2)  # in the middle of its point
            workers[killed].kill()
        if time.monotonic() > deadline:
            proc.kill()
            break
    proc.wait(timeout=300)
    stdout = "".join(lines)
    assert proc.returncode == 0, stdout + proc.stderr.read()
    frame, _ = sweepresults.read_table(out)
    assert (frame.status == "ok").all() and len(frame) == 2
    retried = frame[frame.attempts == 2]
    assert len(retried) == 1 and retried.worker.iloc[0] != killed, frame[["point", "worker", "attempts"]]
    assert "(attempt 2)" in stdout
    # the killed worker's engine process did not run on: it ended with its parent
    time.sleep(2)
    left = subprocess.run(["pgrep", "-f", "bridge.running.worker .*bridge-point-"], capture_output=True, text=True).stdout
    assert not left.strip()


# --- Ctrl-C and resume ------------------------------------------------------------------------------------------

def communicate_or_show_where(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """``proc.communicate()``; should it not end within ``timeout``, fail with where it waits: its threads'
    stacks (Python's faulthandler, ``-X faulthandler``, prints them on SIGABRT) and the processes that
    still run (any of which may hold its output open)."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        running = subprocess.run(["ps", "-eo", "pid,ppid,stat,etime,args"], capture_output=True, text=True).stdout
        running = "\n".join(line for line in running.splitlines() if "python" in line or "PID" in line)
        proc.send_signal(signal.SIGABRT)
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # its output is held open by a process it started
            proc.kill()
            stdout, stderr = "", "(nothing more: its output stayed open after SIGABRT)"
        pytest.fail(f"still running {timeout} s after the signal\nprocesses then:\n{running}\n"
                    f"stdout:\n{stdout[-3000:]}\nstderr (with every thread's stack):\n{stderr[-12000:]}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_sweep_keeps_its_finished_points_and_resumes_with_the_rest(tmp_path, sig):
    """Ctrl-C, or SIGTERM as a scheduler sends it: the finished points are kept, exit 128 + the signal."""
    out = tmp_path / "sweep"
    args = ["--dataset", "iris", "--epochs", "300", "--engines", "reference", "--grid", "batch_size=8,16,32",
            "--out", str(out), "--no-report"]
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "bridge.sweep", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if " done" in line and "point " in line:
            said = line.split("point ", 1)[1].rsplit(" done", 1)[0]  # batch_size=8
            written = {f"batch_size={b}" for b in sweepresults.read_table(out)[0].batch_size}  # before its line
            proc.send_signal(sig)
            break
    stdout, stderr = communicate_or_show_where(proc, timeout=120)
    assert written == {said}, (written, said)
    assert proc.returncode == 128 + sig, "".join(lines) + stdout + stderr
    # the sweep stops by itself, or, should Dask not close, bridge stops it at the grace's end
    assert f"stopped by {signal.Signals(sig).name}" in stderr or "stopped at once" in stderr, stderr
    assert "resume with: python -m bridge.sweep" in stderr
    assert not [line for line in stderr.splitlines() if "distributed." in line], stderr
    assert "distributed.nanny" in (out / "dask.log").read_text()
    frame, _ = sweepresults.read_table(out)
    kept = set(frame.point)
    assert 1 <= len(kept) < 3 and (frame.status == "ok").all()
    stamps = {p: (out / "points" / p / "summary.json").stat().st_mtime_ns for p in kept}
    again = run_sweep(*args)
    assert again.returncode == 0, again.stderr
    assert f"{len(kept)} finished earlier, kept" in again.stdout
    assert again.stdout.count("started on") == 3 - len(kept)
    frame, _ = sweepresults.read_table(out)
    assert len(frame) == 3 and (frame.status == "ok").all()
    assert {p: (out / "points" / p / "summary.json").stat().st_mtime_ns for p in kept} == stamps
    assert json.loads((out / "sweep.json").read_text())["axes"] == {"batch_size": ["8", "16", "32"]}


# --- a [sweep] table, and a point that fails --------------------------------------------------------------------

def test_a_config_file_s_sweep_table_gives_the_grid(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text('dataset = "iris"\nepochs = 2\nengines = ["reference"]\n\n'
                      '[sweep]\nhidden = [4, [6, 5]]\nbatch_size = [32]\n')
    out = tmp_path / "sweep"
    proc = run_sweep("--config", str(config), "--out", str(out), "--no-report", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    frame, definition = sweepresults.read_table(out)
    assert definition["axes"] == {"hidden": ["4", "6/5"], "batch_size": ["32"]}
    assert sorted(frame.hidden) == ["4", "6/5"] and (frame.status == "ok").all()
    params = {r["hidden"]: r["parameters"] for r in frame.to_dict("records")}
    assert params == {"4": 4 * 4 + 4 + 4 * 3 + 3, "6/5": 4 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3}
    # a bridge.compare run with the same file ignores the [sweep] table
    spec = from_mapping(toml_values(config))
    assert spec.hidden == (10,) and spec.epochs == 2


def test_a_failing_point_is_a_row_with_its_error_and_the_others_finish(tmp_path, fashion_mnist_dir):
    # the second data folder holds no Fashion-MNIST and --data_source cache may not fetch one
    good, bad = fashion_mnist_dir, tmp_path / "empty"
    bad.mkdir()
    out = tmp_path / "sweep"
    proc = run_sweep("--dataset", "fashion-mnist", "--data_source", "cache", "--train_size", "64", "--test_size", "64",
                     "--epochs", "2", "--engines", "reference", "--grid", f"data_dir={good},{bad}", "--out", str(out),
                     "--no-report", timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    frame, _ = sweepresults.read_table(out)
    ok, failed = frame[frame.data_dir == str(good)], frame[frame.data_dir == str(bad)]
    assert len(ok) == 1 and ok.status.iloc[0] == "ok"
    assert len(failed) == 1 and failed.status.iloc[0] == "error" and str(bad) in failed.error.iloc[0]
    assert "warning: point" in proc.stderr and "sweep written to" in proc.stdout


def test_a_rerun_with_more_repeats_runs_the_points_again(tmp_path):
    """A point finished with 1 repeat is not the point asked for with 2: it runs again, and sweep.csv then
    holds both repeats of every engine run of every point."""
    out = tmp_path / "sweep"
    args = (*IRIS, "--epochs", "2", "--engines", "reference", "--grid", "batch_size=16,32", "--out", str(out),
            "--no-report")
    first = run_sweep(*args)
    assert first.returncode == 0, first.stderr
    again = run_sweep(*args, "--repeats", "2")
    assert again.returncode == 0, again.stderr
    assert "finished earlier" not in again.stdout and again.stdout.count("started on") == 2
    frame, _ = sweepresults.read_table(out)
    assert sorted(frame.groupby("point").repeat.nunique()) == [2, 2]
    kept = run_sweep(*args, "--repeats", "2")
    assert kept.returncode == 0 and "2 finished earlier, kept" in kept.stdout
