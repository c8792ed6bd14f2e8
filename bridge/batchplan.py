"""The batch plan: every epoch's batches, fixed once, that every engine trains on.

For epoch ``e`` a seeded permutation of the training split orders the examples. The plan stores the
training split once (``x_train.npy`` / ``y_train.npy``) and, per epoch, only that permutation
(``order.eNNNN.npy``, int32, 0-based): its disk cost is the data set plus ``epochs × n_train × 4``
bytes. :meth:`BatchPlan.epoch` materialises an epoch — the split gathered in the permutation's order
into fresh C-contiguous arrays — just before the worker hands it to the engine, outside every timed
region and by the same code for every engine; engines receive exactly those arrays (Julia wraps them
without a copy). Batch ``b`` of an epoch is rows ``[b*B, (b+1)*B)``, a contiguous slice; the partial
last batch is kept, identically for every engine. No engine builds or shuffles its own batches.

Inputs are C-contiguous float32, ``(N, F)`` or NCHW ``(N, C, H, W)`` (Julia reads them as ``F×N`` /
WHCN without a copy); labels are int32, 0-based. ``plan.json`` records shapes and the CRC-32C of
every batch (inputs bytes, then labels bytes), computed when the plan is built; the worker recomputes
them over the arrays it hands to the engine.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator

import crc32c
import numpy as np

from . import layouts
from . import weights as weights_io
from .datasets import Dataset
from .models import cnn_feature_shape, parameter_shapes

PLAN_VERSION = 2  # 2: per-epoch permutations instead of per-epoch copies of the split
ORDER_DTYPE = np.int32
MAX_BYTES = int(float(os.environ.get("BRIDGE_PLAN_MAX_GIB", "16")) * 2**30)


class PlanTooLarge(ValueError):
    pass


def batch_checksum(x: np.ndarray, y: np.ndarray) -> str:
    """CRC-32C of a batch's input bytes followed by its label bytes, as 8 hex digits."""
    return f"{crc32c.crc32c(np.ascontiguousarray(y).data, value=crc32c.crc32c(np.ascontiguousarray(x).data)):08x}"


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng((seed, 2, epoch)).permutation(n)


@dataclass(frozen=True)
class BatchPlan:
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
        n, b = self.meta["n_train"], self.batch_size
        return [slice(i, min(i + b, n)) for i in range(0, n, b)]

    def batches(self, e: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        x, y = self.epoch(e)
        for s in self.batch_slices():
            yield x[s], y[s]

    def expected_checksums(self, e: int) -> list[str]:
        return self.meta["checksums"][e]

    def weights(self) -> dict[str, np.ndarray]:
        return weights_io.load(self.root / "weights", list(self.meta["parameters"]))


def order_file(e: int) -> str:
    return f"order.e{e:04d}.npy"


def gather(x: np.ndarray, y: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows ``order`` of ``x`` and ``y``, in that order, as new C-contiguous arrays: every epoch of
    every engine (and every plan checksum) comes from here. Julia's ``epoch_data`` does the same."""
    return np.take(np.asarray(x), order, axis=0), np.take(np.asarray(y), order, axis=0)  # ndarray, not memmap


def plan_bytes(n_train: int, example_bytes: int, n_test: int, epochs: int) -> int:
    """Bytes on disk of a plan's batches: the two splits once, one int32 permutation per epoch."""
    return (n_train + n_test) * example_bytes + epochs * n_train * np.dtype(ORDER_DTYPE).itemsize


def _save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, np.ascontiguousarray(array))
    os.replace(tmp, path)


def build(data: Dataset, spec, root: Path, initial: dict[str, np.ndarray]) -> BatchPlan:
    """Write the plan for ``spec`` over ``data`` into folder ``root`` and return it.

    ``initial`` are the initial weights (neutral layout), stored beside the batches.
    """
    n = len(data.y_train)
    example = data.x_train[:1].nbytes + data.y_train[:1].nbytes
    total = plan_bytes(n, example, len(data.y_test), spec.epochs)
    if total > MAX_BYTES:
        raise PlanTooLarge(
            f"the batch plan would take {total / 2**30:.1f} GiB (the data set once and {spec.epochs} epochs' "
            f"permutations); lower --epochs or --train_size, or raise BRIDGE_PLAN_MAX_GIB")
    if n >= 2**31:
        raise PlanTooLarge(f"{n} training examples do not fit the plan's int32 permutations; lower --train_size")
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        _save(root / f"x_{split}.npy", getattr(data, f"x_{split}"))
        _save(root / f"y_{split}.npy", getattr(data, f"y_{split}"))
    checksums = []
    steps = -(-n // spec.batch_size)
    for e in range(spec.epochs):
        order = epoch_permutation(spec.seed, e, n).astype(ORDER_DTYPE)
        _save(root / order_file(e), order)
        x, y = gather(data.x_train, data.y_train, order)
        checksums.append([batch_checksum(x[i:i + spec.batch_size], y[i:i + spec.batch_size])
                          for i in range(0, n, spec.batch_size)])
        del x, y
    weights_io.save(initial, root / "weights")
    meta = {
        "version": PLAN_VERSION,
        "spec_hash": spec.hash(),
        "dataset": data.name,
        "model": spec.model,
        "input_shape": list(data.input_shape),
        "classes": data.classes,
        "n_train": n,
        "n_test": len(data.y_test),
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "steps_per_epoch": steps,
        "layout": "NCHW float32 (Julia WHCN)" if data.is_image else "(N, F) float32 (Julia F x N)",
        "parameters": {k: list(v.shape) for k, v in initial.items()},
        "data_source": data.source,
        "data_split": data.split,
        "official_split": data.official_split,
        "checksums": checksums,
    }
    feature = cnn_feature_shape(data.input_shape, spec.filters) if spec.model == "cnn" else None
    weights_io.save(layouts.to_julia(initial, feature), root / "julia" / "weights")
    _write_text(root / "plan.toml", julia_toml(spec, meta, feature))
    _write_text(root / "plan.json", json.dumps(meta, indent=1))
    return BatchPlan(root, meta)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def julia_toml(spec, meta: dict, feature_shape) -> str:
    """``plan.toml``: what a Julia engine needs to rerun the plan without Python (TOML is in Julia's
    standard library). Sizes are in plan (NumPy) order; Julia reverses them."""
    values = {
        "spec_hash": spec.hash(), "dataset": meta["dataset"], "model": spec.model,
        "optimizer": spec.optimizer, "learning_rate": spec.learning_rate, "beta_1": spec.beta_1,
        "beta_2": spec.beta_2, "epsilon": spec.epsilon, "epochs": spec.epochs,
        "batch_size": spec.batch_size, "steps_per_epoch": meta["steps_per_epoch"], "seed": spec.seed,
        "n_train": meta["n_train"], "n_test": meta["n_test"], "classes": meta["classes"],
        "input_shape": meta["input_shape"], "parameters": list(meta["parameters"]),
        "weights_layout": "julia/weights/*.npy hold arrays whose NumPy shape is the Flux/Knet size",
    }
    if feature_shape:
        values["feature_shape"] = list(feature_shape)
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


def open_plan(root: Path) -> BatchPlan:
    return BatchPlan(Path(root), json.loads((Path(root) / "plan.json").read_text()))


def prepare(spec, root: Path) -> tuple[BatchPlan, Dataset]:
    """Load the data set the spec names, generate the initial weights, write the plan."""
    from . import datasets
    from .weights import glorot_uniform

    data = datasets.load(spec)
    if spec.model == "mlp" and data.is_image:
        data = datasets.as_vectors(data)
    shapes = parameter_shapes(spec, data.input_shape, data.classes)
    return build(data, spec, root, glorot_uniform(shapes, spec.seed)), data
