"""Layout conversions: round trips, and that the converted weights compute what Keras computes."""
import numpy as np
import pytest

from bridge.experiment import layouts
from bridge.experiment.models import cnn_feature_shape
from bridge.experiment.weights import glorot_uniform

from tests.support import model_shapes

rng = np.random.default_rng(0)


def julia_view(a: np.ndarray) -> np.ndarray:
    """How Julia indexes a NumPy buffer: a C-order array of shape s is a column-major array of
    size reversed(s); as NumPy, that is the transpose (a view, no copy)."""
    return a.T


def test_round_trips_are_exact():
    k = rng.standard_normal((3, 3, 2, 5))
    assert np.array_equal(layouts.keras_conv(layouts.julia_conv(k)), k)
    d = rng.standard_normal((7, 4))
    assert np.array_equal(layouts.keras_dense(layouts.julia_dense(d)), d)
    x = rng.standard_normal((2, 3, 5, 4))
    assert np.array_equal(layouts.nhwc_to_nchw(layouts.nchw_to_nhwc(x)), x)
    k1 = rng.standard_normal((5 * 4 * 3, 6))
    assert np.array_equal(layouts.dense_rows_whcn_to_nhwc(layouts.dense_rows_nhwc_to_whcn(k1, (5, 4, 3)),
                                                          (5, 4, 3)), k1)


def test_dense_weight_is_keras_kernel_buffer_read_column_major():
    k = np.ascontiguousarray(rng.standard_normal((4, 10)))
    w = layouts.julia_dense(k)
    assert w.shape == (10, 4) and w.flags.f_contiguous
    assert np.shares_memory(w, k)  # no copy: Keras (in, out) C-order is Julia (out, in)
    x = rng.standard_normal((6, 4))  # (N, F) C-order = Julia F x N
    assert np.allclose((w @ julia_view(x)).T, x @ k)


def _xcorr_whcn(x_whcn, w_whio):
    """Valid cross-correlation in Julia's WHCN / (kW, kH, Cin, Cout) layout."""
    kw, kh, _, cout = w_whio.shape
    W, H, _, N = x_whcn.shape
    y = np.zeros((W - kw + 1, H - kh + 1, cout, N))
    for i in range(kw):
        for j in range(kh):
            y += np.einsum("whcn,co->whon", x_whcn[i:i + W - kw + 1, j:j + H - kh + 1], w_whio[i, j])
    return y


def _xcorr_nhwc(x, k):
    kh, kw, _, cout = k.shape
    N, H, W, _ = x.shape
    y = np.zeros((N, H - kh + 1, W - kw + 1, cout))
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("nhwc,co->nhwo", x[:, i:i + H - kh + 1, j:j + W - kw + 1], k[i, j])
    return y


def test_conv_kernel_in_julia_layout_computes_keras_cross_correlation():
    x_nchw = np.ascontiguousarray(rng.standard_normal((2, 3, 7, 6)))  # the plan's layout
    k = rng.standard_normal((3, 3, 3, 4))  # Keras HWIO
    y_keras = _xcorr_nhwc(layouts.nchw_to_nhwc(x_nchw), k)
    y_julia = _xcorr_whcn(julia_view(x_nchw), layouts.julia_conv(k))  # WHCN without a copy
    assert np.allclose(y_julia, y_keras.transpose(2, 1, 3, 0))
    # a true convolution (Flux Conv, Knet mode=0) needs the flipped kernel to give the same
    flipped = layouts.flip_spatial(layouts.julia_conv(k))
    assert not np.allclose(_xcorr_whcn(julia_view(x_nchw), flipped), y_julia)


def test_first_dense_after_convs_reads_the_julia_flatten_order():
    feat = rng.standard_normal((2, 5, 4, 3))  # Keras NHWC features (N, H, W, C)
    k = rng.standard_normal((5 * 4 * 3, 6))
    keras_out = feat.reshape(2, -1) @ k
    whcn = feat.transpose(2, 1, 3, 0)  # Julia (W, H, C, N)
    julia_flat = whcn.reshape(-1, 2, order="F")  # Flux.flatten / Knet mat: column-major
    w = layouts.julia_dense(layouts.dense_rows_nhwc_to_whcn(k, (5, 4, 3)))
    assert np.allclose((w @ julia_flat).T, keras_out)


def test_to_julia_converts_every_parameter_of_the_cnn():
    shapes = model_shapes("cnn", (1, 28, 28), 10)
    w = glorot_uniform(shapes, 0)
    j = layouts.to_julia(w, cnn_feature_shape((1, 28, 28), (32, 64)))
    assert j["conv_0/kernel"].shape == (3, 3, 1, 32) and j["dense_0/kernel"].shape == (128, 1600)
    assert j["dense_1/kernel"].shape == (10, 128) and np.array_equal(j["dense_0/bias"], w["dense_0/bias"])
    assert all(a.flags.f_contiguous for a in j.values())


def test_dense_rows_nchw_reorder_reads_the_torch_flatten():
    n, h, w, c, out = 3, 5, 4, 6, 7
    feat_nhwc = rng.standard_normal((n, h, w, c))
    kernel = rng.standard_normal((h * w * c, out))
    keras = feat_nhwc.reshape(n, -1) @ kernel
    feat_nchw = np.ascontiguousarray(feat_nhwc.transpose(0, 3, 1, 2))  # what nn.Flatten reads
    torch_k = layouts.dense_rows_nhwc_to_nchw(kernel, (h, w, c))
    assert np.allclose(feat_nchw.reshape(n, -1) @ torch_k, keras)
    assert np.array_equal(layouts.dense_rows_nchw_to_nhwc(torch_k, (h, w, c)), kernel)


def test_to_torch_layouts():
    shapes = model_shapes("cnn", (1, 28, 28), 10)
    weights = glorot_uniform(shapes, 0)
    t = layouts.to_torch(weights, cnn_feature_shape((1, 28, 28), (32, 64)))
    assert t["conv_0/kernel"].shape == (32, 1, 3, 3) and t["conv_1/kernel"].shape == (64, 32, 3, 3)
    assert t["dense_0/kernel"].shape == (128, 5 * 5 * 64) and t["dense_1/kernel"].shape == (10, 128)
    assert np.array_equal(t["conv_1/kernel"][5, 7], weights["conv_1/kernel"][:, :, 7, 5])
    assert np.array_equal(t["dense_1/kernel"], weights["dense_1/kernel"].T)
    assert all(a.flags.c_contiguous for a in t.values())
    with pytest.raises(ValueError, match="feature_shape"):
        layouts.to_torch(weights)
