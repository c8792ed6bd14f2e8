"""What every data set loader returns, and the error for data that cannot be had."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import BridgeError


class DataError(BridgeError):
    """Data that cannot be had or read: a damaged cache, a failed download or conversion; the message names
    the file and the fix."""


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
    official_split: bool | None
    """True: the split the data set's authors publish; False: they publish one and this is another;
    None: they publish none."""
    notes: tuple[str, ...] = ()
    """What happened while loading that the results should say, one line each (a fallback taken)."""

    @property
    def is_image(self) -> bool:
        return self.x_train.ndim == 4

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example: ``(F,)`` or ``(C, H, W)``."""
        return tuple(self.x_train.shape[1:])
