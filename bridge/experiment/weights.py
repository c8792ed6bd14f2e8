"""Initial weights: generated once, seeded, in the neutral layout (see :mod:`bridge.models`).

Kernels are Glorot-uniform, ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))`` and fans as Keras
and Flux count them (Dense: in, out; Conv: kH·kW·Cin, kH·kW·Cout); biases are zero. No engine uses
its own initialiser: each converts these arrays to its layout.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import atomic_write


def glorot_uniform(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """Name → float32 array; kernels drawn in the order of ``shapes``, from one seeded generator."""
    rng = np.random.default_rng((seed, 3))
    out = {}
    for name, shape in shapes.items():
        if name.endswith("/bias"):
            out[name] = np.zeros(shape, dtype=np.float32)
            continue
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        out[name] = rng.uniform(-limit, limit, size=shape).astype(np.float32)
    return out


def save(weights: dict[str, np.ndarray], path: Path) -> None:
    """One ``.npy`` per parameter in folder ``path`` (``dense_0/kernel`` → ``dense_0.kernel.npy``),
    readable without Python (Julia's NPZ or any .npy reader)."""
    path.mkdir(parents=True, exist_ok=True)
    for name, array in weights.items():
        atomic_write(path / file_name(name), lambda tmp, a=array: np.save(tmp, np.ascontiguousarray(a)))


def load(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    return {name: np.load(path / file_name(name)) for name in names}


def file_name(name: str) -> str:
    """``dense_0/kernel`` → ``dense_0.kernel.npy``: a parameter's file in a weights folder."""
    return name.replace("/", ".") + ".npy"
