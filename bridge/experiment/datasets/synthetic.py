"""Random data of a chosen shape, for speed runs: standard-normal inputs and uniform labels."""
from __future__ import annotations

import numpy as np

from .base import Dataset


def load(shape: tuple[int, ...], samples: int, classes: int, seed: int = 0) -> Dataset:
    """``shape`` is ``(F,)`` or ``(C, H, W)``; the test split has a quarter as many examples."""
    rng = np.random.default_rng((seed, 1))
    n_test = max(1, samples // 4)
    x = rng.standard_normal((samples + n_test, *shape), dtype=np.float32)
    y = rng.integers(0, classes, samples + n_test, dtype=np.int32)
    return Dataset(
        name="synthetic",
        x_train=x[:samples], y_train=y[:samples], x_test=x[samples:], y_test=y[samples:],
        classes=classes,
        source=f"random normal inputs of shape {shape}, seed {seed}",
        split=f"{samples} train / {n_test} test, independent random examples",
        official_split=None,
    )
