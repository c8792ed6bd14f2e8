"""Data sets: every loader returns a :class:`Dataset` of float32 inputs and int32 labels.

Inputs are either vectors, C-contiguous ``(N, F)``, or images, C-contiguous ``(N, C, H, W)``
(NCHW, which Julia reads as WHCN without a copy). Labels are 0-based class indices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    source: str
    """Where the data came from, in words (a file, a URL, a package)."""
    split: str
    """How train and test were separated, in words."""
    official_split: bool
    """False when the train/test split is not the one the data set's authors publish."""

    @property
    def is_image(self) -> bool:
        return self.x_train.ndim == 4

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example: ``(F,)`` or ``(C, H, W)``."""
        return tuple(self.x_train.shape[1:])
