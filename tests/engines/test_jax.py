"""Unit checks of the jax engine (bridge.engines.jax) against numpy_nn: its forward pass computes the
reference's logits, optax's SGD step is Keras', and ``keras_adam`` (an optax transformation) is Keras'
Adam, which ``optax.adam`` is not. JAX runs in a subprocess of its own on the CPU
(tests/framework_checks/jax_checks.py), once for the module; the assertions are here. Parity through the
runner: tests/test_parity.py."""
import numpy as np
import pytest

from bridge.engines.common import numpy_nn

from tests.support import (EPSILONS, MODEL_CASES, displacement_error, framework_check, keras_adam_case, needs_jax,
                      optimizer_calls, random_weights, sgd_case, ulp_close)

MODELS = MODEL_CASES


def _model_case(case: str):
    """Keras-layout weights and float32 inputs in the engine's layout (NHWC or (N, F))."""
    model, input_shape, sizes = MODELS[case]
    weights = random_weights(model, input_shape, 5, 4, **sizes)
    x = np.random.default_rng(20).standard_normal((4, *input_shape)).astype(np.float32)
    return weights, np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if model == "cnn" else x


@pytest.fixture(scope="module")
def jax_answers():
    """Everything the tests below ask of JAX, computed in one subprocess."""
    calls = {}
    for case in MODELS:
        weights, x = _model_case(case)
        calls[f"forward-{case}"] = dict(fn="forward", weights=weights, x=x)
    calls.update(optimizer_calls("optax", sgd_seed=21, adam_seed=2))
    return framework_check("jax_checks", calls)


@needs_jax
@pytest.mark.parametrize("case", list(MODELS))
def test_jax_forward_computes_the_reference(jax_answers, case):
    weights, x = _model_case(case)
    want = numpy_nn.forward(MODELS[case][0], {k: v.astype(np.float64) for k, v in weights.items()}, x)
    np.testing.assert_allclose(jax_answers[f"forward-{case}"], want, rtol=1e-4, atol=1e-5)


@needs_jax
@pytest.mark.parametrize("epsilon", EPSILONS)
def test_jax_keras_adam_is_keras_adam(jax_answers, epsilon):
    i = EPSILONS.index(epsilon)
    w0, _, keras = keras_adam_case(6, epsilon, 2)
    # float32 rounding only: XLA contracts m + (g - m)*c into fused multiply-adds
    assert displacement_error(jax_answers[f"adam-keras-{i}"], keras, w0) < 1e-4
    if epsilon == 0.1:  # the test has teeth: optax's Adam (eps on the corrected moment) is far off
        assert displacement_error(jax_answers[f"adam-optax-{i}"], keras, w0) > 0.5


@needs_jax
def test_jax_sgd_is_keras_sgd(jax_answers):
    w, g = sgd_case(21)
    keras = {"w": w.copy()}
    numpy_nn.SGD(0.1).apply(keras, {"w": g})  # the step optimizer_calls asks for (support.LR)
    assert ulp_close(jax_answers["sgd"], keras["w"], g * np.float32(0.1))
