"""Data sets: every loader returns a :class:`Dataset` of float32 inputs and int32 labels.

Inputs are either vectors, C-contiguous ``(N, F)``, or images, C-contiguous ``(N, C, H, W)``
(NCHW, which Julia reads as WHCN without a copy). Labels are 0-based class indices.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .base import DataError, Dataset

__all__ = ["DataError", "Dataset", "as_vectors", "load"]


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
        data = synthetic.load(spec.synthetic_input_shape(), spec.synthetic_samples, spec.classes, spec.seed)
    return _cut(data, spec.train_size, spec.test_size)


def _cut(data: Dataset, n_train: int, n_test: int) -> Dataset:
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
