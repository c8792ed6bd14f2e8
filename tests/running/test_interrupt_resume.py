"""Nothing lost: Ctrl-C or SIGTERM keeps every engine run that finished and leaves no worker behind, and the
same command resumes, running only what is missing; a folder of another experiment is never overwritten.

Real `python -m bridge.compare` processes (cwd: the repository root) run the reference and
`tests.doubles.slow_engine` (the reference's training with a pause per epoch) on Iris, and get real signals once
the worker record shows the slow engine training.
"""
import importlib.util
import json
import os
import pty
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from bridge.experiment.spec import Spec
from bridge.results.records import installed_versions, same_version
from bridge.running import resume, runner
from bridge.running.stopping import Interrupted
from tests import support
from tests.support import ROOT, CompareRun, compare_command, run_compare, start_compare

ENGINES = "reference,tests.doubles.slow_engine"
SLOW_RECORD = "tests_doubles_slow_engine-slow-r0.jsonl"


def environment(slow_s: float) -> dict:
    """Each epoch of the slow engine waits ``slow_s`` seconds first."""
    return support.environment(BRIDGE_SLOW_ENGINE_S=str(slow_s))


def compare(*args, slow_s: float = 0.05, cwd=ROOT, timeout=300) -> CompareRun:
    return run_compare(*args, env=environment(slow_s), cwd=cwd, timeout=timeout)


def start(*args, slow_s: float) -> subprocess.Popen:
    return start_compare(*args, env=environment(slow_s), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def record(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    except (OSError, ValueError):
        return []


def wait_until(condition, proc: subprocess.Popen | None = None, timeout: float = 120, what: str = ""):
    """Poll ``condition`` until it holds; fail with the process's output if it ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"bridge.compare ended (exit {proc.returncode}) before {what}:\n{out}\n{err}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def slow_engine_training(out: Path) -> bool:
    return any(line["kind"] == "epoch" for line in record(out / "workers" / SLOW_RECORD))


def workers_left(out: Path) -> list[str]:
    """Processes whose command line names one of the run's worker job files."""
    jobs = [str(p) for p in (out / "workers").glob("*.job.json")]
    assert jobs, "no worker job file: no worker ever started"
    if importlib.util.find_spec("psutil"):
        import psutil

        found = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or ())
            if any(j in cmd for j in jobs) and p.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{p.pid}: {cmd}")
        return found
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # ended meanwhile
                continue
            if any(j in cmd for j in jobs):
                found.append(f"{d.name}: {cmd}")
    return found


def statuses(out: Path) -> dict:
    return {e["mode"]: e["status"] for e in json.loads((out / "summary.json").read_text())["engines"]}


def interrupt_while_the_slow_engine_trains(out: Path, sig: int, *more: str) -> tuple[subprocess.Popen, str, str]:
    proc = start("--engines", ENGINES, "--epochs", "4", "--out", str(out), *more, slow_s=2.0)
    wait_until(lambda: slow_engine_training(out), proc, what="the slow engine trained its first epoch")
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return proc, stdout, stderr


def said(stderr: str) -> list[str]:
    """stderr's lines, less the busy-machine line said before the run starts (other processes' doing)."""
    return [x for x in stderr.strip().splitlines() if not x.startswith("warning: the machine is busy")]


def assert_nothing_lost(out: Path, stderr: str, signal_name: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = said(stderr)
    assert len(lines) == 1, stderr
    assert f"stopped by {signal_name} during tests.doubles.slow_engine/slow" in lines[0]
    assert f"1 finished engine run(s) kept in {out}/" in lines[0]
    assert f"resume with: python -m bridge.compare --engines {ENGINES} --epochs 4 --out {out}" in lines[0]
    frame = pd.read_csv(out / "results.csv")
    ref = frame[(frame.engine == "reference") & (frame.metric == "accuracy") & (frame.split == "test")]
    assert sorted(ref.epoch.unique()) == [0, 1, 2, 3]
    assert statuses(out) == {"float64": "ok", "slow": "interrupted"}
    assert workers_left(out) == []


def test_ctrl_c_keeps_the_finished_runs_and_the_same_command_resumes(tmp_path):
    out = tmp_path / "out"
    proc, _, stderr = interrupt_while_the_slow_engine_trains(out, signal.SIGINT)
    assert proc.returncode == 130, stderr
    assert_nothing_lost(out, stderr, "SIGINT")
    assert (out / "report.html").is_file()  # the report of what finished, as without the interrupt
    reference_record = (out / "workers" / "reference-float64-r0.jsonl").read_bytes()
    first = pd.read_csv(out / "results.csv")

    again = compare("--engines", ENGINES, "--epochs", "4", "--out", str(out))
    assert again.returncode == 0, again.stderr
    reused = [line for line in again.stdout.splitlines() if "reusing" in line]
    assert reused == [f"bridge: reusing 1 finished engine run(s) from {out}/: reference/float64 (--fresh reruns all)"]
    assert "reference/float64 repeat 0:" not in again.stdout  # the reference did not run again...
    assert "tests.doubles.slow_engine/slow repeat 0:" in again.stdout  # ...the interrupted engine did
    assert (out / "workers" / "reference-float64-r0.jsonl").read_bytes() == reference_record
    assert statuses(out) == {"float64": "ok", "slow": "ok"}
    frame = pd.read_csv(out / "results.csv")
    columns = ["epoch", "step", "split", "metric", "value"]
    pd.testing.assert_frame_equal(frame[frame.engine == "reference"][columns].reset_index(drop=True),
                                  first[first.engine == "reference"][columns].reset_index(drop=True))
    slow = frame[(frame.engine == "tests.doubles.slow_engine") & (frame.metric == "accuracy") & (frame.split == "test")]
    assert sorted(slow.epoch.unique()) == [0, 1, 2, 3]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engines"][0]["message"].startswith("reused: finished in an earlier run of this spec")


def test_an_interrupted_run_says_it_is_incomplete_what_never_started_and_how_to_resume(tmp_path):
    out = tmp_path / "out"
    proc, _, stderr = interrupt_while_the_slow_engine_trains(out, signal.SIGINT, "--repeats", "2")
    assert proc.returncode == 130, stderr
    doc = json.loads((out / "summary.json").read_text())
    info = doc["incomplete"]
    resume_command = f"python -m bridge.compare --engines {ENGINES} --epochs 4 --out {out} --repeats 2"
    assert info == {"signal": "SIGINT", "stopped": ["tests.doubles.slow_engine/slow"],
                    "never_started": ["reference/float64 repeat 1", "tests.doubles.slow_engine/slow repeat 1"],
                    "resume": resume_command}
    assert f"resume with: {resume_command}" in stderr
    page = (out / "report.html").read_text()
    box = page[page.index("id='incomplete'"):page.index("id='warnings'")]
    assert "Incomplete: stopped by SIGINT during tests.doubles.slow_engine/slow." in box
    assert "Never started: reference/float64 repeat 1, tests.doubles.slow_engine/slow repeat 1." in box
    assert f"<code>{resume_command}</code>" in box
    again = compare("--engines", ENGINES, "--epochs", "4", "--out", str(out), "--repeats", "2")
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "summary.json").read_text())["incomplete"] is None
    assert "id='incomplete'" not in (out / "report.html").read_text()


def test_ctrl_c_typed_on_a_terminal_stops_the_run_the_same_way(tmp_path):
    """The terminal sends SIGINT to its foreground process group: the parent only, since every worker runs
    in a session of its own; the parent stops the worker, and the live display gives the terminal back."""
    out = tmp_path / "out"
    pid, fd = pty.fork()
    if pid == 0:  # the child: bridge.compare on the terminal (never back into pytest, even if exec fails)
        try:
            os.chdir(ROOT)
            command = compare_command("--engines", ENGINES, "--epochs", "4", "--out", out, "--no-report")
            os.execve(command[0], command, {**environment(2.0), "TERM": "xterm"})
        finally:
            os._exit(127)
    screen = bytearray()

    def read(wait: float) -> bool:
        while select.select([fd], [], [], wait)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal closed: the child ended
                return False
            if not chunk:
                return False
            screen.extend(chunk)
        return True

    try:
        deadline = time.monotonic() + 120
        while not slow_engine_training(out) and time.monotonic() < deadline:
            read(0.05)
        os.write(fd, b"\x03")  # Ctrl-C
        while read(1.0):
            pass
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    text = screen.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 130, text[-3000:]
    assert "Traceback" not in text
    assert "\x1b[?25h" in text  # the cursor the live display hid is shown again
    assert text.count("bridge.compare: stopped by SIGINT during tests.doubles.slow_engine/slow") == 1
    assert statuses(out) == {"float64": "ok", "slow": "interrupted"}
    assert workers_left(out) == []


def test_sigterm_keeps_the_finished_runs_like_ctrl_c(tmp_path):
    out = tmp_path / "out"
    proc, _, stderr = interrupt_while_the_slow_engine_trains(out, signal.SIGTERM, "--no-report")
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert_nothing_lost(out, stderr, "SIGTERM")
    assert not (out / "report.html").exists()


def test_a_second_ctrl_c_during_the_clean_up_exits_at_once(tmp_path):
    out = tmp_path / "out"
    proc = start("--engines", ENGINES, "--epochs", "4", "--out", str(out), slow_s=2.0)
    wait_until(lambda: slow_engine_training(out), proc, what="the slow engine trained its first epoch")
    proc.send_signal(signal.SIGINT)
    # the results are written first, then the report is drawn: a second Ctrl-C then stops the drawing
    wait_until(lambda: (out / "summary.json").is_file(), proc, what="the results were written")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    assert said(stderr) == ["bridge: SIGINT again, stopped at once; files written before are kept; resume with: "
                            f"python -m bridge.compare --engines {ENGINES} --epochs 4 --out {out}"]
    assert statuses(out) == {"float64": "ok", "slow": "interrupted"}
    assert workers_left(out) == []


def test_the_library_call_raises_interrupted_carrying_the_results_written(tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("BRIDGE_SLOW_ENGINE_S", "2.0")
    before = signal.getsignal(signal.SIGINT)

    def interrupt_once_training():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if slow_engine_training(out):  # never otherwise: a late Ctrl-C would stop pytest itself
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    threading.Thread(target=interrupt_once_training, daemon=True).start()
    with pytest.raises(Interrupted) as caught:
        runner.run(Spec(engines=("reference", "tests.doubles.slow_engine"), epochs=4), out)
    e = caught.value
    assert e.signum == signal.SIGINT and e.exit_code == 130
    assert [(o.run.label, o.status) for o in e.results.outcomes] == [("reference/float64", "ok"),
                                                                     ("tests.doubles.slow_engine/slow", "interrupted")]
    assert e.results.out == out and statuses(out) == {"float64": "ok", "slow": "interrupted"}
    assert workers_left(out) == []
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is back


def test_fresh_reruns_every_engine_run(tmp_path):
    out = tmp_path / "out"
    args = ("--engines", "reference", "--epochs", "2", "--out", str(out), "--no-report")
    reference = out / "workers" / "reference-float64-r0.jsonl"
    assert compare(*args).returncode == 0
    first = reference.read_bytes()
    again = compare(*args)
    assert again.returncode == 0 and "reusing 1 finished engine run(s)" in again.stdout
    assert reference.read_bytes() == first
    fresh = compare(*args, "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert "reusing" not in fresh.stdout and "reference/float64 repeat 0:" in fresh.stdout
    assert reference.read_bytes() != first  # trained again: new timestamps and epoch times


def test_another_experiment_into_the_same_folder_exits_2_naming_overwrite(tmp_path):
    out = tmp_path / "out"
    assert compare("--engines", "reference", "--epochs", "2", "--out", str(out), "--no-report").returncode == 0
    kept = (out / "results.csv").read_bytes()
    other = compare("--engines", "reference", "--epochs", "3", "--out", str(out), "--no-report")
    assert other.returncode == 2
    assert len(other.stderr.strip().splitlines()) == 1, other.stderr
    for words in (f"output folder '{out}' holds the results of another experiment", "another --out",
                  "--overwrite"):
        assert words in other.stderr
    assert (out / "results.csv").read_bytes() == kept
    replaced = compare("--engines", "reference", "--epochs", "3", "--out", str(out), "--no-report", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert "epochs = 3" in (out / "spec.toml").read_text()
    assert "reusing" not in replaced.stdout


def test_two_experiments_with_the_default_out_both_survive(tmp_path):
    for epochs in (2, 3):
        proc = compare("--engines", "reference", "--epochs", str(epochs), "--no-report", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    first, second = (Spec(engines=("reference",), epochs=e).hash() for e in (2, 3))
    results = tmp_path / "results"
    for spec_hash in (first, second):
        summary = json.loads((results / spec_hash / "summary.json").read_text())
        assert summary["fingerprint"]["spec_hash"] == spec_hash
        assert (results / spec_hash / "results.csv").is_file()
    assert (results / "latest").is_symlink() and os.readlink(results / "latest") == second
    assert (results / "latest" / "summary.json").read_text() == (results / second / "summary.json").read_text()


def test_engine_versions_come_from_package_metadata_or_are_unknown():
    from importlib.metadata import version

    from bridge.running.selection import select

    runs = {r.engine: r for r in select(Spec(engines=("reference", "tests.doubles.slow_engine", "flux"))).runs}
    runs |= {r.engine: r for r, _ in select(Spec(engines=("flux",))).cannot_run}
    assert installed_versions(runs["reference"]) == {"numpy": version("numpy")}
    assert installed_versions(runs["tests.doubles.slow_engine"]) == {"numpy": version("numpy")}
    assert installed_versions(runs["flux"]) is None  # Flux's version lives in a Julia environment


def test_a_finished_run_of_another_engine_version_runs_again(tmp_path):
    out = tmp_path / "out"
    args = ("--engines", "reference", "--epochs", "2", "--out", str(out), "--no-report")
    assert compare(*args).returncode == 0
    stamp = out / "workers" / "reference-float64-r0.stamp.json"
    then = json.loads(stamp.read_text())
    stamp.write_text(json.dumps({**then, "versions": {"numpy": "1.26.0"}}))  # as if numpy was upgraded since
    again = compare(*args)
    assert again.returncode == 0, again.stderr
    assert (f"bridge: running again: reference/float64 (numpy 1.26.0 then, {then['versions']['numpy']} now) "
            "(--fresh reruns all)") in again.stdout
    assert "reference/float64 repeat 0:" in again.stdout
    assert json.loads(stamp.read_text())["versions"] == then["versions"]


def test_versions_are_compared_as_versions_with_local_labels_where_both_have_one():
    assert same_version("2.14.1+cu130", "2.14.1")  # torch.__version__ of PyPI's default build, its metadata
    assert same_version("2.13.0+cpu", "2.13.0+cpu") and same_version("2.14.1", "2.14.1.0")
    assert not same_version("2.14.1+cu130", "2.14.1+cpu") and not same_version("2.14.1+cu130", "2.14.0")
    assert not same_version("nightly", "2.14.1") and same_version("dev build", "dev build")


def test_a_run_whose_framework_reported_a_local_build_label_is_reused(tmp_path):
    """PyTorch's default Linux build reports ``2.14.1+cu130`` where its distribution says ``2.14.1``: the
    run is the installed one and is reused; another version in the record still runs again."""
    out = tmp_path / "out"
    args = ("--engines", "reference", "--epochs", "2", "--out", str(out), "--no-report")
    assert compare(*args).returncode == 0
    record = out / "workers" / "reference-float64-r0.jsonl"
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    (prepared,) = [line for line in lines if line["kind"] == "prepared"]
    installed = prepared["report"]["framework_version"]

    def rewrite(version: str) -> None:
        prepared["report"]["framework_version"] = version
        record.write_text("".join(json.dumps(line) + "\n" for line in lines))

    rewrite(installed + "+cu130")  # as that build reports itself
    again = compare(*args)
    assert again.returncode == 0, again.stderr
    assert "reusing 1 finished engine run(s)" in again.stdout and "repeat 0:" not in again.stdout
    rewrite("1.0.0")
    third = compare(*args)
    assert f"running again: reference/float64 (it reported numpy 1.0.0, numpy {installed} is installed)" \
        in third.stdout


def test_a_run_timed_with_another_thread_count_runs_again(tmp_path):
    """--threads 0 means every core: the same spec resolves to another count on another machine (or after
    the folder moved), and runs timed with the old count are not reused."""
    out = tmp_path / "out"
    args = ("--engines", "reference", "--epochs", "2", "--out", str(out), "--no-report")
    assert compare(*args).returncode == 0
    stamp = out / "workers" / "reference-float64-r0.stamp.json"
    then = json.loads(stamp.read_text())
    assert then["threads"] == os.cpu_count()
    stamp.write_text(json.dumps({**then, "threads": then["threads"] + 1}))  # as if timed on a larger machine
    again = compare(*args)
    assert again.returncode == 0, again.stderr
    assert "reusing" not in again.stdout
    assert (f"running again: reference/float64 (it ran with {then['threads'] + 1} threads, this run has "
            f"{os.cpu_count()})") in again.stdout
    assert json.loads(stamp.read_text())["threads"] == os.cpu_count()
