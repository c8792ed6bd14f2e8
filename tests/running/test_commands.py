"""The commands a new user meets: ``python -m bridge``, ``--version``, ``--list-engines``, ``--dry-run``
and one error prefix for every command, each run as a user runs it (a fresh ``python -m``)."""
from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from bridge.gpus import cuda_visible
from tests.support import ROOT, environment, needs_tf, needs_torch, run_compare


def python_m(*args, cwd: Path = ROOT, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=environment(**env), capture_output=True,
                          text=True, timeout=timeout)


def files_and_times(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


# --- python -m bridge ----------------------------------------------------------------------------------

def test_bridge_alone_lists_the_commands_and_runs_nothing(tmp_path):
    proc = python_m("-m", "bridge", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for command in ("python -m bridge.compare", "python -m bridge.report", "python -m bridge.sweep",
                    "python -m bridge.julia", "setup", "python -m bridge.running.devicepeak", "--help"):
        assert command in proc.stdout, command
    assert list(tmp_path.iterdir()) == []  # no results/ folder: no benchmark started


def test_bridge_forwards_a_command_and_refuses_an_unknown_one(tmp_path):
    proc = python_m("-m", "bridge", "compare", "--engines", "reference", "--epochs", "0", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == "bridge.compare: error: epochs must be greater than " \
                                                           "zero, got 0", proc.stderr
    bad = python_m("-m", "bridge", "benchmark", cwd=tmp_path)
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.strip().splitlines() == ["bridge: error: command 'benchmark' is not known; accepted: compare, "
                                               "report, sweep, julia (python -m bridge lists them)"]


# --- --version ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["bridge.compare"], ["bridge.report"], ["bridge.sweep"], ["bridge.julia"],
                                     ["bridge"], ["bridge", "report"]])
def test_version_prints_the_installed_distribution_s_version(command):
    proc = python_m("-m", *command, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"bridge {metadata.version('bridge')}"


# --- --list-engines --------------------------------------------------------------------------------------

def list_engines(tmp_path) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    # an empty Julia record: flux and knet are not set up, whatever this machine's user has done
    proc = python_m("-X", "importtime", "-m", "bridge.compare", "--list-engines",
                    BRIDGE_JULIA_RECORD=str(tmp_path / "julia.json"))
    rows = {" ".join(line.split()[:2]): line for line in proc.stdout.splitlines()[1:]}
    return proc, rows


def test_list_engines_shows_every_engine_and_mode_and_why_julia_ones_cannot_run(tmp_path):
    proc, rows = list_engines(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[:5] == ["engine", "mode", "framework", "installed", "here"]
    assert set(rows) >= {"reference float64", "reference nnlib", "keras fit", "keras loop", "torch loop", "jax jit",
                         "flux loop", "knet loop"}
    assert rows["reference float64"].split()[2:] == ["numpy", "numpy", f"{metadata.version('numpy')}", "available"]
    for engine, framework in (("flux", "Flux"), ("knet", "Knet")):
        line = rows[f"{engine} loop"]  # no Julia recorded here (or no juliacall, or a Python it does not serve)
        assert line.split()[2:4] == [framework, "-"] and f"  unavailable: {engine} needs " in line, line
    # versions come from package metadata: no framework is imported into the listing process
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & {"tensorflow", "torch", "jax", "keras", "juliacall"}, imported & {"tensorflow", "torch"}


@needs_tf
def test_list_engines_shows_keras_available_with_the_installed_versions(tmp_path):
    proc, rows = list_engines(tmp_path)
    line = rows["keras fit"]
    assert line.endswith("  available"), line
    assert f"keras {metadata.version('keras')}" in line, line
    assert any(f"{d} {metadata.version(d)}" in line for d in metadata.packages_distributions()["tensorflow"]), line


# --- --dry-run -------------------------------------------------------------------------------------------

def test_dry_run_shows_the_run_and_writes_nothing(tmp_path):
    out = tmp_path / "new" / "out"
    run = run_compare("--dry-run", "--engines", "reference,keras:fit,flux", "--epochs", "3", "--repeats", "2",
                      out=out, env=environment(BRIDGE_JULIA_RECORD=str(tmp_path / "julia.json")))
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "new").exists()
    text = run.stdout
    for line in ('  dataset = "iris"', "  epochs = 3", "  batch_size = 16", "  learning_rate = 0.01",
                 '  engines = ["reference", "keras:fit", "flux"]', "  repeats = 2", "  hidden = [10]"):
        assert line in text.splitlines(), line
    # Iris: 120 training examples in batches of 16
    assert "120 training and 30 test examples" in text and "8 batches per epoch x 3 epochs = 24 steps" in text
    assert "83 parameters" in text  # 4*10+10 + 10*3+3
    assert "  reference/float64: 2 repeat(s) would start" in text
    assert "  flux/loop: unavailable (exit 1): flux needs Julia" in text
    assert f"output folder: {out}: new" in text


def test_dry_run_writes_no_default_folder_and_no_latest_link(tmp_path):
    run = run_compare("--dry-run", "--engines", "reference", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "(results/latest would point at it)" in run.stdout
    assert list(tmp_path.iterdir()) == []


def test_dry_run_names_what_the_folder_would_reuse_and_touches_none_of_it(tmp_path):
    out = tmp_path / "out"
    first = run_compare("--engines", "reference", "--epochs", "2", "--no-report", "--quiet", out=out)
    assert first.returncode == 0, first.stderr
    before = files_and_times(out)
    run = run_compare("--dry-run", "--engines", "reference,reference:nnlib", "--epochs", "2", out=out)
    assert run.returncode == 0, run.stderr
    assert "  reference/float64: 0 repeat(s) would start; repeat 0 reused: finished in an earlier run" in run.stdout
    assert "  reference/nnlib: 1 repeat(s) would start" in run.stdout
    assert f"output folder: {out}: holds results of this experiment" in run.stdout
    assert files_and_times(out) == before
    # another experiment in that folder: refused, as a run refuses it; with --overwrite, said, not done
    other = run_compare("--dry-run", "--engines", "reference", "--epochs", "3", out=out)
    assert other.returncode == 2 and "holds the results of another experiment" in other.stderr, other.stderr
    replace = run_compare("--dry-run", "--engines", "reference", "--epochs", "3", "--overwrite", out=out)
    assert replace.returncode == 0 and "which --overwrite would remove" in replace.stdout, replace.stderr
    assert files_and_times(out) == before


@pytest.mark.parametrize("args, words", [
    (["--epochs", "0"], "epochs must be greater than zero, got 0"),
    (["--engines", "flax"], "engine 'flax' is not known"),
    (["--train_size", "5000"], "--train_size 5000 is more than the"),
])
def test_dry_run_refuses_bad_input_as_a_run_does(args, words, tmp_path):
    run = run_compare("--dry-run", *args, out=tmp_path / "out")
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and words in run.stderr, run.stderr
    assert not (tmp_path / "out").exists()


def test_dry_run_refuses_an_output_folder_it_could_not_write(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    run = run_compare("--dry-run", "--engines", "reference", out=blocker / "results")
    assert run.returncode == 2 and "is not writable" in run.stderr and "--out" in run.stderr, run.stderr


# --- one error prefix ------------------------------------------------------------------------------------

@needs_torch
@pytest.mark.skipif(cuda_visible(), reason="a CUDA GPU is visible here, so PyTorch can measure it")
def test_devicepeak_says_in_one_error_line_that_torch_cannot_measure_cuda():
    proc = python_m("-m", "bridge.running.devicepeak", "--device", "cuda", "--framework", "torch", "--seconds", "0.1")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bridge.running.devicepeak: error: torch cannot measure the "
                                                   "cuda GEMM peak here ("), proc.stderr
    assert "measure where torch can use a CUDA GPU" in lines[0]


def test_devicepeak_without_a_framework_and_with_bad_input():
    # the machine without PyTorch or JAX: import lookups of both answer "not installed" (sys.modules None)
    code = ("import sys; sys.modules.update(torch=None, jax=None); from bridge.running.devicepeak import main; "
            "sys.exit(main(['--device', 'cpu']))")
    proc = python_m("-c", code)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "bridge.running.devicepeak: error: measuring the cpu GEMM peak needs one of torch, jax, and none is "
        "installed; run: pip install 'bridge[torch]'"]
    bad = python_m("-m", "bridge.running.devicepeak", "--device", "cpu", "--seconds", "0")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "bridge.running.devicepeak: error: --seconds must be greater than zero, e.g. 1; got 0"], bad.stderr


def test_julia_commands_print_their_errors_with_the_command_s_prefix(tmp_path):
    env = dict(BRIDGE_JULIA_RECORD=str(tmp_path / "record" / "julia.json"), BRIDGE_JULIA_HOME=str(tmp_path / "home"))
    check = python_m("-m", "bridge.julia", "check", "flux", **env)
    assert check.returncode == 1, check.stderr
    assert check.stderr.startswith("bridge.julia: error: flux needs ") and check.stderr.count("\n") == 1, check.stderr
    setup = python_m("-m", "bridge.julia", "setup", "--engines", "flux", "--flux-julia", tmp_path / "no-julia", **env)
    assert setup.returncode == 1, setup.stderr
    assert setup.stderr.count("\n") == 1 and setup.stderr.startswith("bridge.julia: error: flux: "), setup.stderr
    assert "--flux-julia PATH" in setup.stderr or "Python" in setup.stderr  # no Julia there, or juliacall's limit
    assert not (tmp_path / "record").exists() and not (tmp_path / "home").exists()
    bad = python_m("-m", "bridge.julia", "setup", "--engines", "flux,jl", **env)
    assert bad.returncode == 2 and bad.stderr == "bridge.julia: error: engine 'jl' is not a Julia engine; " \
                                                 "accepted: flux, knet\n", bad.stderr
