"""Parity: the keras engines (tf.keras fit and loop, Keras 3 on JAX and on PyTorch) against the NumPy
reference, same weights, same batches.

Per-step training loss, relative difference (bridge.parity.TOLERANCE): <= 1e-5 over the first 50 SGD
steps, <= 1e-4 over the first 50 Adam steps (Iris MLP, Fashion-MNIST MLP) and over the first 10 steps
of the CNN. On the CNN the reference's NNlib variant runs too: the TensorFlow family matches the exact
variant (Keras' max-pool gradient), and not the NNlib one.
"""
import json

import numpy as np
import pandas as pd
import pytest

from bridge import parity, registry, runner
from bridge.spec import Spec

KERAS_RUNS = [("keras", "fit"), ("keras", "loop"), ("keras-jax", "fit"), ("keras-torch", "fit")]

FMNIST = dict(dataset="fashion-mnist", data_source="cache", test_size=256)
CASES = {
    "iris-mlp-sgd": (dict(optimizer="sgd", learning_rate=0.1, epochs=7), 50),
    "iris-mlp-adam": (dict(optimizer="adam", learning_rate=0.01, epochs=7), 50),
    "fmnist-mlp-sgd": (dict(FMNIST, optimizer="sgd", learning_rate=0.05, batch_size=32, train_size=1600, epochs=1), 50),
    "fmnist-mlp-adam": (dict(FMNIST, optimizer="adam", learning_rate=0.001, batch_size=32, train_size=1600, epochs=1), 50),
    "fmnist-cnn-sgd": (dict(FMNIST, model="cnn", optimizer="sgd", learning_rate=0.05, batch_size=32, train_size=320, epochs=1), 10),
    "fmnist-cnn-adam": (dict(FMNIST, model="cnn", optimizer="adam", learning_rate=0.001, batch_size=32, train_size=320, epochs=1), 10),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    values, steps = CASES[request.param]
    if values.get("dataset") == "fashion-mnist":
        values = dict(values, data_dir=str(request.getfixturevalue("fashion_mnist_dir")))
    available = [e for e in dict.fromkeys(e for e, _ in KERAS_RUNS) if not registry.unavailable_reason(e)]
    variants = ("reference:nnlib",) if values.get("model") == "cnn" else ()
    spec = Spec(engines=("reference", *variants, *available), **values)
    out = tmp_path_factory.mktemp(request.param)
    res = runner.run(spec, out)
    return request.param, spec, steps, res, out


def step_losses(frame: pd.DataFrame, engine: str, mode: str) -> np.ndarray:
    f = frame[(frame.engine == engine) & (frame["mode"] == mode) & (frame.metric == "step_loss")]
    return f.sort_values("step").value.to_numpy()


@pytest.mark.parametrize("engine, mode", KERAS_RUNS, ids=[f"{e}-{m}" for e, m in KERAS_RUNS])
def test_keras_engine_matches_the_reference_step_by_step(case, engine, mode):
    reason = registry.unavailable_reason(engine)
    if reason:
        pytest.skip(reason)
    name, spec, steps, res, _ = case
    assert not res.failed, [o.message for o in res.outcomes]
    ref = step_losses(res.frame, "reference", "float64")
    assert len(ref) >= steps
    got = step_losses(res.frame, engine, mode)
    rel = parity.rel_diff(got[:steps], ref[:steps])
    print(f"{name} {engine}/{mode}: max relative step-loss difference {rel.max():.2e} over {steps} steps")
    assert rel.max() <= parity.TOLERANCE[spec.optimizer], rel.max()
    # the comparison is not vacuous: training moved the loss
    assert abs(ref[steps - 1] - ref[0]) > 1e-3
    if spec.model == "cnn":
        # ... and it tells the max-pool gradient rules apart: NNlib's is not what TensorFlow/XLA/PyTorch do
        other = parity.rel_diff(got[:steps], step_losses(res.frame, "reference", "nnlib")[:steps]).max()
        print(f"{name} {engine}/{mode}: against the NNlib variant {other:.2e}")
        assert other > parity.TOLERANCE[spec.optimizer], other


def test_every_engine_trained_on_byte_identical_batches(case):
    _, _, _, res, out = case
    checksums = pd.read_csv(out / "checksums.csv", dtype={"crc32c": str})
    per_engine = {label: g.sort_values(["epoch", "step"]).crc32c.tolist()
                  for label, g in checksums.groupby(["engine", "mode"])}
    ran = {(o.run.engine, o.run.mode) for o in res.outcomes if o.ok}
    assert set(per_engine) == ran and ("reference", "float64") in ran and len(ran) >= 2
    first = next(iter(per_engine.values()))
    assert all(v == first for v in per_engine.values()) and len(first) > 0
    assert json.loads((out / "summary.json").read_text())["batches_identical"] is True
