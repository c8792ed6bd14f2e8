"""Evaluation: the loss and accuracy of a whole split, after every epoch (bridge.running.worker.evaluate and
softmax_cross_entropy), by hand-computed values and end to end through a run.

End to end, an engine that trains nothing (tests/doubles/fixed_logits_engine.py: logits a fixed function of the
inputs) makes every split's metrics computable here with NumPy from the plan's splits, so results.csv's
train and test loss/accuracy after every epoch, and the summary's final ones, are checked against an
independent evaluation, on a split larger than the worker's evaluation chunk too.
"""
import math

import numpy as np
import pytest

from bridge.experiment.plan import open_plan
from bridge.running import worker
from tests.doubles import fixed_logits_engine as fixed
from tests.support import run_compare

ENGINE = "tests.doubles.fixed_logits_engine"


# --- softmax_cross_entropy ---------------------------------------------------------------------------

def test_softmax_cross_entropy_by_hand():
    # softmax rows: [1/4, 3/4], [4/5, 1/5], [1/2, 1/2]; labels 1, 1, 0
    logits = np.array([[0.0, math.log(3)], [math.log(4), 0.0], [0.0, 0.0]])
    loss, acc = worker.softmax_cross_entropy(logits, np.array([1, 1, 0]))
    expected = (math.log(4 / 3) + math.log(5) + math.log(2)) / 3  # the mean, not the sum
    assert loss == pytest.approx(expected, rel=1e-12)
    assert acc == pytest.approx(2 / 3)  # row 0 right, row 1 wrong, row 2's tie goes to class 0: right
    assert isinstance(loss, float) and isinstance(acc, float)


def test_softmax_cross_entropy_three_classes_and_one_row():
    # softmax [1/6, 2/6, 3/6]
    row = np.log([[1.0, 2.0, 3.0]])
    for label, p in ((0, 1 / 6), (1, 2 / 6), (2, 3 / 6)):
        loss, acc = worker.softmax_cross_entropy(row, np.array([label]))
        assert loss == pytest.approx(-math.log(p), rel=1e-12)
        assert acc == (1.0 if label == 2 else 0.0)
    # the same row four times with four labels: mean loss and accuracy over the rows
    z = np.repeat(row, 4, axis=0)
    y = np.array([0, 1, 2, 2], dtype=np.int32)
    loss, acc = worker.softmax_cross_entropy(z.astype(np.float32), y)
    assert loss == pytest.approx((math.log(6) + math.log(3) + 2 * math.log(2)) / 4, rel=1e-6)
    assert acc == pytest.approx(0.5)


def test_softmax_cross_entropy_is_shift_invariant_per_row_and_does_not_overflow():
    z = np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0], [4.0, 4.0, -4.0]])
    y = np.array([2, 0, 1])
    base = worker.softmax_cross_entropy(z, y)
    shifted = z + np.array([[1000.0], [-700.0], [3.5]])  # a different constant per row
    got = worker.softmax_cross_entropy(shifted, y)
    assert got[0] == pytest.approx(base[0], rel=1e-9) and got[1] == base[1]
    # huge logits: exp would overflow without the shift by the row maximum
    loss, acc = worker.softmax_cross_entropy(np.array([[1000.0, 0.0], [-1000.0, 0.0]]), np.array([0, 0]))
    assert math.isfinite(loss) and loss == pytest.approx(1000.0 / 2, rel=1e-12)
    assert acc == 0.5
    loss, _ = worker.softmax_cross_entropy(np.array([[800.0, 0.0, 1.0]], dtype=np.float32), np.array([0]))
    assert math.isfinite(loss) and loss == pytest.approx(0.0, abs=1e-12)


def reference_metrics(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean softmax cross-entropy and accuracy, row by row in plain Python (independent of the worker)."""
    total, right = 0.0, 0
    for row, label in zip(np.asarray(z, dtype=np.float64).tolist(), np.asarray(y).tolist()):
        top = max(row)
        total += top + math.log(sum(math.exp(v - top) for v in row)) - row[label]
        right += row.index(top) == label
    return total / len(y), right / len(y)


def test_softmax_cross_entropy_on_random_logits_matches_a_row_by_row_evaluation():
    rng = np.random.default_rng(7)
    z = rng.normal(scale=3.0, size=(257, 5))
    y = rng.integers(0, 5, 257)
    loss, acc = worker.softmax_cross_entropy(z, y)
    exp_loss, exp_acc = reference_metrics(z, y)
    assert loss == pytest.approx(exp_loss, rel=1e-12) and acc == pytest.approx(exp_acc)


# --- evaluate ------------------------------------------------------------------------------------------

class FakePlan:
    def __init__(self, splits):
        self.splits = splits
        self.classes = splits["train"][0].shape[1] - 1
        self.meta = {"classes": self.classes, "n_train": len(splits["train"][1]), "n_test": len(splits["test"][1])}

    def split(self, name):
        return self.splits[name]


class FakeModule:
    """Logits ``x @ W``; records the inputs of every predict call."""

    def __init__(self, w):
        self.w, self.calls = w, []

    def predict(self, session, x):
        assert session == "session"
        self.calls.append(np.array(x))
        return np.asarray(x, dtype=np.float64) @ self.w


def _splits(rng, n_train, n_test, features=4, classes=3):  # classes = features - 1 (FakePlan)
    return {"train": (rng.normal(size=(n_train, features)).astype(np.float32),
                      rng.integers(0, classes, n_train).astype(np.int32)),
            "test": (rng.normal(size=(n_test, features)).astype(np.float32) + 0.5,
                     rng.integers(0, classes, n_test).astype(np.int32))}


@pytest.mark.parametrize("chunk", [1, 7, 10, 50, 64])
def test_evaluate_covers_the_whole_named_split_in_chunks(chunk):
    rng = np.random.default_rng(1)
    splits = _splits(rng, 50, 23)
    w = rng.normal(size=(4, 3))
    for name in ("train", "test"):
        module = FakeModule(w)
        loss, acc = worker.evaluate(module, "session", FakePlan(splits), name, chunk=chunk)[:2]
        x, y = splits[name]
        assert len(module.calls) == -(-len(y) // chunk)
        assert all(len(c) <= chunk for c in module.calls)
        assert np.array_equal(np.concatenate(module.calls), x)  # every row once, in order
        exp_loss, exp_acc = reference_metrics(x.astype(np.float64) @ w, y)
        assert loss == pytest.approx(exp_loss, rel=1e-12) and acc == pytest.approx(exp_acc)
    # the two splits give different metrics: evaluating the wrong one would be seen
    assert worker.evaluate(FakeModule(w), "session", FakePlan(splits), "train", chunk)[:2] != \
        worker.evaluate(FakeModule(w), "session", FakePlan(splits), "test", chunk)[:2]


def test_evaluate_by_default_covers_a_split_larger_than_its_chunk():
    rng = np.random.default_rng(2)
    splits = _splits(rng, 9000, 10)
    # the labels of the rows after the first 4096 are all of class 0 and the logits favour class 2
    x, y = splits["train"]
    y[4096:] = 0
    w = np.zeros((4, 3))
    w[0, 2] = 1.0
    x[4096:, 0] = 3.0
    module = FakeModule(w)
    loss, acc = worker.evaluate(module, "session", FakePlan(splits), "train")[:2]
    assert sum(len(c) for c in module.calls) == 9000 and len(module.calls) >= 3
    assert np.array_equal(np.concatenate(module.calls), x)
    exp_loss, exp_acc = reference_metrics(x.astype(np.float64) @ w, y)
    assert loss == pytest.approx(exp_loss, rel=1e-12) and acc == pytest.approx(exp_acc)


# --- end to end: results.csv against an independent evaluation ------------------------------------------

def expected_split_metrics(plan, split: str, epoch: int, repeat: int = 0) -> tuple[float, float]:
    x, y = plan.split(split)
    z = fixed.logits(np.array(x), plan.meta["classes"], fixed.scale(epoch, repeat))
    return reference_metrics(z, y)


RUNS = {
    # Iris: 120 train / 30 test, three epochs
    "iris": ("--dataset", "iris", "--epochs", "3"),
    # a train split (5000) larger than the worker's evaluation chunk (4096), two epochs
    "large": ("--dataset", "synthetic", "--synthetic_shape", "6", "--synthetic_samples", "5000", "--classes", "4",
              "--batch_size", "500", "--epochs", "2"),
}


@pytest.fixture(scope="module", params=list(RUNS))
def run(request, tmp_path_factory):
    r = run_compare("--engines", ENGINE, "--no-report", "--quiet", *RUNS[request.param],
                    out=tmp_path_factory.mktemp(f"eval-{request.param}"))
    assert r.returncode == 0, r.stdout + r.stderr
    return open_plan(r.out / "plan"), r.frame, r.summary


def test_every_epoch_s_split_metrics_equal_an_independent_evaluation(run):
    plan, frame, _ = run
    assert plan.meta["n_train"] != plan.meta["n_test"]
    got = frame[frame.metric.isin(["loss", "accuracy"])]
    assert len(got) == plan.epochs * 4
    for epoch in range(plan.epochs):
        for split in ("train", "test"):
            loss, acc = expected_split_metrics(plan, split, epoch)
            rows = got[(got.epoch == epoch) & (got.split == split)].set_index("metric").value
            assert rows["loss"] == pytest.approx(loss, rel=1e-9), (epoch, split)
            assert rows["accuracy"] == pytest.approx(acc, abs=1e-12), (epoch, split)
    # not vacuous: the train and test metrics differ, and so do the epochs'
    last = plan.epochs - 1
    assert expected_split_metrics(plan, "train", last) != expected_split_metrics(plan, "test", last)
    assert expected_split_metrics(plan, "test", 0) != expected_split_metrics(plan, "test", last)


def test_the_summary_s_final_metrics_are_the_last_epoch_s_independent_evaluation(run):
    plan, _, summary = run
    (row,) = summary["summary"]
    last = plan.epochs - 1
    train_loss, _ = expected_split_metrics(plan, "train", last)
    test_loss, test_acc = expected_split_metrics(plan, "test", last)
    assert row["train_loss"] == pytest.approx(train_loss, rel=1e-9)
    assert row["test_loss"] == pytest.approx(test_loss, rel=1e-9)
    assert row["test_accuracy"] == pytest.approx(test_acc, abs=1e-9)  # summary.json keeps 10 digits


def test_a_large_split_is_evaluated_whole(run):
    plan, frame, _ = run
    if plan.meta["n_train"] <= 4096:
        pytest.skip("this run's splits fit one evaluation chunk")
    # the metrics of the first 4096 rows alone are not what was recorded
    x, y = plan.split("train")
    z = fixed.logits(np.array(x), plan.meta["classes"], fixed.scale(0, 0))
    whole, head = reference_metrics(z, y), reference_metrics(z[:4096], y[:4096])
    rows = frame[(frame.epoch == 0) & (frame.split == "train")].set_index("metric").value
    assert rows["loss"] == pytest.approx(whole[0], rel=1e-9)
    assert abs(whole[0] - head[0]) > 1e-6 and rows["loss"] != pytest.approx(head[0], rel=1e-9)
