"""The command line: the default run end to end, --help, and one-line errors that exit 2."""
import subprocess
import sys

import pytest

from bridge.experiment.spec import FIELDS
from bridge.gpus import cuda_visible
from tests.support import ROOT, environment, needs_tf, run_compare


def compare(*args, timeout=600):
    return run_compare(*args, timeout=timeout)


def test_help_documents_every_spec_field():
    proc = compare("--help")
    assert proc.returncode == 0
    for name in [*FIELDS, "config", "out", "quiet"]:
        assert f"--{name}" in proc.stdout, name
    text = " ".join(proc.stdout.split())  # argparse wraps lines
    assert "(default: 100 for iris, 5 for fashion-" in text  # the values in force, by data set


@pytest.mark.parametrize("command", ["bridge.compare", "bridge.sweep"])
def test_help_names_each_value_by_its_field_and_states_only_real_defaults(command):
    proc = subprocess.run([sys.executable, "-m", command, "--help"], cwd=ROOT, env=environment(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--beta_1 BETA_1, --beta-1 BETA_1" in proc.stdout and "--beta_2 BETA_2" in proc.stdout
    assert "--batch_size SIZE" in proc.stdout  # the last word, where it is no number
    assert "(default: none)" not in proc.stdout
    text = " ".join(proc.stdout.split())
    assert "~/.cache/bridge --data_source" in text  # its help states the default; nothing added after it
    assert "default: every engine available here --repeats" in text


@pytest.mark.parametrize("command, failed", [
    ("bridge.compare", "an engine run failed or was unavailable; every other result is written"),
    ("bridge.report", "--fail-slower: an engine of B is slower than FACTOR times A beyond doubt"),
    ("bridge.julia", "an engine could not be set up or checked"),
])
def test_help_ends_with_the_exit_codes_one_per_line(command, failed):
    proc = subprocess.run([sys.executable, "-m", command, "--help"], cwd=ROOT, env=environment(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    epilog = proc.stdout[proc.stdout.index("\nexit codes:\n"):].splitlines()[2:]
    codes = [line.split()[0] for line in epilog if line[2:3].isdigit()]  # wrapped lines continue under the text
    assert codes == (["0", "1", "2", "130"] if command == "bridge.compare" else ["0", "1", "2"]), epilog
    assert all(line.startswith("       ") for line in epilog if not line[2:3].isdigit()), epilog
    assert " ".join(" ".join(epilog).split()).startswith(f"0 done 1 {failed}"), epilog
    if command == "bridge.compare":
        assert any(line.startswith("  130  stopped by SIGINT (Ctrl-C), 143 by SIGTERM") for line in epilog), epilog


@pytest.mark.parametrize("args, words", [
    (["--dataset", "mnist"], ["dataset 'mnist'", "iris, fashion-mnist, synthetic"]),
    (["--engines", "reference,flax"], ["engine 'flax' is not known", "reference, keras, keras-jax, keras-torch, torch, jax, flux, knet"]),
    (["--engines", "keras:eager"], ["mode 'eager' of engine 'keras'", "fit, loop"]),
    (["--batch_size", "0"], ["batch_size must be greater than zero, got 0"]),
    (["--epochs", "-1"], ["epochs must be greater than zero, got -1"]),
    (["--repeats", "two"], ["repeats 'two' is not a valid int"]),
    (["--config", "/nonexistent/exp.toml"], ["config file '/nonexistent/exp.toml' cannot be read"]),
    pytest.param(["--device", "cuda"], ["--device cuda: no CUDA GPU is visible", "--device cpu"],
                 marks=pytest.mark.skipif(cuda_visible(), reason="a CUDA GPU is visible here, so --device cuda is valid")),
    (["--unknown-flag"], ["unrecognized arguments: --unknown-flag"]),
    (["--engines", ""], ["engines '' names no engine", "leave --engines out for every engine"]),
    (["--train_size", "5000"], ["--train_size 5000 is more than the", "training examples of iris; give at most"]),
    (["--test_size", "5000"], ["--test_size 5000 is more than the", "test examples of iris; give at most"]),
    # 3.75 billion 28x28 images: 11 TiB, more than any machine this runs on; nothing is allocated first
    (["--dataset", "synthetic", "--synthetic_samples", "3000000000"],
     ["--synthetic_samples 3000000000 of shape (1, 28, 28) would take 10966.3 GiB", "available of",
      "lower --synthetic_samples"]),
])
def test_bad_input_exits_2_with_one_line_naming_the_value(args, words, tmp_path):
    proc = compare(*args, "--out", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for w in words:
        assert w in proc.stderr


def test_malformed_config_and_unwritable_output_folder(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("epochs = [\n")
    proc = compare("--config", str(cfg), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "is not valid TOML" in proc.stderr and str(cfg) in proc.stderr
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = compare("--out", str(blocker / "results"))
    assert proc.returncode == 2 and "is not writable" in proc.stderr and "--out" in proc.stderr


@needs_tf
def test_iris_100_epochs_reference_and_keras_reach_90_percent(tmp_path):
    run = run_compare("--dataset", "iris", "--engines", "reference,keras", "--epochs", "100", out=tmp_path / "iris",
                      timeout=600)
    assert run.returncode == 0, run.stderr
    for label in ("reference/float64", "keras/fit", "keras/loop"):
        assert label in run.stdout
    frame, summary, out = run.frame, run.summary, run.out
    final = frame[(frame.epoch == 99) & (frame.split == "test") & (frame.metric == "accuracy")]
    assert len(final) == 3 and (final.value >= 0.9).all(), final
    assert summary["batches_identical"] is True
    assert {e["status"] for e in summary["engines"]} == {"ok"}
    assert summary["fingerprint"]["spec_hash"] == frame.spec_hash.iloc[0]
    timing = frame[frame.metric == "epoch_s"]
    assert len(timing) == 300 and (timing.value > 0).all()
    assert (out / "spec.toml").read_text().startswith('dataset = "iris"')


def test_one_epoch_runs_and_warns_once_that_there_is_no_steady_state(tmp_path):
    proc = compare("--engines", "reference", "--epochs", "1", "--no-report", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "no steady-state time" in line]
    assert warning == ["warning: --epochs 1: no steady-state time, which is the median of the epochs after the "
                       "first (that one includes tracing and compilation); give --epochs 4 or more"], proc.stderr
