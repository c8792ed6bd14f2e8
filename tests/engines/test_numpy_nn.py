"""Tests for bridge.engines.common.numpy_nn: gradients, the max-pool rules, and Keras parity of the loss, the
gradients, the max-pool tie routing and the optimizers. Keras runs in a subprocess of its own
(tests/framework_checks/tf_checks.py), once for the module; the assertions are here."""

import math

import numpy as np
import pytest

from bridge.engines.common import numpy_nn as nn

from tests.support import framework_check, needs_tf


def _glorot(rng, shape):
    fan_in, fan_out = int(np.prod(shape[:-1])), shape[-1]
    if len(shape) == 4:
        fan_in, fan_out = fan_in, shape[0] * shape[1] * shape[3]
    lim = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-lim, lim, size=shape)


def _mlp_params(rng, sizes):
    p = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        p[f"dense_{i}/kernel"] = _glorot(rng, (a, b))
        p[f"dense_{i}/bias"] = rng.normal(0, 0.1, size=b)
    return p


def _cnn_params(rng, cin, convs, flat, dense):
    p = {}
    for i, cout in enumerate(convs):
        p[f"conv_{i}/kernel"] = _glorot(rng, (3, 3, cin, cout))
        p[f"conv_{i}/bias"] = rng.normal(0, 0.1, size=cout)
        cin = cout
    p.update(_mlp_params(rng, [flat, *dense]))
    return p


def _max_rel_fd_error(model, params, x, y, rng, per_param=8, h=1e-5):
    """Central differences on a random subset of entries of every parameter (float64)."""
    _, grads = nn.loss_and_grads(model, params, x, y)
    worst = 0.0
    for name, p in params.items():
        for flat in rng.choice(p.size, size=min(per_param, p.size), replace=False):
            idx = np.unravel_index(flat, p.shape)
            old = p[idx]
            p[idx] = old + h
            lp, _ = nn.loss_and_grads(model, params, x, y)
            p[idx] = old - h
            lm, _ = nn.loss_and_grads(model, params, x, y)
            p[idx] = old
            fd, an = (lp - lm) / (2 * h), grads[name][idx]
            # Floor the denominator: for |grad| below ~1e-4 the FD round-off (~1e-11)
            # would dominate any relative measure.
            worst = max(worst, abs(fd - an) / max(abs(fd), abs(an), 1e-4))
    return worst


def test_gradcheck_mlp():
    rng = np.random.default_rng(1)
    params = _mlp_params(rng, [7, 9, 6, 4])
    x = rng.normal(size=(5, 7))
    y = rng.integers(0, 4, size=5)
    err = _max_rel_fd_error("mlp", params, x, y, rng)
    print(f"mlp finite-difference max rel error {err:.2e}")
    assert err < 1e-6


def test_gradcheck_cnn_odd_sizes():
    # 14x13x2: H 14->12->6->4->2, W 13->11->5 (pool drops a column)->3->1: flatten 2*1*5.
    rng = np.random.default_rng(2)
    params = _cnn_params(rng, 2, [4, 5], 10, [7, 4])
    x = rng.normal(size=(3, 14, 13, 2))
    y = np.array([0, 3, 1])
    assert nn.forward("cnn", params, x).shape == (3, 4)
    err = _max_rel_fd_error("cnn", params, x, y, rng)
    print(f"cnn finite-difference max rel error {err:.2e}")
    assert err < 1e-6


def test_cnn_forward_matches_naive_loops():
    rng = np.random.default_rng(3)
    params = _cnn_params(rng, 2, [3, 4], 4 * 1 * 1, [5, 3])
    x = rng.normal(size=(2, 11, 10, 2))

    def naive(x):
        h = x
        for i in range(2):
            k, b = params[f"conv_{i}/kernel"], params[f"conv_{i}/bias"]
            n, hh, ww, _ = h.shape
            z = np.zeros((n, hh - 2, ww - 2, k.shape[3]))
            for r in range(hh - 2):
                for c in range(ww - 2):
                    z[:, r, c, :] = np.einsum("nijc,ijco->no", h[:, r:r + 3, c:c + 3, :], k) + b
            a = np.maximum(z, 0)
            h2, w2 = a.shape[1] // 2, a.shape[2] // 2
            h = np.array([[[[a[s, 2 * r:2 * r + 2, 2 * c:2 * c + 2, o].max()
                             for o in range(a.shape[3])] for c in range(w2)]
                           for r in range(h2)] for s in range(a.shape[0])])
        h = np.maximum(h.reshape(len(h), -1) @ params["dense_0/kernel"] + params["dense_0/bias"], 0)
        return h @ params["dense_1/kernel"] + params["dense_1/bias"]

    np.testing.assert_allclose(nn.forward("cnn", params, x), naive(x), rtol=1e-12, atol=1e-12)


def test_maxpool_ties_route_to_first_element():
    a = np.zeros((1, 2, 2, 1))
    a[0, 0, 1, 0] = a[0, 1, 0, 0] = a[0, 1, 1, 0] = 2.0
    out, cache = nn._maxpool(a)
    da = nn._maxpool_backward(np.ones_like(out), cache)
    assert out[0, 0, 0, 0] == 2.0
    assert da[0, :, :, 0].tolist() == [[0.0, 1.0], [0.0, 0.0]]


def test_nnlib_rule_routes_a_near_tie_to_the_first_element_not_the_maximum():
    # NNlib's CPU ∇maxpool: the first element in scan order with y ≈ x (rtol √eps(Float32)) gets the gradient
    a = np.zeros((1, 2, 2, 1))
    a[0, 0, 0, 0], a[0, 0, 1, 0] = 1.0, 1.0001  # first slot within 1e-4 of the max in the second
    out, cache = nn._maxpool(a)
    exact = nn._maxpool_backward(np.ones_like(out), cache, "exact")
    nnlib = nn._maxpool_backward(np.ones_like(out), cache, "nnlib")
    assert exact[0, :, :, 0].tolist() == [[0.0, 1.0], [0.0, 0.0]]
    assert nnlib[0, :, :, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    # just outside the tolerance both rules pick the maximum; exact ties go to the first slot in both
    a[0, 0, 0, 0] = 1.0001 * (1 - 1.01 * nn.NNLIB_RTOL)
    assert nn._maxpool_backward(np.ones_like(out), nn._maxpool(a)[1], "nnlib")[0, 0].ravel().tolist() == [0.0, 1.0]
    a[0, 0, 0, 0] = 1.0001
    for rule in nn.MAXPOOL_RULES:
        assert nn._maxpool_backward(np.ones_like(out), nn._maxpool(a)[1], rule)[0, 0].ravel().tolist() == [1.0, 0.0]


def test_maxpool_rule_changes_only_cnn_gradients():
    rng = np.random.default_rng(9)
    mlp = _mlp_params(rng, [5, 4, 3])
    x, y = rng.normal(size=(6, 5)), rng.integers(0, 3, 6)
    exact, nnlib = (nn.loss_and_grads("mlp", mlp, x, y, rule)[1] for rule in nn.MAXPOOL_RULES)
    assert all(np.array_equal(exact[k], nnlib[k]) for k in mlp)
    # ~1 window in 10^4 holds a near tie: among 64 x 12 x 12 x 8 windows the rules disagree somewhere,
    # in the gradients only (the forward pass is the same)
    cnn = _cnn_params(rng, 1, [8], 12 * 12 * 8, [3])
    xi, yi = rng.normal(size=(64, 26, 26, 1)), rng.integers(0, 3, 64)
    (l1, g1), (l2, g2) = (nn.loss_and_grads("cnn", cnn, xi, yi, rule) for rule in nn.MAXPOOL_RULES)
    assert l1 == l2 and not np.array_equal(g1["conv_0/kernel"], g2["conv_0/kernel"])
    with pytest.raises(ValueError, match="accepted: exact, nnlib"):
        nn.loss_and_grads("cnn", cnn, xi, yi, "cudnn")


def test_float32_stays_float32():
    rng = np.random.default_rng(4)
    params = {k: v.astype(np.float32) for k, v in _mlp_params(rng, [5, 4, 3]).items()}
    loss, grads = nn.loss_and_grads("mlp", params, rng.normal(size=(6, 5)), rng.integers(0, 3, 6))
    assert isinstance(loss, float)
    assert all(g.dtype == np.float32 and g.shape == params[k].shape for k, g in grads.items())


# --- against Keras (TensorFlow backend), in one subprocess ------------------------------------------

def _keras_model_case(model: str):
    """Float32 parameters, inputs and labels of the Keras comparison of ``model``."""
    if model == "mlp":
        rng = np.random.default_rng(5)
        params = _mlp_params(rng, [784, 256, 128, 10])
        x, y = rng.random((32, 784)), rng.integers(0, 10, size=32)
    else:
        rng = np.random.default_rng(6)
        params = _cnn_params(rng, 1, [32, 64], 1600, [128, 10])
        x, y = rng.random((8, 28, 28, 1)), rng.integers(0, 10, size=8)
    return {k: v.astype(np.float32) for k, v in params.items()}, x.astype(np.float32), y


def _tie_case(dtype):
    rng = np.random.default_rng(8)
    # Few distinct values, so most 2x2 windows hold tied maxima; odd sizes crop.
    a = rng.integers(0, 2, size=(2, 7, 5, 3)).astype(dtype)
    dout = rng.normal(size=(2, 3, 2, 3)).astype(dtype)
    return a, dout


OPTIMIZERS = {"adam": (0.01, lambda: nn.Adam(learning_rate=0.01)), "sgd": (0.1, lambda: nn.SGD(0.1))}
DTYPES = (np.float32, np.float64)


def _optimizer_case():
    rng = np.random.default_rng(7)
    # Away from zero so relative error is meaningful; gradients span scales so that
    # epsilon matters for some entries.
    init = {"w": rng.choice([-1, 1], (5, 7)) * rng.uniform(0.5, 1.5, (5, 7)), "b": rng.uniform(0.5, 1.5, 3)}
    grads = [{k: rng.normal(size=v.shape) * 10.0 ** rng.integers(-8, 1, v.shape) for k, v in init.items()}
             for _ in range(20)]
    return init, grads


@pytest.fixture(scope="module")
def keras_answers():
    """Everything the tests below ask of Keras, computed in one TensorFlow subprocess."""
    calls = {}
    for model in ("mlp", "cnn"):
        params, x, y = _keras_model_case(model)
        calls[f"loss-grads-{model}"] = dict(fn="keras_loss_grads", model=model, params=params, x=x, y=y)
    for dtype in DTYPES:
        a, dout = _tie_case(dtype)
        calls[f"max-pool-{np.dtype(dtype).name}"] = dict(fn="max_pool_grad", a=a, dout=dout)
    init, grads = _optimizer_case()
    stacked = {k: np.stack([g[k] for g in grads]) for k in init}
    for kind, (lr, _) in OPTIMIZERS.items():
        for dtype in DTYPES:
            calls[f"{kind}-{np.dtype(dtype).name}"] = dict(fn="optimizer_trajectory", kind=kind, learning_rate=lr,
                                                           init=init, grads=stacked, dtype=np.dtype(dtype).name)
    return framework_check("tf_checks", calls)


@needs_tf
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_loss_and_gradients_match_keras(keras_answers, model):
    params32, x32, y = _keras_model_case(model)
    kloss, kgrads = keras_answers[f"loss-grads-{model}"]["loss"], keras_answers[f"loss-grads-{model}"]["grads"]
    loss, grads = nn.loss_and_grads(model, {k: v.astype(np.float64) for k, v in params32.items()},
                                    x32.astype(np.float64), y)
    assert set(kgrads) == set(params32)
    rel_loss = abs(loss - kloss) / abs(loss)
    worst = max(np.abs(grads[k] - kgrads[k]).max() / np.abs(grads[k]).max() for k in params32)
    print(f"{model} vs keras: loss rel diff {rel_loss:.2e}, max grad diff / max|grad| {worst:.2e}")
    assert rel_loss < 1e-5
    for k in params32:
        np.testing.assert_allclose(grads[k], kgrads[k], rtol=0, atol=1e-4 * np.abs(grads[k]).max(), err_msg=k)


@needs_tf
@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool_tie_routing_matches_tf(keras_answers, dtype):
    a, dout = _tie_case(dtype)
    tf_ = keras_answers[f"max-pool-{np.dtype(dtype).name}"]
    mine, cache = nn._maxpool(a)
    np.testing.assert_array_equal(mine, tf_["out"])
    np.testing.assert_array_equal(nn._maxpool_backward(dout, cache), tf_["grad"])


def _numpy_trajectory(make, init, grads, dtype):
    opt, params = make(), {k: v.astype(dtype) for k, v in init.items()}
    traj = []
    for g in grads:
        opt.apply(params, {k: g[k].astype(dtype) for k in init})
        traj.append(np.concatenate([params[k].ravel() for k in init]))
    return np.array(traj)


def _keras_trajectory(answer: dict, init) -> np.ndarray:
    steps = len(answer[next(iter(init))])
    return np.array([np.concatenate([answer[k][i].ravel() for k in init]) for i in range(steps)])


@needs_tf
@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_optimizer_matches_keras(keras_answers, kind):
    init, grads = _optimizer_case()
    make_n = OPTIMIZERS[kind][1]
    k32, k64 = (_keras_trajectory(keras_answers[f"{kind}-{np.dtype(d).name}"], init) for d in DTYPES)
    assert k32.dtype == np.float32 and k64.dtype == np.float64 and len(k32) == len(grads)
    n32, n64 = (_numpy_trajectory(make_n, init, grads, d) for d in DTYPES)
    ulps = (np.abs(k32.astype(np.float64) - n32) / np.spacing(np.abs(k32))).max()
    rel64 = (np.abs(k64 - n64) / np.abs(k64)).max()
    rel_oracle = (np.abs(k32 - n64) / np.abs(n64)).max()
    print(f"{kind}: float32 max {ulps:.0f} ulps; float64 max rel {rel64:.1e}; "
          f"float64 oracle vs keras float32 max rel {rel_oracle:.1e}")
    assert ulps <= 4
    # Bitwise equal in practice; 1e-12 (not 1e-6) so that losing the TF-backend float32
    # rounding of beta (a ~1e-6 drift over 20 Adam steps) fails the test.
    assert rel64 < 1e-12
    assert rel_oracle < 1e-5
