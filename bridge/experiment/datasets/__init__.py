"""Data sets: every loader returns a :class:`Dataset` of float32 inputs and int32 labels.

Inputs are either vectors, C-contiguous ``(N, F)``, or images, C-contiguous ``(N, C, H, W)``
(NCHW, which Julia reads as WHCN without a copy). Labels are 0-based class indices.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...errors import UsageError
from .base import DataError, Dataset

__all__ = ["DataError", "Dataset", "SizeError", "as_vectors", "load"]


class SizeError(UsageError):
    """A data set, or a cut of it, that the spec asks for and cannot have: exit 2 before anything is built."""


def available_memory() -> tuple[int | None, int | None]:
    """``(available, total)`` bytes of memory (``/proc/meminfo``'s MemAvailable and MemTotal; the physical
    pages elsewhere, with no available figure); None where unknown."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        return int(info["MemAvailable"].split()[0]) * 1024, int(info["MemTotal"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        try:
            return None, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None, None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_synthetic_size(spec) -> None:
    """Refuse synthetic data larger than this machine's available memory before allocating any of it."""
    shape = spec.synthetic_input_shape()
    n = spec.synthetic_samples + max(1, spec.synthetic_samples // 4)  # and its test quarter
    need = n * (int(np.prod(shape)) * 4 + 4)  # float32 inputs, int32 labels
    available, total = available_memory()
    if available is not None and need > available:
        raise SizeError(f"--synthetic_samples {spec.synthetic_samples} of shape {shape} would take {_gib(need)} of "
                        f"memory (with its test quarter), and this machine has {_gib(available)} available of "
                        f"{_gib(total)}; lower --synthetic_samples")


FASHION_MNIST_SPLIT = (60000, 10000)
"""The official split's sizes; a source may hold fewer (its loader says so, and the cut is checked again)."""
FASHION_MNIST_EXAMPLE = ((1, 28, 28), 10)
IRIS_EXAMPLE = ((4,), 3)
"""One example's shape and the classes of each data set, known without loading it (the loaders check it)."""


def example_shape(spec) -> tuple[tuple[int, ...], int]:
    """``(input shape of one example, classes)`` of the spec's data set, known without loading it."""
    if spec.dataset == "synthetic":
        return spec.synthetic_input_shape(), spec.classes
    return FASHION_MNIST_EXAMPLE if spec.dataset == "fashion-mnist" else IRIS_EXAMPLE


def most_examples(spec) -> tuple[int, int]:
    """The most training and test examples the spec's data set can give, known without loading it."""
    from . import iris

    if spec.dataset == "iris":
        return iris.SPLIT
    if spec.dataset == "fashion-mnist":
        return FASHION_MNIST_SPLIT
    return spec.synthetic_samples, max(1, spec.synthetic_samples // 4)


def check_sizes(spec) -> None:
    """Refuse, before anything is loaded or allocated, a cut larger than the data set and synthetic data
    larger than the available memory (:class:`SizeError`, exit 2)."""
    if spec.dataset == "synthetic":
        check_synthetic_size(spec)
    _check_cut(spec.dataset, spec.train_size, spec.test_size, *most_examples(spec))


def _check_cut(name: str, n_train: int, n_test: int, have_train: int, have_test: int) -> None:
    for option, n, have, split in (("--train_size", n_train, have_train, "training"),
                                   ("--test_size", n_test, have_test, "test")):
        if n > have:
            raise SizeError(f"{option} {n} is more than the {have} {split} examples of {name}; give at most "
                            f"{have} (0 = all)")


def load(spec) -> Dataset:
    """The data set a :class:`bridge.experiment.spec.Spec` names, cut to ``train_size`` / ``test_size``."""
    # each loader imported when named: `python -m bridge.experiment.datasets.fashion_mnist` runs that module
    # as __main__, which an import of it here would have loaded once already
    from . import fashion_mnist, iris, synthetic

    if spec.dataset == "iris":
        data = iris.load(spec.seed)
    elif spec.dataset == "fashion-mnist":
        cache = Path(spec.data_dir).expanduser() / "fashion-mnist" if spec.data_dir else None
        data = fashion_mnist.load(cache, source=spec.data_source)
    else:
        check_synthetic_size(spec)
        data = synthetic.load(spec.synthetic_input_shape(), spec.synthetic_samples, spec.classes, spec.seed)
    return _cut(data, spec.train_size, spec.test_size)


def _cut(data: Dataset, n_train: int, n_test: int) -> Dataset:
    _check_cut(data.name, n_train, n_test, len(data.y_train), len(data.y_test))
    if not n_train and not n_test:
        return data
    n_train = n_train or len(data.y_train)
    n_test = n_test or len(data.y_test)
    return replace(
        data,
        x_train=data.x_train[:n_train], y_train=data.y_train[:n_train],
        x_test=data.x_test[:n_test], y_test=data.y_test[:n_test],
        split=f"{data.split}; first {min(n_train, len(data.y_train))} train / "
              f"{min(n_test, len(data.y_test))} test examples used",
    )


def as_vectors(data: Dataset) -> Dataset:
    """Images ``(N, C, H, W)`` as vectors ``(N, C*H*W)`` (NCHW order), for the MLP."""
    return replace(data, x_train=data.x_train.reshape(len(data.x_train), -1),
                   x_test=data.x_test.reshape(len(data.x_test), -1))
