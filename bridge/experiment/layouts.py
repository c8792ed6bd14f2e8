"""Layout conversions between the neutral (Keras) layout and the other engines' layouts.

The one place where axes are reordered. NumPy is row-major and Julia column-major, so a C-order
NumPy array of shape ``(a, b, c)`` *is*, byte for byte, a Julia array of size ``(c, b, a)``; the
``julia_*`` functions therefore return F-order arrays whose NumPy shape equals the Julia size, which
PythonCall hands over without a copy.

- Data: vectors ``(N, F)`` C-order = Julia ``F×N``; images NCHW C-order = Julia WHCN.
  Keras wants NHWC, so :func:`nchw_to_nhwc` is a copy made once per epoch, outside timed regions.
- Dense: Keras kernel ``(in, out)``; Flux/Knet weight ``(out, in)``.
- Conv: Keras HWIO ``(kH, kW, Cin, Cout)``; Flux ``CrossCor`` / Knet ``conv4(mode=1)`` weight
  ``(kW, kH, Cin, Cout)``. Both compute cross-correlation, so no kernel flip (a Flux ``Conv`` or
  Knet ``conv4(mode=0)`` would need :func:`flip_spatial` on top).
- Flatten: Keras flattens NHWC as ``(h*W + w)*C + c``; Julia flattens WHCN as ``w + W*h + W*H*c``;
  PyTorch flattens NCHW as ``(c*H + h)*W + w``. :func:`dense_rows_nhwc_to_whcn` and
  :func:`dense_rows_nhwc_to_nchw` reorder the rows of the first Dense kernel once, so each model can
  flatten natively.
- PyTorch: ``nn.Linear.weight`` ``(out, in)``; ``nn.Conv2d.weight`` OIHW, cross-correlation like Keras.
"""
from __future__ import annotations

import numpy as np


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` → C-contiguous ``(N, H, W, C)``."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def nhwc_to_nchw(x: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)`` → C-contiguous ``(N, C, H, W)``."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def julia_dense(kernel: np.ndarray) -> np.ndarray:
    """Keras ``(in, out)`` → Julia ``(out, in)`` (F-order; a view when ``kernel`` is C-order)."""
    return np.asfortranarray(kernel.T)


def keras_dense(weight: np.ndarray) -> np.ndarray:
    """Julia ``(out, in)`` → Keras ``(in, out)``."""
    return np.ascontiguousarray(weight.T)


def julia_conv(kernel: np.ndarray) -> np.ndarray:
    """Keras HWIO ``(kH, kW, Cin, Cout)`` → Julia ``(kW, kH, Cin, Cout)`` for cross-correlation."""
    return np.asfortranarray(kernel.transpose(1, 0, 2, 3))


def keras_conv(weight: np.ndarray) -> np.ndarray:
    """Julia ``(kW, kH, Cin, Cout)`` → Keras HWIO."""
    return np.ascontiguousarray(weight.transpose(1, 0, 2, 3))


def flip_spatial(kernel: np.ndarray) -> np.ndarray:
    """Reverse both spatial axes: turns a cross-correlation kernel into a true-convolution one
    (and back), for either layout since both put the spatial axes first."""
    return np.ascontiguousarray(kernel[::-1, ::-1])


def dense_rows_nhwc_to_whcn(kernel: np.ndarray, feature_shape: tuple[int, int, int]) -> np.ndarray:
    """Reorder the rows of a Dense kernel ``(H*W*C, out)`` that reads an NHWC flatten so that it
    reads a WHCN (column-major) flatten instead. ``feature_shape`` is ``(H, W, C)``."""
    h, w, c = feature_shape
    out = kernel.shape[1]
    # row r of the result is WHCN index w + W*h + W*H*c: an F-order flatten of axes (w, h, c)
    return kernel.reshape(h, w, c, out).transpose(1, 0, 2, 3).reshape(w * h * c, out, order="F")


def dense_rows_whcn_to_nhwc(kernel: np.ndarray, feature_shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of :func:`dense_rows_nhwc_to_whcn`."""
    h, w, c = feature_shape
    out = kernel.shape[1]
    return np.ascontiguousarray(kernel.reshape(w, h, c, out, order="F").transpose(1, 0, 2, 3)
                                .reshape(h * w * c, out))


def _convert(weights: dict[str, np.ndarray], feature_shape, dense, conv, reorder_rows) -> dict[str, np.ndarray]:
    """Every parameter through ``dense`` / ``conv``; the first Dense after convolutions also through
    ``reorder_rows`` (for the engine's flatten order), which needs ``feature_shape`` ``(H', W', C')``."""
    out = {}
    has_conv = any(k.startswith("conv_") for k in weights)
    for name, array in weights.items():
        if name.endswith("/bias"):
            out[name] = np.ascontiguousarray(array)
        elif name.startswith("conv_"):
            out[name] = conv(array)
        elif name == "dense_0/kernel" and has_conv:
            if feature_shape is None:
                raise ValueError("feature_shape is needed to reorder dense_0 after convolutions")
            out[name] = dense(reorder_rows(array, feature_shape))
        else:
            out[name] = dense(array)
    return out


def to_julia(weights: dict[str, np.ndarray], feature_shape: tuple[int, int, int] | None = None
             ) -> dict[str, np.ndarray]:
    """Every parameter in the Flux/Knet layout (F-order arrays whose shape is the Julia size); the first
    Dense after convolutions reads the WHCN flatten. Biases are unchanged."""
    return _convert(weights, feature_shape, julia_dense, julia_conv, dense_rows_nhwc_to_whcn)


def dense_rows_nhwc_to_nchw(kernel: np.ndarray, feature_shape: tuple[int, int, int]) -> np.ndarray:
    """Reorder the rows of a Dense kernel ``(H*W*C, out)`` that reads an NHWC flatten (Keras,
    index ``(h*W + w)*C + c``) so that it reads an NCHW flatten (PyTorch ``nn.Flatten``, index
    ``(c*H + h)*W + w``) instead. ``feature_shape`` is ``(H, W, C)``."""
    h, w, c = feature_shape
    out = kernel.shape[1]
    return np.ascontiguousarray(kernel.reshape(h, w, c, out).transpose(2, 0, 1, 3).reshape(c * h * w, out))


def dense_rows_nchw_to_nhwc(kernel: np.ndarray, feature_shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of :func:`dense_rows_nhwc_to_nchw`."""
    h, w, c = feature_shape
    out = kernel.shape[1]
    return np.ascontiguousarray(kernel.reshape(c, h, w, out).transpose(1, 2, 0, 3).reshape(h * w * c, out))


def torch_dense(kernel: np.ndarray) -> np.ndarray:
    """Keras ``(in, out)`` → ``nn.Linear.weight`` ``(out, in)``, C-contiguous."""
    return np.ascontiguousarray(kernel.T)


def torch_conv(kernel: np.ndarray) -> np.ndarray:
    """Keras HWIO ``(kH, kW, Cin, Cout)`` → ``nn.Conv2d.weight`` OIHW ``(Cout, Cin, kH, kW)``, both
    cross-correlation (no flip), C-contiguous."""
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def to_torch(weights: dict[str, np.ndarray], feature_shape: tuple[int, int, int] | None = None
             ) -> dict[str, np.ndarray]:
    """Every parameter in PyTorch's layout (C-contiguous arrays); the first Dense after convolutions
    reads the NCHW flatten. Biases are unchanged."""
    return _convert(weights, feature_shape, torch_dense, torch_conv, dense_rows_nhwc_to_nchw)
