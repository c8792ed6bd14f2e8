"""Unit checks of the torch engine (bridge.engines.torch) against numpy_nn: its model built from the
weights ``layouts.to_torch`` converts computes the reference's logits, torch's SGD step is Keras', and
``KerasAdam`` (a ``torch.optim`` optimizer) is Keras' Adam, which ``torch.optim.Adam`` is not. PyTorch
runs in a subprocess of its own (tests/framework_checks/torch_checks.py), once for the module; the
assertions are here. Parity through the runner: tests/test_parity.py."""
import numpy as np
import pytest

from bridge.experiment import layouts
from bridge.engines.common import numpy_nn
from bridge.experiment.models import cnn_feature_shape, layer_sizes

from tests.support import (EPSILONS, MODEL_CASES, displacement_error, framework_check, keras_adam_case, model_shapes,
                      needs_torch, optimizer_calls, random_weights, sgd_case, ulp_close)

MODELS = MODEL_CASES


def _model_case(case: str):
    model, input_shape, sizes = MODELS[case]
    weights = random_weights(model, input_shape, 5, 3, **sizes)
    x = np.random.default_rng(10).standard_normal((4, *input_shape))  # plan layout: NCHW or (N, F)
    return input_shape, weights, x


@pytest.fixture(scope="module")
def torch_answers():
    """Everything the tests below ask of PyTorch, computed in one subprocess."""
    calls = {}
    for case, (model, _, sizes) in MODELS.items():
        input_shape, weights, x = _model_case(case)
        shapes = model_shapes(model, input_shape, 5, **sizes)
        feature = cnn_feature_shape(input_shape, layer_sizes(shapes)[0]) if model == "cnn" else None
        calls[f"forward-{case}"] = dict(fn="model_forward", shapes={k: np.array(v) for k, v in shapes.items()},
                                        input_shape=np.array(input_shape), weights=layouts.to_torch(weights, feature),
                                        x=x)
    calls.update(optimizer_calls("torch", sgd_seed=11, adam_seed=1))
    return framework_check("torch_checks", calls)


@needs_torch
@pytest.mark.parametrize("case", list(MODELS))
def test_torch_model_from_the_converted_weights_computes_the_reference(torch_answers, case):
    model = MODELS[case][0]
    _, weights, x = _model_case(case)
    params = {k: v.astype(np.float64) for k, v in weights.items()}
    want = numpy_nn.forward(model, params, x.transpose(0, 2, 3, 1) if model == "cnn" else x)
    np.testing.assert_allclose(torch_answers[f"forward-{case}"], want, rtol=1e-10, atol=1e-12)


@needs_torch
def test_torch_sgd_is_keras_sgd_up_to_a_fused_multiply_add(torch_answers):
    w, g = sgd_case(11)
    keras = {"w": w.copy()}
    numpy_nn.SGD(0.1).apply(keras, {"w": g})  # the step optimizer_calls asks for (support.LR)
    # Keras rounds g*lr then w - g*lr; torch may fuse them (one rounding), so up to one ulp apart.
    assert ulp_close(torch_answers["sgd"], keras["w"], g * np.float32(0.1))


@needs_torch
@pytest.mark.parametrize("epsilon", EPSILONS)
def test_torch_keras_adam_is_keras_adam(torch_answers, epsilon):
    i = EPSILONS.index(epsilon)
    w0, _, keras = keras_adam_case(6, epsilon, 1)
    # float32 rounding only: torch's vectorised CPU sqrt is within 1 ulp of the correctly rounded one
    assert displacement_error(torch_answers[f"adam-keras-{i}"], keras, w0) < 1e-4
    if epsilon == 0.1:  # the test has teeth: torch's own Adam (eps on the corrected moment) is far off
        assert displacement_error(torch_answers[f"adam-torch-{i}"], keras, w0) > 0.5
