"""The command line: the default run end to end, --help, and one-line errors that exit 2."""
import pytest

from bridge.experiment.spec import FIELDS
from bridge.running.runner import cuda_visible
from tests.support import needs_tf, run_compare


def compare(*args, timeout=600):
    return run_compare(*args, timeout=timeout)


def test_help_documents_every_spec_field():
    proc = compare("--help")
    assert proc.returncode == 0
    for name in [*FIELDS, "config", "out", "quiet"]:
        assert f"--{name}" in proc.stdout, name
    text = " ".join(proc.stdout.split())  # argparse wraps lines
    assert "(default: 100 for iris, 5 for fashion-" in text  # the values in force, by data set


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
