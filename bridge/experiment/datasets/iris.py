"""Iris (150 examples, 4 features, 3 classes), shipped with the package.

Split: seeded and stratified, 40 training and 10 test examples per class (120 / 30). Features are
standardised with the training split's mean and standard deviation, once, in Python, so every engine
sees the same float32 values.
"""
from __future__ import annotations

from importlib import resources

import numpy as np

from .base import Dataset

TEST_PER_CLASS = 10
SPLIT = (150 - 3 * TEST_PER_CLASS, 3 * TEST_PER_CLASS)
"""Training and test examples: 120 / 30."""


def load(seed: int = 0) -> Dataset:
    text = resources.files(__package__).joinpath("iris.csv").read_text()
    table = np.loadtxt(text.splitlines(), delimiter=",", comments="#", skiprows=2)
    x, y = table[:, :4], table[:, 4].astype(np.int32)
    rng = np.random.default_rng((seed, 0))
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.extend(idx[:TEST_PER_CLASS])
        train.extend(idx[TEST_PER_CLASS:])
    train, test = np.sort(train), np.sort(test)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    x = (x - mean) / std
    return Dataset(
        name="iris",
        x_train=np.ascontiguousarray(x[train], dtype=np.float32),
        y_train=y[train],
        x_test=np.ascontiguousarray(x[test], dtype=np.float32),
        y_test=y[test],
        classes=3,
        source="bridge/experiment/datasets/iris.csv (Fisher 1936, UCI repository), shipped with the package",
        split=f"seeded stratified split (seed {seed}): {len(train)} train / {len(test)} test, "
              "features standardised with training statistics",
        official_split=None,
    )
