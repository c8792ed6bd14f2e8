"""Throughput in every summary: examples per second, achieved GFLOP/s and the fraction of the machine's
measured float32 peak. The FLOP count per model (bridge.experiment.models.forward_flops) is checked against a hand
derivation and against torch's own FlopCounterMode on the torch engine's model (in a torch subprocess);
the summary's rates against results.csv.
"""
import json
import subprocess
import sys

import numpy as np
import pytest

from bridge.experiment import models
from bridge.experiment.spec import SpecError
from bridge.running import peaks
from tests.support import ROOT, framework_check, model_shapes, needs_torch, run_compare


def _flops(model, input_shape, classes, **sizes):
    return models.forward_flops(model_shapes(model, input_shape, classes, **sizes), input_shape)


def test_forward_flops_by_hand():
    # MLP: 2 per multiply-add of each Dense kernel
    assert _flops("mlp", (4,), 3, hidden=(10,)) == 2 * (4 * 10 + 10 * 3)
    assert _flops("mlp", (784,), 10) == 2 * (784 * 256 + 256 * 128 + 128 * 10)
    assert _flops("mlp", (784,), 10, hidden=(1024,)) == 2 * (784 * 1024 + 1024 * 10)
    # CNN on 1x28x28: conv 3x3x1x32 on 26x26 outputs, pool to 13x13, conv 3x3x32x64 on 11x11, pool to 5x5x64
    conv = 2 * 26 * 26 * 9 * 1 * 32 + 2 * 11 * 11 * 9 * 32 * 64
    dense = 2 * (5 * 5 * 64 * 128 + 128 * 10)
    assert _flops("cnn", (1, 28, 28), 10) == conv + dense == 5_262_080
    # a 3x20x16 input: 18x14 -> 9x7 -> 7x5 -> 3x2 feature map
    conv = 2 * 18 * 14 * 9 * 3 * 32 + 2 * 7 * 5 * 9 * 32 * 64
    assert _flops("cnn", (3, 20, 16), 4) == conv + 2 * (3 * 2 * 64 * 128 + 128 * 4)
    # other sizes: one conv of 8 filters (26x26 -> 13x13x8), dense 16
    assert _flops("cnn", (1, 28, 28), 10, filters=(8,), dense=16) == (
        2 * 26 * 26 * 9 * 8 + 2 * (13 * 13 * 8 * 16 + 16 * 10))


def test_parameter_counts_and_a_cnn_too_deep_for_its_input():
    assert models.parameter_count(model_shapes("mlp", (4,), 3, hidden=(10,))) == 4 * 10 + 10 + 10 * 3 + 3
    with pytest.raises(SpecError, match="filters 8,8,8,8: 4 conv/pool stages shrink fashion-mnist's 28x28 images"):
        model_shapes("cnn", (1, 28, 28), 10, filters=(8, 8, 8, 8))


@needs_torch
def test_forward_flops_agree_with_torch_s_flop_counter():
    cases = {"cnn-28": ("cnn", (1, 28, 28), 10, {}), "cnn-3x20x16": ("cnn", (3, 20, 16), 4, {}),
             "mlp-784": ("mlp", (784,), 10, {}), "cnn-3conv": ("cnn", (1, 28, 28), 10, dict(filters=(4, 8, 16), dense=20)),
             "mlp-3": ("mlp", (784,), 10, dict(hidden=(300, 100, 50)))}
    shapes = {name: model_shapes(model, shape, classes, **sizes) for name, (model, shape, classes, sizes) in cases.items()}
    answers = framework_check("torch_checks", {
        name: dict(fn="forward_flops", shapes={k: np.array(v) for k, v in shapes[name].items()},
                   input_shape=np.array(cases[name][1]))
        for name in cases})
    for name, (model, shape, classes, _) in cases.items():
        assert int(answers[name]) == models.forward_flops(shapes[name], shape), name


def test_gemm_peak_is_a_plausible_rate():
    one = peaks.gemm_peak(1, seconds=0.2)
    assert 0.5 < one < 1e5  # GFLOP/s: more than a slow laptop core's scalar rate, less than any CPU


def test_the_summary_s_rates_follow_from_results_csv(tmp_path):
    proc = run_compare("--engines", "reference", "--dataset", "iris", "--epochs", "6", "--no-report",
                       out=tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    summary, frame = proc.summary, proc.frame
    (row,) = summary["summary"]
    work, peak = summary["work"], summary["fingerprint"]["cpu_gemm_peak_gflops"]
    assert work["examples"] == 120 and work["train_flops_per_example"] == models.TRAINING_FACTOR * 140
    epoch_s = frame[frame.metric == "epoch_s"].sort_values("epoch").value.to_numpy()
    steady = float(np.median(epoch_s[1:]))
    assert row["steady_epoch_s"] == pytest.approx(steady)
    assert row["examples_per_s"] == pytest.approx(120 / steady)
    assert row["first_epoch_examples_per_s"] == pytest.approx(120 / epoch_s[0])
    assert row["gflops"] == pytest.approx(120 / steady * 3 * 140 / 1e9)
    assert peak > 0 and row["peak_fraction"] == pytest.approx(row["gflops"] / peak)
    assert work["peak_gflops"] == peak and work["peak_source"] == "CPU float32 GEMM (NumPy)"
    assert summary["fingerprint"]["cpu_nominal_peak"] == peaks.nominal_peak(0)
    assert summary["fingerprint"]["device_gemm_peak"] is None  # a CPU run probes no device
    header = " ".join(proc.stdout[proc.stdout.index(" engine "):].splitlines()[0].split())
    assert "steady epoch (95%) examples/s of peak machine" in header


def _cpuinfo_text(model: str, cores: int, flags: str, mhz: str = "1000.000") -> str:
    return "\n\n".join(f"processor\t: {i}\nmodel name\t: {model}\ncpu MHz\t\t: {mhz}\nphysical id\t: 0\n"
                       f"core id\t\t: {i}\nflags\t\t: {flags}" for i in range(cores)) + "\n"


def test_the_nominal_peak_of_a_known_cpu_is_its_published_one():
    # Xeon Gold 6148: 20 cores, AVX-512 with 2 FMA units, 2.4 GHz base; Intel publishes 1536 GFLOP/s in
    # float64 at base clock, i.e. 3072 in float32
    text = _cpuinfo_text("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", 20, "fpu sse avx fma avx2 avx512f")
    peak = peaks.nominal_peak(0, text)
    assert peak["gflops"] == pytest.approx(3072)
    assert "20 cores" in peak["formula"] and "AVX-512" in peak["formula"] and "model name" in peak["formula"]
    assert peaks.nominal_peak(5, text)["gflops"] == pytest.approx(3072 / 4)  # 5 of 20 cores
    avx2 = peaks.nominal_peak(0, _cpuinfo_text("Some CPU", 4, "avx fma avx2", mhz="3000.0"))
    assert avx2["gflops"] == pytest.approx(4 * 8 * 2 * 2 * 3.0) and "cpu MHz" in avx2["formula"]
    assert peaks.nominal_peak(0, _cpuinfo_text("Old CPU", 2, "sse sse2")) is None  # no vector FMA known


def test_this_machine_s_measured_peak_is_below_its_nominal_one():
    nominal = peaks.nominal_peak(1)
    if nominal is None:
        pytest.skip("the nominal peak cannot be derived on this machine (no /proc/cpuinfo, vector unit or clock)")
    measured = peaks.gemm_peak(1, seconds=0.3)
    # the clock read may be the base one while the core turbos: allow a margin above, none for "far above"
    assert measured < 1.5 * nominal["gflops"], (measured, nominal)


@needs_torch
def test_the_device_gemm_probe_measures_in_a_fresh_process():
    # the probe a cuda run makes, here on the CPU (no GPU on this machine): its CUDA lines are not executed
    proc = subprocess.run([sys.executable, "-m", "bridge.running.devicepeak", "--device", "cpu", "--framework", "torch",
                           "--seconds", "0.3"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["device"] == "cpu" and doc["framework"].startswith("torch ") and doc["size"] == 1024
    numpy_peak = peaks.gemm_peak(0, seconds=0.3)
    assert 0.2 * numpy_peak < doc["gflops"] < 5 * numpy_peak, (doc, numpy_peak)
    bad = subprocess.run([sys.executable, "-m", "bridge.running.devicepeak", "--device", "tpu"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "tpu" in bad.stderr
