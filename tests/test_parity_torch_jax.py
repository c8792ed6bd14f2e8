"""Parity: the torch and jax engines against the NumPy reference, same weights, same batches.

The cases and thresholds are keras' (tests/test_parity.py): per-step training loss, relative
difference <= 1e-5 over the first 50 SGD steps, <= 1e-4 over the first 50 Adam steps (Iris MLP,
Fashion-MNIST MLP) and over the first 10 steps of the CNN; every engine trained on byte-identical
batches. Reference, torch and jax run in one ``runner.run`` per case.

Also, in-process and fast: the layout helpers, the torch model built from the converted weights
against ``numpy_nn.forward``, and both engines' optimizers against ``numpy_nn`` in float32 (Keras'
Adam form, which ``torch.optim.Adam`` and ``optax.adam`` are not).
"""
import importlib.util
import json
import os

import numpy as np
import pandas as pd
import pytest

from bridge import layouts, parity, runner
from bridge.engines import numpy_nn
from bridge.engines import jaxjit as jaxjit_engine
from bridge.engines import pytorch as torch_engine
from bridge.models import cnn_feature_shape, parameter_shapes
from bridge.spec import Spec
from bridge.weights import glorot_uniform

from .test_parity import CASES, step_losses


def _missing(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


ENGINES = {
    "torch": dict(name="torch", mode="loop", missing=_missing("torch"),
                  install=torch_engine.INSTALL),
    "jax": dict(name="jax", mode="jit",
                missing=_missing("jax", "jaxlib", "optax"), install=jaxjit_engine.INSTALL),
}


def _skip_reason(key: str) -> str:
    e = ENGINES[key]
    return f"{', '.join(e['missing'])} not installed ({e['install']})"


needs_torch = pytest.mark.skipif(bool(ENGINES["torch"]["missing"]), reason=_skip_reason("torch"))
needs_jax = pytest.mark.skipif(bool(ENGINES["jax"]["missing"]), reason=_skip_reason("jax"))
AVAILABLE = [k for k, e in ENGINES.items() if not e["missing"]]


# --- parity through the runner ---------------------------------------------------------------------

@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    if not AVAILABLE:
        pytest.skip("; ".join(_skip_reason(k) for k in ENGINES))
    values, steps = CASES[request.param]
    if values.get("dataset") == "fashion-mnist":
        values = dict(values, data_dir=str(request.getfixturevalue("fashion_mnist_dir")))
    engines = ("reference", *(ENGINES[k]["name"] for k in AVAILABLE))
    spec = Spec(engines=engines, **values)
    out = tmp_path_factory.mktemp(request.param)
    res = runner.run(spec, out)
    return request.param, spec, steps, res, out


@pytest.mark.parametrize("key", list(ENGINES))
def test_engine_matches_the_reference_step_by_step(case, key):
    if ENGINES[key]["missing"]:
        pytest.skip(_skip_reason(key))
    name, spec, steps, res, _ = case
    engine, mode = ENGINES[key]["name"], ENGINES[key]["mode"]
    outcome = next(o for o in res.outcomes if o.run.engine == engine)
    assert outcome.ok, outcome.message
    ref = step_losses(res.frame, "reference", "float64")
    got = step_losses(res.frame, engine, mode)
    assert len(ref) >= steps and len(got) == len(ref)
    rel = parity.rel_diff(got[:steps], ref[:steps])
    print(f"{name} {key}/{mode}: max relative step-loss difference {rel.max():.2e} over {steps} steps")
    assert rel.max() <= parity.TOLERANCE[spec.optimizer], (key, rel.max())
    assert abs(ref[steps - 1] - ref[0]) > 1e-3  # training moved the loss: the comparison is not vacuous


def test_every_engine_trained_on_byte_identical_batches(case):
    _, _, _, res, out = case
    assert not res.failed, [o.message for o in res.outcomes]
    checksums = pd.read_csv(out / "checksums.csv", dtype={"crc32c": str})
    per_engine = {label: g.sort_values(["epoch", "step"]).crc32c.tolist()
                  for label, g in checksums.groupby(["engine", "mode"])}
    expected = {("reference", "float64")} | {(ENGINES[k]["name"], ENGINES[k]["mode"]) for k in AVAILABLE}
    assert set(per_engine) == expected
    first = next(iter(per_engine.values()))
    assert all(v == first for v in per_engine.values()) and len(first) > 0
    assert json.loads((out / "summary.json").read_text())["batches_identical"] is True


@needs_torch
def test_torch_reports_what_it_runs_with(case):
    _, spec, _, res, _ = case
    report = next(o for o in res.outcomes if o.run.engine == ENGINES["torch"]["name"]).report
    assert report["framework"] == "torch" and report["device"] == "cpu"
    assert report["threads"] == runner.resolve_threads(spec) and isinstance(report["threads"], int)
    assert report["tf32_matmul"] is False and report["tf32_cudnn"] is False
    assert report["import_s"] > 0 and report["build_s"] > 0


@needs_jax
def test_jax_reports_what_it_runs_with(case):
    _, spec, _, res, _ = case
    report = next(o for o in res.outcomes if o.run.engine == ENGINES["jax"]["name"]).report
    assert report["framework"] == "jax" and report["device"] == "cpu" and report["platform"] == "cpu"
    assert report["matmul_precision"] == "highest" and report["x64"] is False
    assert isinstance(report["threads"], int) and report["threads"] >= 1
    assert report["optax_version"] and report["jaxlib_version"]


# --- layout helpers (NumPy only) -------------------------------------------------------------------

rng = np.random.default_rng(0)


# --- torch, in process -----------------------------------------------------------------------------

def _random_weights(model: str, input_shape, classes: int, seed: int) -> dict:
    w = glorot_uniform(parameter_shapes(model, "fashion-mnist", input_shape, classes), seed)
    r = np.random.default_rng(seed + 1)
    return {k: (v + r.uniform(-0.1, 0.1, v.shape).astype(np.float32)) if k.endswith("/bias") else v
            for k, v in w.items()}  # non-zero biases, so their layout is checked too


@needs_torch
@pytest.mark.parametrize("model,input_shape", [("cnn", (2, 14, 12)), ("mlp", (20,))])
def test_torch_model_from_the_converted_weights_computes_the_reference(model, input_shape):
    import torch

    weights = _random_weights(model, input_shape, 5, 3)
    net, named = torch_engine.build_model(torch, model, "fashion-mnist", input_shape, 5)
    feature = cnn_feature_shape(input_shape) if model == "cnn" else None
    converted = layouts.to_torch(weights, feature)
    net = net.double()
    with torch.no_grad():
        for name, p in named:
            p.copy_(torch.from_numpy(converted[name]))
    x = rng.standard_normal((4, *input_shape))  # plan layout: NCHW or (N, F)
    got = net(torch.from_numpy(x)).detach().numpy()
    params = {k: v.astype(np.float64) for k, v in weights.items()}
    want = numpy_nn.forward(model, params, x.transpose(0, 2, 3, 1) if model == "cnn" else x)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def _ulp_close(got, want, *terms) -> bool:
    """|got - want| within one float32 ulp of ``want`` plus one of each rounded intermediate."""
    bound = np.spacing(np.abs(want).astype(np.float32))
    for t in terms:
        bound = bound + np.spacing(np.abs(t).astype(np.float32))
    return bool(np.all(np.abs(got.astype(np.float64) - want) <= bound))


@needs_torch
def test_torch_sgd_is_keras_sgd_up_to_a_fused_multiply_add():
    import torch

    w = rng.standard_normal(5000).astype(np.float32)
    g = rng.standard_normal(5000).astype(np.float32)
    p = torch.nn.Parameter(torch.from_numpy(w.copy()))
    p.grad = torch.from_numpy(g.copy())
    torch.optim.SGD([p], lr=float(np.float32(0.1))).step()
    keras = {"w": w.copy()}
    numpy_nn.SGD(0.1).apply(keras, {"w": g})
    # Keras rounds g*lr then w - g*lr; torch may fuse them (one rounding), so up to one ulp apart.
    assert _ulp_close(p.detach().numpy(), keras["w"], g * np.float32(0.1))


def _adam_runs(steps: int, epsilon: float, seed: int):
    r = np.random.default_rng(seed)
    shapes = {"k": (300, 7), "b": (7,), "c": (3, 3, 1, 32)}
    w0 = {k: r.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    grads = [{k: (r.standard_normal(s) * 0.1).astype(np.float32) for k, s in shapes.items()} for _ in range(steps)]
    keras = {k: v.copy() for k, v in w0.items()}
    opt = numpy_nn.Adam(0.01, 0.9, 0.999, epsilon)
    for g in grads:
        opt.apply(keras, g)
    return w0, grads, keras


def _displacement_error(got: dict, keras: dict, w0: dict) -> float:
    """Largest difference from Keras' weights, relative to how far Keras moved them."""
    return max(float(np.abs(np.asarray(got[k]) - keras[k]).max() / np.abs(keras[k] - w0[k]).max()) for k in keras)


@needs_torch
@pytest.mark.parametrize("epsilon", [1e-7, 0.1])
def test_torch_keras_adam_is_keras_adam(epsilon):
    import torch

    w0, grads, keras = _adam_runs(6, epsilon, 1)

    def run(make):
        params = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in w0.items()}
        opt = make(list(params.values()))
        for g in grads:
            for k, p in params.items():
                p.grad = torch.from_numpy(g[k].copy())
            opt.step()
        return {k: p.detach().numpy() for k, p in params.items()}

    ours = run(lambda ps: torch_engine.KerasAdam(torch)(ps, lr=0.01, epsilon=epsilon))
    # float32 rounding only: torch's vectorised CPU sqrt is within 1 ulp of the correctly rounded one
    assert _displacement_error(ours, keras, w0) < 1e-4
    if epsilon == 0.1:  # the test has teeth: torch's own Adam (eps on the corrected moment) is far off
        theirs = run(lambda ps: torch.optim.Adam(ps, lr=0.01, eps=epsilon))
        assert _displacement_error(theirs, keras, w0) > 0.5


# --- jax, in process -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jax_cpu():
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    return jax


@needs_jax
@pytest.mark.parametrize("model,input_shape", [("cnn", (2, 14, 12)), ("mlp", (20,))])
def test_jax_forward_computes_the_reference(jax_cpu, model, input_shape):
    from bridge.engines import jaxjit

    weights = _random_weights(model, input_shape, 5, 4)
    x = rng.standard_normal((4, *input_shape)).astype(np.float32)
    xk = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if model == "cnn" else x
    got = np.asarray(jax_cpu.jit(jaxjit.forward)(weights, xk))
    want = numpy_nn.forward(model, {k: v.astype(np.float64) for k, v in weights.items()}, xk)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@needs_jax
@pytest.mark.parametrize("epsilon", [1e-7, 0.1])
def test_jax_keras_adam_is_keras_adam(jax_cpu, epsilon):
    import optax

    from bridge.engines import jaxjit

    w0, grads, keras = _adam_runs(6, epsilon, 2)

    def run(tx):
        params = {k: jax_cpu.numpy.asarray(v) for k, v in w0.items()}
        state = tx.init(params)

        @jax_cpu.jit
        def step(params, state, g):
            updates, state = tx.update(g, state, params)
            return optax.apply_updates(params, updates), state

        for g in grads:
            params, state = step(params, state, g)
        return params

    ours = run(jaxjit.keras_adam(0.01, 0.9, 0.999, epsilon))
    # float32 rounding only: XLA contracts m + (g - m)*c into fused multiply-adds
    assert _displacement_error(ours, keras, w0) < 1e-4
    if epsilon == 0.1:
        assert _displacement_error(run(optax.adam(0.01, eps=epsilon)), keras, w0) > 0.5


@needs_jax
def test_jax_sgd_is_keras_sgd(jax_cpu):
    import optax

    w = rng.standard_normal(5000).astype(np.float32)
    g = rng.standard_normal(5000).astype(np.float32)
    tx = optax.sgd(float(np.float32(0.1)))
    updates, _ = tx.update(g, tx.init(w))
    got = np.asarray(optax.apply_updates(w, updates))
    keras = {"w": w.copy()}
    numpy_nn.SGD(0.1).apply(keras, {"w": g})
    assert _ulp_close(got, keras["w"], g * np.float32(0.1))
