"""The batch plan: every epoch's batches, fixed once, and the one contract every engine reads.

For epoch ``e`` a seeded permutation of the training split orders the examples. The plan stores the
training split once (``x_train.npy`` / ``y_train.npy``) and, per epoch, only that permutation
(``order.eNNNN.npy``, int32, 0-based): its disk cost is the data set plus ``epochs × n_train × 4``
bytes. :meth:`BatchPlan.epoch` materialises an epoch — the split gathered in the permutation's order
into fresh C-contiguous arrays — just before the worker hands it to the engine, outside every timed
region and by the same code for every engine; engines receive exactly those arrays (Julia wraps them
without a copy). Batch ``b`` of an epoch is rows ``[b*B, (b+1)*B)`` (:func:`batch_slices`); the partial
last batch is kept, identically for every engine. No engine builds or shuffles its own batches.

Inputs are C-contiguous float32, ``(N, F)`` or NCHW ``(N, C, H, W)`` (Julia reads them as ``F×N`` /
WHCN without a copy); labels are int32, 0-based.

``plan.toml`` is what every engine, Python or Julia, reads of the experiment: the model's parameter
names and shapes, the optimizer and its settings, batch size, epochs, sizes (in NumPy order; Julia
reverses them), where the data came from (TOML is in Julia's standard library, so a plan is replayed
without Python). ``checksums.npy`` holds the CRC-32C of every batch (uint32, ``(epochs, steps)``),
computed when the plan is built; the worker recomputes them over the arrays it hands to the engine.
``weights/`` holds the initial weights in the neutral layout, one ``.npy`` per parameter.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import crc32c
import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..errors import BridgeError
from ..files import atomic_write
from . import datasets
from . import weights as weights_io
from .models import cnn_feature_shape, parameter_shapes

PLAN_VERSION = 3  # 2: per-epoch permutations instead of copies of the split; 3: plan.toml is the one file
ORDER_DTYPE = np.int32
MAX_GIB = "BRIDGE_PLAN_MAX_GIB"  # the variable that caps a plan's size on disk; 16 GiB when unset


class PlanTooLarge(BridgeError):
    pass


@dataclass(frozen=True)
class OptimizerSettings:
    """The optimizer every engine builds, as the plan records it (Keras semantics everywhere)."""
    name: str  # "sgd" or "adam"
    learning_rate: float
    beta_1: float
    beta_2: float
    epsilon: float


def batch_checksum(x: np.ndarray, y: np.ndarray) -> str:
    """CRC-32C of a batch's input bytes followed by its label bytes, as 8 hex digits."""
    return f"{crc32c.crc32c(np.ascontiguousarray(y).data, value=crc32c.crc32c(np.ascontiguousarray(x).data)):08x}"


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """The batches of an epoch of ``n`` examples: rows ``[b*B, (b+1)*B)``, the partial last one kept.
    The one definition in Python (Julia's is ``batch_ranges`` in julia/common/plan.jl)."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng((seed, 2, epoch)).permutation(n)


@dataclass(frozen=True)
class BatchPlan:
    """A plan folder, as every engine reads it; ``meta`` is its ``plan.toml``."""
    root: Path
    meta: dict

    @property
    def epochs(self) -> int:
        return self.meta["epochs"]

    @property
    def batch_size(self) -> int:
        return self.meta["batch_size"]

    @property
    def steps_per_epoch(self) -> int:
        return self.meta["steps_per_epoch"]

    @property
    def model(self) -> str:
        return self.meta["model"]

    @property
    def classes(self) -> int:
        return self.meta["classes"]

    @property
    def spec_hash(self) -> str:
        return self.meta["spec_hash"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape in plan layout: ``(F,)`` or ``(C, H, W)``."""
        return tuple(self.meta["input_shape"])

    @property
    def parameters(self) -> dict[str, tuple[int, ...]]:
        """Parameter name → shape (neutral layout), in forward order: what every engine builds."""
        return {name: tuple(shape) for name, shape in zip(self.meta["parameters"], self.meta["parameter_shapes"])}

    @property
    def feature_shape(self) -> tuple[int, int, int] | None:
        """``(H', W', C')`` after a CNN's convolutions; None for an MLP."""
        return tuple(self.meta["feature_shape"]) if "feature_shape" in self.meta else None

    @property
    def optimizer(self) -> OptimizerSettings:
        m = self.meta
        return OptimizerSettings(m["optimizer"], m["learning_rate"], m["beta_1"], m["beta_2"], m["epsilon"])

    def with_optimizer(self, **settings) -> "BatchPlan":
        """The same batches and weights trained with other optimizer settings (``optimizer``,
        ``learning_rate``, ...), in memory: what Julia's ``with_meta`` does for the golden cases."""
        return replace(self, meta={**self.meta, **settings})

    def order(self, e: int) -> np.ndarray:
        """Epoch ``e``'s permutation of the training split (0-based indices, training order)."""
        return np.load(self.root / order_file(e))

    def epoch(self, e: int) -> tuple[np.ndarray, np.ndarray]:
        """Epoch ``e`` (0-based): inputs and labels in training order, materialised now as fresh
        C-contiguous arrays (the memory-mapped split gathered by :meth:`order`). About one epoch of
        memory; the caller drops it before asking for the next."""
        return gather(*self.split("train"), self.order(e))

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The whole ``train`` or ``test`` split, unshuffled, memory-mapped (for evaluation, and what
        every epoch is gathered from). One mapping per plan object: evaluation and the epochs share
        its pages instead of mapping the file again for each epoch."""
        return self._splits[name]

    @cached_property
    def _splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {name: (np.load(self.root / f"x_{name}.npy", mmap_mode="r"),
                       np.load(self.root / f"y_{name}.npy", mmap_mode="r")) for name in ("train", "test")}

    def batch_slices(self) -> list[slice]:
        return batch_slices(self.meta["n_train"], self.batch_size)

    def expected_checksums(self, e: int) -> list[str]:
        return [f"{c:08x}" for c in self._checksums[e]]

    @cached_property
    def _checksums(self) -> np.ndarray:
        return np.load(self.root / CHECKSUMS)

    def weights(self) -> dict[str, np.ndarray]:
        """The initial weights, name → array in the neutral layout."""
        return weights_io.load(self.root / "weights", list(self.meta["parameters"]))


CHECKSUMS = "checksums.npy"


def order_file(e: int) -> str:
    return f"order.e{e:04d}.npy"


def gather(x: np.ndarray, y: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows ``order`` of ``x`` and ``y``, in that order, as new C-contiguous arrays: every epoch of
    every engine (and every plan checksum) comes from here. Julia's ``epoch_data`` does the same."""
    return np.take(np.asarray(x), order, axis=0), np.take(np.asarray(y), order, axis=0)  # ndarray, not memmap


def plan_bytes(n_train: int, example_bytes: int, n_test: int, epochs: int) -> int:
    """Bytes on disk of a plan's batches: the two splits once, one int32 permutation per epoch."""
    return (n_train + n_test) * example_bytes + epochs * n_train * np.dtype(ORDER_DTYPE).itemsize


def build(data: datasets.Dataset, spec, root: Path, initial: dict[str, np.ndarray]) -> BatchPlan:
    """Write the plan for ``spec`` over ``data`` into folder ``root`` and return it. ``initial`` are the
    initial weights (neutral layout), stored beside the batches. Everything is computed first and written
    last, each file atomically, plan.toml after the arrays it describes."""
    n = len(data.y_train)
    example = data.x_train[:1].nbytes + data.y_train[:1].nbytes
    total = plan_bytes(n, example, len(data.y_test), spec.epochs)
    if total > float(os.environ.get(MAX_GIB, "16")) * 2**30:
        raise PlanTooLarge(
            f"the batch plan would take {total / 2**30:.1f} GiB (the data set once and {spec.epochs} epochs' "
            f"permutations); lower --epochs or --train_size, or raise {MAX_GIB}")
    if n >= 2**31:
        raise PlanTooLarge(f"{n} training examples do not fit the plan's int32 permutations; lower --train_size")
    slices = batch_slices(n, spec.batch_size)
    orders = [epoch_permutation(spec.seed, e, n).astype(ORDER_DTYPE) for e in range(spec.epochs)]
    checksums = np.empty((spec.epochs, len(slices)), dtype=np.uint32)
    for e, order in enumerate(orders):
        x, y = gather(data.x_train, data.y_train, order)  # exactly what the worker will hand over
        checksums[e] = [int(batch_checksum(x[s], y[s]), 16) for s in slices]
        del x, y
    arrays = {"x_train.npy": data.x_train, "y_train.npy": data.y_train, "x_test.npy": data.x_test,
              "y_test.npy": data.y_test, CHECKSUMS: checksums, **{order_file(e): o for e, o in enumerate(orders)},
              **{f"weights/{weights_io.file_name(name)}": w for name, w in initial.items()}}
    meta = {
        "version": PLAN_VERSION, "spec_hash": spec.hash(), "dataset": data.name, "model": spec.model,
        "optimizer": spec.optimizer, "learning_rate": spec.learning_rate, "beta_1": spec.beta_1,
        "beta_2": spec.beta_2, "epsilon": spec.epsilon, "epochs": spec.epochs, "batch_size": spec.batch_size,
        "steps_per_epoch": len(slices), "seed": spec.seed, "n_train": n, "n_test": len(data.y_test),
        "classes": data.classes, "input_shape": list(data.input_shape),
        "parameters": list(initial), "parameter_shapes": [list(v.shape) for v in initial.values()],
        "layout": "NCHW float32 (Julia WHCN)" if data.is_image else "(N, F) float32 (Julia F x N)",
        "data_source": data.source, "data_split": data.split,
        "weights_layout": "weights/*.npy: neutral (Keras) layout; julia/weights/*.npy, written for the "
                          "Julia engines: arrays whose NumPy shape is the Flux/Knet size",
    }
    if data.official_split is not None:  # TOML has no null: absent means the data set publishes no split
        meta["official_split"] = data.official_split
    if data.notes:  # a fallback taken while loading (absent: none)
        meta["data_notes"] = list(data.notes)
    if spec.model == "cnn":
        meta["feature_shape"] = list(cnn_feature_shape(data.input_shape, spec.filters))
    _write(root, arrays, to_toml(meta))
    return BatchPlan(root, meta)


def _write(root: Path, arrays: dict[str, np.ndarray], toml: str) -> None:
    """The plan's files: every array as a C-order ``.npy``, then plan.toml, each atomically."""
    (root / "weights").mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        atomic_write(root / name, lambda tmp, a=array: np.save(tmp, np.ascontiguousarray(a)))
    atomic_write(root / "plan.toml", toml)


def to_toml(values: dict) -> str:
    """Flat TOML of strings, numbers, booleans and lists of them (a JSON value of these is a TOML one)."""
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


def open_plan(root: Path) -> BatchPlan:
    return BatchPlan(Path(root), tomllib.loads((Path(root) / "plan.toml").read_text()))


def prepare(spec, root: Path) -> BatchPlan:
    """Load the data set the spec names, generate the initial weights, write the plan."""
    data = datasets.load(spec)
    if spec.model == "mlp" and data.is_image:
        data = datasets.as_vectors(data)
    shapes = parameter_shapes(spec, data.input_shape, data.classes)
    return build(data, spec, root, weights_io.glorot_uniform(shapes, spec.seed))
