"""Live progress: a rich display on a terminal, plain lines (no control codes) anywhere else, none with --quiet."""
import io
import os
import pty
import re
import subprocess
import threading
from types import SimpleNamespace

from rich.console import Console

from bridge.results.records import EngineMode
from bridge.running.progress import RunProgress
from tests import support
from tests.support import environment, run_compare, start_compare

ANSI = re.compile(r"\x1b[\[\]()#;?0-9A-Za-z]")
REF, KERAS = EngineMode("reference", "float64"), EngineMode("keras", "fit")


def events(run: EngineMode, repeat: int, epochs: int = 3, fail_at: int | None = None) -> list[dict]:
    out = [{"run": run, "repeat": repeat, "kind": "prepared", "t": 0.0, "report": {"framework": "x"}}]
    for e in range(epochs):
        if e == fail_at:
            return out + [{"run": run, "repeat": repeat, "kind": "error", "t": 0.0, "error": "ValueError: boom"}]
        out.append({"run": run, "repeat": repeat, "kind": "epoch", "t": 0.0, "epoch": e, "seconds": 0.01,
                    "losses": [1.0, 0.9], "train_loss": 1.0 / (e + 1), "test_loss": 1.0, "train_accuracy": 0.5,
                    "test_accuracy": 0.25 * (e + 1)})
    return out + [{"run": run, "repeat": repeat, "kind": "done", "t": 0.0}]


def outcome(run: EngineMode, repeat: int, ok: bool = True) -> SimpleNamespace:
    return SimpleNamespace(run=run, repeat=repeat, ok=ok, failed=not ok, status="ok" if ok else "error",
                           message="" if ok else f"{run.label} failed: ValueError: boom", wall_s=1.25,
                           epochs=[{"test_accuracy": 0.75}] if ok else [])


def feed(progress: RunProgress) -> None:
    with progress:
        for repeat in range(2):
            for run, fail in ((REF, None), (KERAS, 1 if repeat == 1 else None)):
                for event in events(run, repeat, fail_at=fail):
                    progress.on_event(event)
                progress.on_outcome(outcome(run, repeat, ok=fail is None))


def test_a_file_that_is_not_a_terminal_gets_plain_lines_and_no_control_codes(capsys):
    out = io.StringIO()
    progress = RunProgress(3, 2, 4, file=out)
    assert not progress.live
    feed(progress)
    text = out.getvalue()
    assert not ANSI.search(text), repr(text)
    assert text.splitlines() == [
        "  reference/float64 repeat 0: 1 epochs in 1.2 s, test accuracy 0.750",
        "  keras/fit repeat 0: 1 epochs in 1.2 s, test accuracy 0.750",
        "  reference/float64 repeat 1: 1 epochs in 1.2 s, test accuracy 0.750"]
    err = capsys.readouterr().err
    assert err.strip() == "keras/fit failed: ValueError: boom" and not ANSI.search(err)
    assert progress.printed == {"keras/fit failed: ValueError: boom"}


def test_a_terminal_shows_engine_repeat_epoch_loss_and_elapsed_time(capsys):
    screen = io.StringIO()
    progress = RunProgress(3, 2, 4, console=Console(file=screen, force_terminal=True, width=140))
    assert progress.live
    feed(progress)
    final = ANSI.sub("", screen.getvalue()).split("\r")[-1]  # the last frame drawn
    assert "4/4 runs" in final
    for row in ("reference/float64  repeat 0 (of 2)", "reference/float64  repeat 1 (of 2)", "keras/fit  repeat 0 (of 2)"):
        line = next(line for line in final.splitlines() if row in line)
        assert "epoch 3/3" in line and "loss 0.3333" in line and re.search(r"\d:\d\d:\d\d", line)
    failed = next(line for line in final.splitlines() if "keras/fit  repeat 1 (of 2)" in line)
    assert "epoch 1/3" in failed and "error" in failed


def test_quiet_shows_nothing_but_failures(capsys):
    screen = io.StringIO()
    feed(RunProgress(3, 2, 4, quiet=True, console=Console(file=screen, force_terminal=True)))
    assert screen.getvalue() == ""
    assert capsys.readouterr().err.strip() == "keras/fit failed: ValueError: boom"


def compare(*args, out):
    return run_compare("--engines", "reference", "--epochs", "3", *args, out=out, timeout=120)


def test_compare_through_a_pipe_prints_plain_lines_and_writes_the_report(tmp_path):
    proc = compare("--repeats", "2", out=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not ANSI.search(proc.stdout + proc.stderr)
    assert "reference/float64 repeat 1: 3 epochs in" in proc.stdout
    assert f"report written to {(tmp_path / 'report.html').as_uri()}" in proc.stdout
    assert (tmp_path / "figures" / "loss.svg").exists()


def test_compare_quiet_prints_no_progress_and_no_report_skips_it(tmp_path):
    proc = compare("--quiet", "--no-report", out=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "repeat" not in proc.stdout and "epoch 3/3" not in proc.stdout and not ANSI.search(proc.stdout)
    assert proc.stdout.splitlines()[0].split() == ["engine", "framework", "status", "runs", "parity", "first", "epoch",
                                                   "steady", "epoch", "(95%)", "examples/s", "of", "peak", "machine",
                                                   "peak", "memory", "train", "loss", "test", "loss", "test", "acc", "to",
                                                   "target"]
    # --quiet keeps only the lines about a machine busy with other work (true when it is, and not
    # what this test is about)
    assert [line for line in proc.stderr.splitlines() if "disturbed" not in line] == [], proc.stderr
    assert not (tmp_path / "report.html").exists() and (tmp_path / "results.csv").exists()


def test_compare_on_a_terminal_draws_live_progress_from_worker_events(tmp_path):
    leader, follower = pty.openpty()
    proc = start_compare("--engines", "reference", "--epochs", "3", "--no-report", "--out", tmp_path, stdout=follower,
                         stderr=subprocess.PIPE, env=support.environment(TERM="xterm", COLUMNS="140"))
    os.close(follower)
    chunks = []

    def drain():  # a pty's buffer is small: read while the child writes
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # EIO once the child has closed its side
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    reader.join(timeout=10)
    os.close(leader)
    text = ANSI.sub("", b"".join(chunks).decode(errors="replace"))
    assert re.search(r"reference/float64  repeat 0 \(of 1\) .*epoch 3/3 loss \d", text), text
    assert "1/1 runs" in text


def test_a_long_engine_run_in_a_pipe_prints_a_heartbeat(tmp_path):
    """In a pipe (a CI log), an engine run that goes on prints a line every ``$BRIDGE_HEARTBEAT_S`` seconds
    saying where it is; a run shorter than that prints only its closing line, and --quiet prints none."""
    slow = "tests.doubles.slow_engine"
    env = environment(BRIDGE_HEARTBEAT_S="0.5", BRIDGE_SLOW_ENGINE_S="0.6")
    proc = run_compare("--engines", slow, "--epochs", "4", "--no-report", out=tmp_path / "a", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    beats = [line for line in proc.stdout.splitlines() if line.startswith(f"  {slow}/slow repeat 0: ")
             and " so far" in line]
    assert len(beats) >= 3, proc.stdout
    assert any(re.search(r"epoch [1-3] of 4 done, loss \d", line) for line in beats), beats
    assert not ANSI.search(proc.stdout)
    quick = run_compare("--engines", "reference", "--epochs", "2", "--no-report", out=tmp_path / "b",
                        env=environment(BRIDGE_HEARTBEAT_S="30"), timeout=120)
    assert quick.returncode == 0 and " so far" not in quick.stdout, quick.stdout
    quiet = run_compare("--engines", slow, "--epochs", "3", "--no-report", "--quiet", out=tmp_path / "c", env=env,
                        timeout=120)
    assert quiet.returncode == 0 and " so far" not in quiet.stdout, quiet.stdout
