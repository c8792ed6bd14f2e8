"""The models, described once: parameter names and shapes in the neutral layout.

The neutral layout is the Keras one: Dense kernels ``(in, out)``, Conv kernels HWIO
``(kH, kW, Cin, Cout)``, and the first Dense after the convolutions reads the NHWC flatten order
(index ``(h*W' + w)*C + c``). Engines with other layouts convert with :mod:`bridge.layouts`.

- ``mlp``: Iris 4→10 relu→3; any other data F→256 relu→128 relu→K.
- ``cnn``: Conv 3×3×32 relu → MaxPool 2 → Conv 3×3×64 relu → MaxPool 2 → Dense 128 relu → Dense K
  (valid padding, stride 1, cross-correlation as Keras computes it).
Every model returns logits; the loss is softmax cross-entropy, mean over the batch.

FLOPs (:func:`forward_flops`): 2 per multiply-add of every Dense and Conv layer; biases, activations,
pooling and the loss are not counted (they are a few percent at most here). A training step costs about
``TRAINING_FACTOR`` = 3× the forward pass (the backward pass computes gradients with respect to both
the inputs and the weights of each layer, two products of the forward one's size).
"""
from __future__ import annotations

MLP_HIDDEN = {"iris": (10,)}
MLP_HIDDEN_DEFAULT = (256, 128)
CNN_FILTERS = (32, 64)
CNN_KERNEL = 3
CNN_POOL = 2
CNN_DENSE = 128
TRAINING_FACTOR = 3


def mlp_hidden(dataset: str) -> tuple[int, ...]:
    return MLP_HIDDEN.get(dataset, MLP_HIDDEN_DEFAULT)


def cnn_feature_shape(image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """``(H', W', C')`` after the conv/pool stack, for an input ``(C, H, W)``."""
    _, h, w = image_shape
    for _ in CNN_FILTERS:
        h, w = (h - CNN_KERNEL + 1) // CNN_POOL, (w - CNN_KERNEL + 1) // CNN_POOL
    return h, w, CNN_FILTERS[-1]


def parameter_shapes(model: str, dataset: str, input_shape: tuple[int, ...], classes: int
                     ) -> dict[str, tuple[int, ...]]:
    """Parameter name → shape, in forward order. ``input_shape`` is ``(F,)`` or ``(C, H, W)``."""
    shapes: dict[str, tuple[int, ...]] = {}
    if model == "mlp":
        width = 1
        for d in input_shape:
            width *= d
        sizes = (width, *mlp_hidden(dataset), classes)
    elif model == "cnn":
        cin = input_shape[0]
        for i, cout in enumerate(CNN_FILTERS):
            shapes[f"conv_{i}/kernel"] = (CNN_KERNEL, CNN_KERNEL, cin, cout)
            shapes[f"conv_{i}/bias"] = (cout,)
            cin = cout
        h, w, c = cnn_feature_shape(input_shape)
        sizes = (h * w * c, CNN_DENSE, classes)
    else:
        raise ValueError(f"model {model!r} is not known; accepted: mlp, cnn")
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f"dense_{i}/kernel"] = (n_in, n_out)
        shapes[f"dense_{i}/bias"] = (n_out,)
    return shapes


def forward_flops(model: str, dataset: str, input_shape: tuple[int, ...], classes: int) -> int:
    """Forward-pass FLOPs per example (2 per multiply-add; see the module's doc)."""
    shapes = parameter_shapes(model, dataset, input_shape, classes)
    flops = 0
    if model == "cnn":
        _, h, w = input_shape
        for i in range(len(CNN_FILTERS)):
            kh, kw, cin, cout = shapes[f"conv_{i}/kernel"]
            h, w = h - kh + 1, w - kw + 1  # valid, stride 1
            flops += 2 * h * w * kh * kw * cin * cout
            h, w = h // CNN_POOL, w // CNN_POOL
    for name, shape in shapes.items():
        if name.startswith("dense_") and name.endswith("/kernel"):
            flops += 2 * shape[0] * shape[1]
    return flops
