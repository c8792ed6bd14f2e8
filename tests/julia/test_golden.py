"""The golden fixtures of the Julia packages (julia/golden, written by `python -m tests.julia.golden`) encode
what Flux and Knet compute, checked here without Julia.

tests/nnlib_sim.py simulates BridgeFlux in float32 from the upstream NNlib/Flux sources (Julia
layouts, NNlib's ∇maxpool rule), independently of python/common/numpy_nn.py, which wrote the expected
losses. If the simulation reproduces expected/<case>.npy within golden.toml's tolerance, and the same
simulation with the exact max-pool rule does not, the Julia Pkg.test compares against the right
numbers: ones Flux/Knet can meet, and ones a wrong routing rule (or flatten order) cannot.
Run with ``pytest -s`` to see the per-case numbers.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from tests.support import ROOT
from .nnlib_sim import (RTOL, crosscor, flatten, julia_isapprox, load_case, maxpool, maxpool_backward,
                        simulate, tomllib)

GOLDEN = ROOT / "julia" / "golden"
TOML = tomllib.loads((GOLDEN / "golden.toml").read_text())
CASES = sorted(TOML["cases"])


def has_maxpool(case: str) -> bool:
    """Whether the case's model has a max-pool: a conv layer, each followed by MaxPool((2, 2))."""
    meta, _ = load_case(GOLDEN, case)
    return any(name.startswith("conv_") for name in meta["parameters"])


def tolerance(case: str) -> float:
    return float(TOML["tolerance"][TOML["cases"][case]["optimizer"]])


def max_relative_difference(losses: np.ndarray, expected: np.ndarray) -> float:
    """golden.toml's measure: the largest relative per-step loss difference."""
    return float(np.max(np.abs(losses.astype(np.float64) - expected) / np.abs(expected)))


@functools.cache
def result(case: str, rule: str) -> tuple[np.ndarray, float]:
    expected = np.load(GOLDEN / "expected" / f"{case}.npy")
    losses = simulate(GOLDEN, case, maxpool=rule)
    assert losses.shape == expected.shape, f"{case}: {losses.shape[0]} simulated steps, {expected.shape[0]} expected"
    return losses, max_relative_difference(losses, expected)


def test_fixtures_declare_nnlib_rule_and_cover_both_models():
    assert TOML["maxpool_gradient"] == "nnlib"
    assert {c for c in CASES if has_maxpool(c)} and {c for c in CASES if not has_maxpool(c)}
    assert all(TOML["cases"][c]["optimizer"] in TOML["tolerance"] for c in CASES)


@pytest.mark.parametrize("case", CASES)
def test_nnlib_simulation_reproduces_expected_losses(case):
    _, nnlib = result(case, "nnlib")
    _, exact = result(case, "exact")
    print(f"\n{case}: max relative difference vs expected/{case}.npy: nnlib routing {nnlib:.3e}, "
          f"exact routing {exact:.3e}, tolerance {tolerance(case):g}")
    assert nnlib <= tolerance(case)


@pytest.mark.parametrize("case", [c for c in CASES if TOML["cases"][c]["plan"] == "cnn"])
def test_cnn_fixtures_reject_exact_maxpool_routing(case):
    """The CNN plan has near-tie pooling windows that matter: with TensorFlow's exact rule the
    losses leave the tolerance, so the fixtures really encode NNlib's rule. (The cnn_sized plan is there
    for its sizes, one conv of 6 filters; its Adam case does not tell the rules apart.)"""
    _, exact = result(case, "exact")
    assert exact > tolerance(case), f"{case}: the exact rule is within tolerance ({exact:.3e})"


@pytest.mark.parametrize("case", [c for c in CASES if not has_maxpool(c)])
def test_mlp_fixtures_do_not_depend_on_maxpool_rule(case):
    np.testing.assert_array_equal(result(case, "nnlib")[0], result(case, "exact")[0])


# --- the simulated NNlib pieces on hand-built inputs ------------------------------------------------

def window(scan: list[float]) -> np.ndarray:
    """A 2×2×1×1 (W×H×C×N) input whose single 2×2 window holds `scan` in NNlib's scan order
    (kh outer, kw inner): x[0,0], x[1,0], x[0,1], x[1,1]."""
    return np.asarray(scan, np.float32).reshape(2, 2, 1, 1, order="F")


def routed(x: np.ndarray, rule: str) -> np.ndarray:
    """Where the window's gradient 1 goes, as a flat list in scan order."""
    y = maxpool(x)
    return maxpool_backward(np.ones_like(y), y, x, rule=rule).reshape(-1, order="F")


def test_julia_isapprox_float32_default_tolerance():
    assert RTOL == np.float32(0.00034526698)  # sqrt(eps(Float32)) in Julia
    assert julia_isapprox(np.float32(1.0), np.float32(1.0001))
    assert julia_isapprox(np.float32(1.0003), np.float32(1.0))
    assert not julia_isapprox(np.float32(1.0004), np.float32(1.0))
    assert julia_isapprox(np.float32(0.0), np.float32(0.0))
    assert not julia_isapprox(np.float32(0.0), np.float32(1e-30))  # atol = 0
    assert not julia_isapprox(np.float32(np.inf), np.float32(3e38))


def test_maxpool_gradient_near_tie_nnlib_takes_first_exact_takes_max():
    x = window([1.0, 1.0001, 0.5, 0.25])
    assert maxpool(x).item() == np.float32(1.0001)
    np.testing.assert_array_equal(routed(x, "nnlib"), [1, 0, 0, 0])
    np.testing.assert_array_equal(routed(x, "exact"), [0, 1, 0, 0])


def test_maxpool_gradient_beyond_rtol_both_rules_take_max():
    x = window([1.0, 1.001, 0.5, 0.25])  # 1e-3 apart: not ≈
    np.testing.assert_array_equal(routed(x, "nnlib"), [0, 1, 0, 0])
    np.testing.assert_array_equal(routed(x, "exact"), [0, 1, 0, 0])


def test_maxpool_gradient_exact_tie_both_rules_take_first():
    x = window([0.5, 2.0, 2.0, 1.0])
    np.testing.assert_array_equal(routed(x, "nnlib"), [0, 1, 0, 0])
    np.testing.assert_array_equal(routed(x, "exact"), [0, 1, 0, 0])


def test_maxpool_gradient_scans_width_innermost():
    # x[1,0] (second in scan order) and x[0,1] (third) are both ≈ the max x[1,1]: NNlib's
    # `for kd, kh, kw` loop reaches x[1,0] first.
    x = window([0.0, 1.0, 1.00005, 1.0001])
    np.testing.assert_array_equal(routed(x, "nnlib"), [0, 1, 0, 0])
    np.testing.assert_array_equal(routed(x, "exact"), [0, 0, 0, 1])


def test_maxpool_drops_odd_trailing_row_and_column():
    x = np.arange(5 * 3, dtype=np.float32).reshape(5, 3, 1, 1, order="F")  # x[w,h] = w + 5h
    y = maxpool(x)
    assert y.shape == (2, 1, 1, 1)
    np.testing.assert_array_equal(y[:, 0, 0, 0], [6, 8])  # max of x[0:2, 0:2] and x[2:4, 0:2]
    dx = maxpool_backward(np.ones_like(y), y, x)
    assert dx[4].sum() == 0 and dx[:, 2].sum() == 0


def test_crosscor_matches_nnlib_direct_index_formula():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5, 2, 3)).astype(np.float32)
    k = rng.standard_normal((3, 2, 2, 4)).astype(np.float32)
    y = crosscor(x, k)
    ref = np.zeros((4, 4, 4, 3))
    for w in range(4):
        for h in range(4):
            for co in range(4):
                for n in range(3):
                    ref[w, h, co, n] = sum(float(x[w + a, h + b, ci, n]) * float(k[a, b, ci, co])
                                           for a in range(3) for b in range(2) for ci in range(2))
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_flatten_is_column_major_over_whc():
    x = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2, order="F")
    f = flatten(x)
    assert f.shape == (24, 2)
    w, h, c, n = 1, 2, 3, 1
    assert f[w + 2 * h + 2 * 3 * c, n] == x[w, h, c, n]
