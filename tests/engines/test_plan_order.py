"""Every engine trains the plan's batches in the plan's order.

The checksums prove only that the batches an engine was handed are the plan's; they cannot see the order
in which the framework then trained them (``model.fit`` shuffling, a loop over the batches in another
order). Here every available engine trains with SGD at a learning rate so small that the weights do not
move (1e-12; the spec refuses 0), so the loss it reports for step ``i`` of epoch ``e`` must be the loss of
the plan's batch ``i`` of epoch ``e`` at the initial weights, computed here independently in float64 from
the plan (its weights, its epoch arrays, NHWC through bridge.experiment.layouts for the CNN), within 1e-5 relative.
Any other order fails, because every batch's loss differs from every other's by far more than that.
"""
import numpy as np
import pytest

from bridge.experiment import layouts
from bridge.experiment import plan as batchplan
from bridge.experiment.spec import Spec
from bridge.results.records import EngineMode
from bridge.running import selection
from tests.support import concurrent_runs

RUNS = [EngineMode(e, m) for e, m in selection.resolve(())]
TOLERANCE = 1e-5

CASES = {
    "iris-mlp": dict(dataset="iris", batch_size=16),
    "synthetic-cnn": dict(dataset="synthetic", model="cnn", synthetic_shape="1,12,12", synthetic_samples=96,
                          batch_size=16),
}


# --- an independent float64 forward pass ------------------------------------------------------------------

def _conv_relu_pool(h: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """NHWC valid 3x3 cross-correlation, relu, 2x2 max-pool (odd trailing row/column dropped)."""
    kh, kw = kernel.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(h, (kh, kw), axis=(1, 2))  # (N, Ho, Wo, C, kh, kw)
    z = np.einsum("nhwcij,ijco->nhwo", win, kernel) + bias
    a = np.maximum(z, 0.0)
    n, ho, wo, c = a.shape
    a = a[:, :ho // 2 * 2, :wo // 2 * 2, :].reshape(n, ho // 2, 2, wo // 2, 2, c)
    return a.max(axis=(2, 4))


def logits(params: dict, x: np.ndarray) -> np.ndarray:
    """``x`` in plan layout: ``(N, F)`` or NCHW."""
    h = np.asarray(x, dtype=np.float64)
    if h.ndim == 4:
        h = layouts.nchw_to_nhwc(h)
        i = 0
        while f"conv_{i}/kernel" in params:
            h = _conv_relu_pool(h, params[f"conv_{i}/kernel"], params[f"conv_{i}/bias"])
            i += 1
        h = h.reshape(len(h), -1)  # NHWC flatten, the neutral layout's
    n_dense = sum(1 for k in params if k.startswith("dense_") and k.endswith("/kernel"))
    for i in range(n_dense):
        h = h @ params[f"dense_{i}/kernel"] + params[f"dense_{i}/bias"]
        if i < n_dense - 1:
            h = np.maximum(h, 0.0)
    return h


def batch_loss(params: dict, x: np.ndarray, y: np.ndarray) -> float:
    z = logits(params, x)
    top = z.max(axis=1, keepdims=True)
    log_p = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), np.asarray(y, dtype=np.int64)].mean())


def plan_losses(plan) -> list[np.ndarray]:
    """Per epoch, the loss of each plan batch at the initial weights, in the plan's order."""
    params = {k: v.astype(np.float64) for k, v in plan.weights().items()}
    out = []
    for e in range(plan.epochs):
        x, y = plan.epoch(e)
        out.append(np.array([batch_loss(params, x[s], y[s]) for s in plan.batch_slices()]))
    return out


# --- the runs ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def case_runs(tmp_path_factory):
    """Both cases run at once, each in its own process (the order of batches does not depend on the clock)."""
    available = [r for r in RUNS if not selection.unavailable_reason(r.engine)]
    runs = {name: (Spec(optimizer="sgd", learning_rate=1e-12, epochs=2,
                        engines=tuple(f"{r.engine}:{r.mode}" for r in available), **values),
                   tmp_path_factory.mktemp(name)) for name, values in CASES.items()}
    with concurrent_runs(runs) as futures:
        yield futures


@pytest.fixture(scope="module", params=list(CASES))
def case(request, case_runs):
    res = case_runs[request.param].result()
    plan = batchplan.open_plan(res.out / "plan")
    return request.param, plan, res, plan_losses(plan)


def test_the_plan_s_batch_losses_tell_every_order_apart(case):
    name, plan, _, expected = case
    assert plan.epochs == 2 and plan.steps_per_epoch >= 6
    for losses in expected:
        gaps = np.abs(losses[:, None] - losses[None, :]) / np.abs(losses[None, :])
        np.fill_diagonal(gaps, np.inf)
        assert gaps.min() > 10 * TOLERANCE, (name, gaps.min())  # any two batches swapped would be seen
    assert np.abs(expected[0] - expected[1]).max() > 10 * TOLERANCE * expected[0].max()  # so would another epoch


@pytest.mark.parametrize("run", RUNS, ids=[r.label for r in RUNS])
def test_the_engine_trains_the_plan_s_batches_in_the_plan_s_order(case, run):
    reason = selection.unavailable_reason(run.engine)
    if reason:
        pytest.skip(f"{run.label} is unavailable: {reason}")
    name, plan, res, expected = case
    (outcome,) = [o for o in res.outcomes if o.run == run]
    assert outcome.ok, outcome.message
    assert [ep["epoch"] for ep in outcome.epochs] == list(range(plan.epochs))
    for ep in outcome.epochs:
        got = np.asarray(ep["losses"], dtype=np.float64)
        want = expected[ep["epoch"]]
        assert len(got) == len(want) == plan.steps_per_epoch
        rel = np.abs(got - want) / np.abs(want)
        assert rel.max() <= TOLERANCE, (name, run.label, ep["epoch"], rel.max(), got, want)
    # results.csv's step_loss rows carry them in the same order
    f = res.frame[(res.frame.engine == run.engine) & (res.frame["mode"] == run.mode)
                  & (res.frame.metric == "step_loss")].sort_values("step")
    np.testing.assert_allclose(f.value.to_numpy(), np.concatenate(expected), rtol=TOLERANCE)
