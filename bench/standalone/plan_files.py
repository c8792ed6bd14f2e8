"""Reading a bridge batch plan folder with NumPy alone, for the standalone scripts in this folder.

A plan folder (``python -m bridge.compare --save-plan DIR``, or ``OUT/plan``) holds ``plan.toml`` (the
hyperparameters), the splits as ``x_train.npy`` ... ``y_test.npy``, one permutation per epoch
(``order.eNNNN.npy``) and the initial weights in Keras' layout (``weights/<layer>.<kernel|bias>.npy``).
Nothing here imports bridge: the standalone scripts are the experiment as a user of each framework would
write it, and this is only their data loading, done before any clock starts.
"""
from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import numpy as np


class Plan:
    def __init__(self, folder: str):
        root = Path(folder)
        self.root = root
        self.hp = tomllib.loads((root / "plan.toml").read_text())
        self.epochs, self.batch_size = self.hp["epochs"], self.hp["batch_size"]
        self.x_train, self.y_train = np.load(root / "x_train.npy"), np.load(root / "y_train.npy")
        self.x_test, self.y_test = np.load(root / "x_test.npy"), np.load(root / "y_test.npy")
        self.image = self.x_train.ndim == 4  # NCHW
        names = self.hp["parameters"]
        # name -> array, Keras layout: Dense (in, out), Conv HWIO; forward order
        self.weights = {n: np.load(root / "weights" / (n.replace("/", ".") + ".npy")) for n in names}
        self.conv = [n.split("/")[0] for n in names if n.startswith("conv_") and n.endswith("/kernel")]
        self.dense = [n.split("/")[0] for n in names if n.startswith("dense_") and n.endswith("/kernel")]

    def order(self, epoch: int) -> np.ndarray:
        return np.load(self.root / f"order.e{epoch:04d}.npy")

    def epoch(self, epoch: int, nhwc: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The epoch's inputs and labels in training order, contiguous; images NHWC when asked."""
        order = self.order(epoch)
        return np.ascontiguousarray(self.inputs(self.x_train, nhwc)[order]), self.y_train[order]

    def inputs(self, x: np.ndarray, nhwc: bool = False) -> np.ndarray:
        return x.transpose(0, 2, 3, 1) if nhwc and self.image else x  # NCHW -> NHWC


def save(path: str, epoch_seconds: list[float], test_logits: np.ndarray, y_test: np.ndarray, **extra) -> None:
    """The script's result: seconds per epoch, and the final test loss and accuracy (float64, from the
    logits) to check the script trained what bridge trained."""
    z = np.asarray(test_logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    y = np.asarray(y_test, dtype=np.int64)
    doc = {"epoch_s": [float(s) for s in epoch_seconds],
           "test_loss": float(-logp[np.arange(len(y)), y].mean()),
           "test_accuracy": float((z.argmax(axis=1) == y).mean()), **extra}
    Path(path).write_text(json.dumps(doc, indent=1))


def args() -> tuple[str, str]:
    if len(sys.argv) != 3:
        sys.exit(f"usage: python {sys.argv[0]} PLAN_DIR OUT.json")
    return sys.argv[1], sys.argv[2]
