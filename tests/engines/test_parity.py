"""Parity: every engine and mode bridge registers (tf.keras fit and loop, Keras 3 on JAX and on PyTorch,
PyTorch, JAX, Flux, Knet) against the NumPy reference, same weights, same batches.

Per-step training loss, relative difference (bridge.results.parity.TOLERANCE): <= 1e-5 with SGD, <= 1e-4
with Adam, over the first bridge.results.parity.PARITY_STEPS steps (50 for an MLP, 10 for a CNN): the same numbers
every run's summary reports, which the test checks too. Two cases train sizes other than the defaults
(three hidden layers; one conv stage of 8 filters and a dense 32). Each engine is compared with the reference variant that models its max-pool
gradient rule (``semantics.reference_mode``): the exact one for TensorFlow, PyTorch and XLA, NNlib's for
Flux and Knet. On the CNN cases both variants run, and an engine must also be *outside* the tolerance of
the other variant, so the comparison tells the rules apart.

One ``runner.run`` per case runs the reference and every engine available here, each in its own worker
process; an engine that cannot run here is skipped with what it needs. The cases run two at a time, each
in a process of its own (``tests.support.concurrent_runs``): parity does not depend on the clock. The
pytest process imports no framework.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from bridge.experiment import semantics
from bridge.experiment.semantics import REFERENCE
from bridge.experiment.spec import Spec
from bridge.results import parity
from bridge.results.records import EngineMode
from bridge.results.store import Results
from bridge.running import runner, selection
from tests.support import concurrent_runs

ENGINE_RUNS = [EngineMode(e, m) for e, m in selection.resolve(()) if e != REFERENCE]
UNAVAILABLE = {e: selection.unavailable_reason(e) for e in dict.fromkeys(r.engine for r in ENGINE_RUNS)}
AVAILABLE = [e for e, reason in UNAVAILABLE.items() if not reason]

FMNIST = dict(dataset="fashion-mnist", data_source="cache", test_size=256)
CASES = {
    "iris-mlp-sgd": dict(optimizer="sgd", learning_rate=0.1, epochs=7),
    "iris-mlp-adam": dict(optimizer="adam", learning_rate=0.01, epochs=7),
    "fmnist-mlp-sgd": dict(FMNIST, optimizer="sgd", learning_rate=0.05, batch_size=32, train_size=1600, epochs=1),
    "fmnist-mlp-adam": dict(FMNIST, optimizer="adam", learning_rate=0.001, batch_size=32, train_size=1600, epochs=1),
    "fmnist-cnn-sgd": dict(FMNIST, model="cnn", optimizer="sgd", learning_rate=0.05, batch_size=32, train_size=320, epochs=1),
    "fmnist-cnn-adam": dict(FMNIST, model="cnn", optimizer="adam", learning_rate=0.001, batch_size=32, train_size=320, epochs=1),
    # one size other than the default per model: every engine builds its layers from the plan's shapes
    "fmnist-mlp3-adam": dict(FMNIST, optimizer="adam", learning_rate=0.001, batch_size=32, train_size=1600, epochs=1,
                             hidden=(64, 32, 16)),
    "fmnist-cnn1-adam": dict(FMNIST, model="cnn", optimizer="adam", learning_rate=0.001, batch_size=32, train_size=320,
                             epochs=1, filters=(8,), dense=32),
}
NNLIB_VARIANT = f"{REFERENCE}:{semantics.reference_mode('nnlib', 'cnn')}"


@dataclass
class Case:
    name: str
    spec: Spec
    steps: int
    results: Results


def case_spec(name: str, data_dir) -> Spec:
    """The case's run: the reference (on a CNN both its variants) and every engine available here."""
    values = CASES[name]
    if values.get("dataset") == "fashion-mnist":
        values = dict(values, data_dir=str(data_dir))
    variants = (NNLIB_VARIANT,) if values.get("model") == "cnn" else ()
    return Spec(engines=(REFERENCE, *variants, *AVAILABLE), **values)


@pytest.fixture(scope="module")
def case_runs(request, tmp_path_factory):
    """Every case run once, two at a time (parity does not depend on the clock), each in its own process;
    the Fashion-MNIST cases only where its offline source can build the data (the skip says why not)."""
    try:
        data_dir, no_data = request.getfixturevalue("fashion_mnist_dir"), ""
    except pytest.skip.Exception as e:
        data_dir, no_data = None, str(e)
    runs = {name: (case_spec(name, data_dir), tmp_path_factory.mktemp(name)) for name, values in CASES.items()
            if data_dir is not None or values.get("dataset") != "fashion-mnist"}
    with concurrent_runs(runs) as futures:
        yield {name: (runs[name][0], future) for name, future in futures.items()}, no_data


@pytest.fixture(scope="module", params=list(CASES))
def case(request, case_runs) -> Case:
    runs, no_data = case_runs
    if request.param not in runs:
        pytest.skip(no_data)
    spec, future = runs[request.param]
    return Case(request.param, spec, parity.PARITY_STEPS[spec.model], future.result())


def step_losses(frame: pd.DataFrame, engine: str, mode: str) -> np.ndarray:
    f = frame[(frame.engine == engine) & (frame["mode"] == mode) & (frame.metric == "step_loss")]
    return f.sort_values("step").value.to_numpy()


def outcome(res: Results, run: EngineMode):
    found = [o for o in res.outcomes if o.run == run]
    assert found, f"{run.label} did not run: {[o.run.label for o in res.outcomes]}"
    assert found[0].ok, found[0].message
    return found[0]


def available(engine: str):
    """Skip marker: ``engine`` cannot run here (the reason names what is missing and how to install it)."""
    return pytest.mark.skipif(bool(UNAVAILABLE[engine]), reason=UNAVAILABLE[engine] or "")


@pytest.mark.parametrize("run", [pytest.param(r, id=f"{r.engine}-{r.mode}", marks=available(r.engine))
                                 for r in ENGINE_RUNS])
def test_engine_matches_the_reference_step_by_step(case, run):
    spec, steps, frame = case.spec, case.steps, case.results.frame
    rule = outcome(case.results, run).run.maxpool_gradient  # as the selection decided it
    assert rule == semantics.rule_of(selection.module(run.engine), run.mode, spec.device)
    mode = semantics.reference_mode(rule, spec.model)
    outcome(case.results, EngineMode(REFERENCE, mode))
    ref, got = step_losses(frame, REFERENCE, mode), step_losses(frame, run.engine, run.mode)
    assert len(ref) >= steps and len(got) == len(ref), (len(got), len(ref))
    rel = parity.rel_diff(got[:steps], ref[:steps])
    print(f"{case.name} {run.label} ({rule} max-pool gradient): max relative step-loss difference "
          f"{rel.max():.2e} against reference/{mode} over {steps} steps")
    assert rel.max() <= parity.TOLERANCE[spec.optimizer], rel.max()
    # the run's own parity data (summary.json, the table) says the same
    (row,) = case.results.summary[case.results.summary.engine == run.label].to_dict("records")
    assert row["parity_pass"] is True and row["parity_max_rel_diff"] == pytest.approx(rel.max(), rel=1e-12, abs=0)
    # the comparison is not vacuous: training moved the loss
    assert abs(ref[steps - 1] - ref[0]) > 1e-3
    if spec.model == "cnn" and "filters" not in CASES[case.name]:
        # ... and it tells the max-pool gradient rules apart: the other variant is out of reach (on the
        # default CNN; the one-conv case is there for its sizes, and its variants differ by less)
        other_mode = next(m for m in semantics.REFERENCE_VARIANTS if m != mode)
        other = parity.rel_diff(got[:steps], step_losses(frame, REFERENCE, other_mode)[:steps]).max()
        print(f"{case.name} {run.label}: against reference/{other_mode} {other:.2e}")
        assert other > parity.TOLERANCE[spec.optimizer], other


@available("torch")
def test_torch_reports_what_it_runs_with(case):
    report = outcome(case.results, EngineMode("torch", "loop")).report
    assert report["framework"] == "torch" and report["device"] == "cpu"
    assert report["threads"] == runner.resolve_threads(case.spec.threads) and isinstance(report["threads"], int)
    assert report["reduced_precision"] is False
    assert report["precision"] == "allow_tf32 matmul=False cudnn=False, float32_matmul_precision=highest"
    assert report["import_s"] > 0 and report["build_s"] > 0


@available("jax")
def test_jax_reports_what_it_runs_with(case):
    report = outcome(case.results, EngineMode("jax", "jit")).report
    assert report["framework"] == "jax" and report["device"] == "cpu" and report["platform"] == "cpu"
    assert report["reduced_precision"] is False and report["x64"] is False
    assert report["precision"] == "jax_default_matmul_precision=highest"
    assert isinstance(report["threads"], int) and report["threads"] >= 1
    assert report["optax_version"] and report["jaxlib_version"]
