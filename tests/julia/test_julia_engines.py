"""The flux and knet engines from Python: unavailable without Julia, golden fixtures, the saved plan,
the zero-copy hand-off contract. Their parity against the reference (where Julia is set up) is in
tests/engines/test_parity.py, with every other engine's."""
import ctypes
import subprocess
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import numpy as np
import pytest

from bridge.engines.common.julia_session import JuliaEngine, JuliaSession, precision
from bridge.experiment import plan as batch_plan
from bridge.experiment.spec import Spec
from bridge.julia import record

from . import golden
from bridge.results.parity import TOLERANCE
from tests.support import ROOT, needs_tf, run_compare

from . import nnlib_sim

JULIA_ENGINES = ("flux", "knet")


@pytest.fixture
def no_julia_record(tmp_path, monkeypatch):
    monkeypatch.setenv("BRIDGE_JULIA_RECORD", str(tmp_path / "none.json"))


@needs_tf
def test_without_julia_keras_runs_and_flux_knet_are_reported_with_the_setup_command(tmp_path, no_julia_record):
    proc = run_compare("--dataset", "iris", "--engines", "keras,flux,knet", "--epochs", "2", out=tmp_path / "out",
                       timeout=600)
    assert proc.returncode == 1
    for engine in JULIA_ENGINES:
        line = next(l for l in proc.stderr.splitlines() if f"{engine}/loop unavailable: {engine} needs" in l)
        assert "python -m bridge.julia setup" in line
    frame = proc.frame
    assert set(frame.engine) == {"keras"} and len(frame[frame.metric == "step_loss"]) == 2 * 2 * 8
    status = {e["engine"]: e["status"] for e in proc.summary["engines"]}
    assert status == {"keras": "ok", "flux": "unavailable", "knet": "unavailable"}


def test_a_run_of_only_engines_that_cannot_run_here_exits_2_before_writing_anything(tmp_path, no_julia_record):
    out = tmp_path / "out"
    proc = run_compare("--dataset", "iris", "--engines", "flux,knet", "--epochs", "2", out=out, timeout=300)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("bridge.compare: error: none of the engines asked for can run here: flux/loop: flux needs")
    assert "; knet/loop: knet needs" in line and line.count("python -m bridge.julia setup") == 2
    assert not out.exists()


def test_golden_fixtures_are_what_the_reference_computes(tmp_path):
    """The committed julia/golden cases (for Pkg.test) are reproduced by `python -m tests.julia.golden`."""
    fresh = golden.write(tmp_path)
    committed = ROOT / "julia" / "golden"
    assert (committed / "golden.toml").read_text() == (tmp_path / "golden.toml").read_text()
    for name in golden.CASES:
        assert np.allclose(np.load(committed / "expected" / f"{name}.npy"), fresh[name], rtol=1e-10, atol=0)
    for f in sorted(tmp_path.rglob("*")):
        if f.is_file() and (f.parent.name != "expected" or "_train.e" in f.name):  # gathered epochs too
            assert f.read_bytes() == (committed / f.relative_to(tmp_path)).read_bytes(), f
    assert sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file()) == sorted(
        p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())


@pytest.mark.parametrize("plan", sorted(golden.PLANS))
def test_julia_s_gather_of_every_golden_epoch_is_python_s(plan):
    """plan.jl's `epoch_data` (split in Julia layout indexed by the 1-based permutation), as simulated in
    tests/nnlib_sim.py, against the epochs Python gathered into the fixtures for Pkg.test."""
    meta = {"dir": ROOT / "julia" / "golden" / plan}
    epochs = tomllib.loads((meta["dir"] / "plan.toml").read_text())["epochs"]
    for e in range(epochs):
        x, y = nnlib_sim.epoch_data(meta, e)
        expected = ROOT / "julia" / "golden" / "expected"
        px = np.load(expected / golden.gathered_file(plan, "x", e))
        assert x.shape == px.shape[::-1] and np.array_equal(x, px.T)  # Julia layout: the axes reversed
        assert np.array_equal(y, np.load(expected / golden.gathered_file(plan, "y", e)))


def test_golden_cases_share_one_plan_per_model_and_carry_the_parity_tolerance():
    doc = tomllib.loads((ROOT / "julia" / "golden" / "golden.toml").read_text())
    assert doc["tolerance"] == TOLERANCE and doc["maxpool_gradient"] == "nnlib"
    plans = ("mlp", "cnn", "mlp_sized", "cnn_sized")  # the default sizes, and other ones
    assert {c["plan"] for c in doc["cases"].values()} == set(plans)
    assert {(c["plan"], c["optimizer"]) for c in doc["cases"].values()} == {
        (p, o) for p in plans for o in ("sgd", "adam")}
    sized = {p: tomllib.loads((ROOT / "julia" / "golden" / p / "plan.toml").read_text()) for p in plans}
    # the sized plans' weights differ in shape from the default ones: Julia reads the sizes from the plan
    assert sized["cnn_sized"]["feature_shape"][-1] == 6 and sized["cnn"]["feature_shape"][-1] == 64
    cnn = tomllib.loads((ROOT / "julia" / "golden" / "cnn" / "plan.toml").read_text())
    # a feature map larger than 1x1 and not square, so the WHCN flatten order is exercised
    h, w, _ = cnn["feature_shape"]
    assert h * w > 1 and h != w


def test_save_plan_writes_what_a_julia_user_needs(tmp_path):
    """A saved plan carries the Julia layout even when no Julia engine ran on it."""
    plan_dir = tmp_path / "plan"
    proc = run_compare("--engines", "reference", "--epochs", "2", "--save-plan", plan_dir, out=tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "out" / "plan").exists()
    meta = tomllib.loads((plan_dir / "plan.toml").read_text())
    assert meta["epochs"] == 2 and meta["optimizer"] == "adam" and meta["steps_per_epoch"] == 8
    for name in meta["parameters"]:
        w = np.load(plan_dir / "julia" / "weights" / (name.replace("/", ".") + ".npy"))
        neutral = np.load(plan_dir / "weights" / (name.replace("/", ".") + ".npy"))
        assert w.shape == neutral.shape[::-1]  # Dense (in, out) -> (out, in) for Flux/Knet
    # the splits once and one permutation per epoch (what Julia's epoch_data gathers)
    assert np.load(plan_dir / "x_train.npy").shape == (120, 4)
    order = np.load(plan_dir / "order.e0001.npy")
    assert order.dtype == np.int32 and sorted(order) == list(range(120))
    assert not list(plan_dir.glob("x_train.e*.npy"))


class StandInJulia:
    """Stands in for the Julia package (no Julia can run here): wraps an address the way
    `unsafe_wrap(Array, Ptr{Float32}(ptr), dims)` does, i.e. column-major over the same bytes."""

    @staticmethod
    def _wrap(ptr, dims, ctype, dtype):
        n = int(np.prod(dims))
        buf = (ctype * n).from_address(ptr)
        return np.frombuffer(buf, dtype=dtype).reshape(dims, order="F")

    def wrap_inputs(self, ptr, *dims):
        return self._wrap(ptr, dims, ctypes.c_float, np.float32)

    def wrap_labels(self, ptr, n):
        return self._wrap(ptr, (n,), ctypes.c_int32, np.int32)


def test_batches_reach_julia_as_the_same_memory_in_julia_layout(tmp_path):
    plan = batch_plan.prepare(
        Spec(dataset="synthetic", model="cnn", synthetic_shape="3,12,10", synthetic_samples=20, epochs=1), tmp_path)
    x, y = plan.epoch(0)
    xj, yj = JuliaEngine.to_julia(StandInJulia(), x, y)
    assert xj.shape == (10, 12, 3, 20)  # WHCN
    assert np.shares_memory(xj, x) and xj.ctypes.data == x.ctypes.data
    n, c, h, w = 7, 2, 5, 9
    assert xj[w, h, c, n] == x[n, c, h, w]
    assert np.array_equal(yj, y) and yj.ctypes.data == y.ctypes.data
    with pytest.raises(ValueError, match="C-contiguous float32"):
        JuliaEngine.to_julia(StandInJulia(), np.asfortranarray(x[:, 0]))


@pytest.mark.parametrize("engine", JULIA_ENGINES)
def test_batches_reach_real_julia_without_a_copy(engine):
    """In its own process (juliacall must not share one with TensorFlow)."""
    reason = record.unavailable_reason(engine)
    if reason:
        pytest.skip(reason)
    proc = subprocess.run([sys.executable, "-m", "bridge.julia", "check", engine], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "zero-copy hand-off verified" in proc.stdout


def test_julia_check_without_julia_names_the_setup_command(no_julia_record):
    proc = subprocess.run([sys.executable, "-m", "bridge.julia", "check", "flux"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "python -m bridge.julia setup" in proc.stderr


def test_a_julia_report_speaks_the_report_s_vocabulary_of_precision():
    """The Julia packages report CUDA.jl's math mode; the engine reports reduced precision as every other
    engine does: allowed unless the mode is pedantic or NVIDIA_TF32_OVERRIDE=0 forbids it."""
    assert precision({"device": "cpu"}) == {"reduced_precision": False, "precision": "float32 throughout (CPU)"}
    gpu = {"cuda_math_mode": "DEFAULT_MATH", "NVIDIA_TF32_OVERRIDE": "0"}
    assert precision(gpu) == {"reduced_precision": False,
                              "precision": "CUDA.math_mode=DEFAULT_MATH, NVIDIA_TF32_OVERRIDE=0"}
    assert "cuda_math_mode" not in gpu  # one vocabulary: the framework's words only inside `precision`
    assert precision({"cuda_math_mode": "DEFAULT_MATH"})["reduced_precision"] is True
    assert precision({"cuda_math_mode": "PEDANTIC_MATH"})["reduced_precision"] is False


class StandInJuliaFunction:
    """Stands in for a Julia function reached through juliacall (no Julia can run here): records whether
    it was called plainly (the GIL held throughout) or through ``_jl_call_nogil`` (released while it runs)."""

    def __init__(self, function, calls: list):
        self.function, self.calls = function, calls

    def __call__(self, *args):
        self.calls.append("GIL held")
        return self.function(*args)

    def _jl_call_nogil(self, *args):
        self.calls.append("GIL released")
        return self.function(*args)


def test_julia_epochs_and_predictions_run_with_the_gil_released(tmp_path):
    """So that the worker's own threads run meanwhile: the memory sampler during a Julia epoch, and the
    parent watcher that ends an orphaned worker (the parent-death signal covers it too)."""
    plan = batch_plan.prepare(Spec(dataset="iris", epochs=1), tmp_path)
    x, y = plan.epoch(0)
    calls = []
    module = StandInJulia()
    module.train_epoch = StandInJuliaFunction(lambda handle, xj, yj: (np.zeros(plan.steps_per_epoch, np.float32),
                                                                       0.5), calls)
    module.predict = StandInJuliaFunction(lambda handle, xj: np.zeros((3, xj.shape[-1]), np.float32, order="F"),
                                          calls)
    module.last_pass_compile_seconds = lambda: 0.25  # what timed_pass kept: plain Julia, the GIL held
    session = JuliaSession(module, handle="a Julia session")
    result = JuliaEngine("flux").train_epoch(session, x, y)
    assert len(result.losses) == plan.steps_per_epoch and result.seconds == 0.5 and result.compile_s == 0.25
    assert JuliaEngine("flux").predict(session, x).shape == (len(x), 3)
    assert calls == ["GIL released", "GIL released"]
