"""The models, described once: parameter names and shapes in the neutral layout.

The neutral layout is the Keras one: Dense kernels ``(in, out)``, Conv kernels HWIO
``(kH, kW, Cin, Cout)``, and the first Dense after the convolutions reads the NHWC flatten order
(index ``(h*W' + w)*C + c``). Engines with other layouts convert with :mod:`bridge.layouts`.

- ``mlp``: F → each of ``spec.hidden`` (Dense, relu) → K. Default widths by data set: Iris 10, others
  256, 128.
- ``cnn``: per ``spec.filters`` a Conv 3×3 relu → MaxPool 2 (default 32, 64), then Dense ``spec.dense``
  relu (default 128) → Dense K (valid padding, stride 1, cross-correlation as Keras computes it).

Engines build their layers from the plan's parameter shapes (:func:`layer_sizes`), never from the spec,
so every engine, Julia's included, trains exactly the shapes the plan holds.
Every model returns logits; the loss is softmax cross-entropy, mean over the batch.

FLOPs (:func:`forward_flops`): 2 per multiply-add of every Dense and Conv layer; biases, activations,
pooling and the loss are not counted (they are a few percent at most here). A training step costs about
``TRAINING_FACTOR`` = 3× the forward pass (the backward pass computes gradients with respect to both
the inputs and the weights of each layer, two products of the forward one's size).
"""
from __future__ import annotations

CNN_KERNEL = 3
CNN_POOL = 2
TRAINING_FACTOR = 3


def cnn_feature_shape(image_shape: tuple[int, int, int], filters: tuple[int, ...]) -> tuple[int, int, int]:
    """``(H', W', C')`` after the conv/pool stack with ``filters``, for an input ``(C, H, W)``."""
    _, h, w = image_shape
    for _ in filters:
        h, w = (h - CNN_KERNEL + 1) // CNN_POOL, (w - CNN_KERNEL + 1) // CNN_POOL
    return h, w, filters[-1]


def parameter_shapes(spec, input_shape: tuple[int, ...], classes: int) -> dict[str, tuple[int, ...]]:
    """Parameter name → shape, in forward order, for ``spec``'s model and sizes. ``input_shape`` is
    ``(F,)`` or ``(C, H, W)``."""
    shapes: dict[str, tuple[int, ...]] = {}
    if spec.model == "mlp":
        width = 1
        for d in input_shape:
            width *= d
        sizes = (width, *spec.hidden, classes)
    elif spec.model == "cnn":
        h, w, c = cnn_feature_shape(tuple(input_shape), tuple(spec.filters))  # >= 1: checked by the spec
        cin = input_shape[0]
        for i, cout in enumerate(spec.filters):
            shapes[f"conv_{i}/kernel"] = (CNN_KERNEL, CNN_KERNEL, cin, cout)
            shapes[f"conv_{i}/bias"] = (cout,)
            cin = cout
        sizes = (h * w * c, spec.dense, classes)
    else:
        raise ValueError(f"model {spec.model!r} is not known; accepted: mlp, cnn")
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f"dense_{i}/kernel"] = (n_in, n_out)
        shapes[f"dense_{i}/bias"] = (n_out,)
    return shapes


def layer_sizes(shapes: dict[str, tuple[int, ...]]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(conv filters, dense widths)`` of a model from its parameter shapes (a plan's ``parameters``):
    what every engine builds its layers from, and the one place layers are counted (``len`` of each).
    Dense widths include the logits layer."""
    def widths(prefix: str) -> tuple[int, ...]:
        out, i = [], 0
        while f"{prefix}_{i}/kernel" in shapes:
            out.append(int(shapes[f"{prefix}_{i}/kernel"][-1]))
            i += 1
        return tuple(out)
    return widths("conv"), widths("dense")


def parameter_count(shapes: dict[str, tuple[int, ...]]) -> int:
    total = 0
    for shape in shapes.values():
        n = 1
        for d in shape:
            n *= d
        total += n
    return total


def forward_flops(shapes: dict[str, tuple[int, ...]], input_shape: tuple[int, ...]) -> int:
    """Forward-pass FLOPs per example of the model with parameter ``shapes`` (2 per multiply-add; see
    the module's doc)."""
    filters, widths = layer_sizes(shapes)
    flops = 0
    if filters:
        _, h, w = input_shape
        for i in range(len(filters)):
            kh, kw, cin, cout = shapes[f"conv_{i}/kernel"]
            h, w = h - kh + 1, w - kw + 1  # valid, stride 1
            flops += 2 * h * w * kh * kw * cin * cout
            h, w = h // CNN_POOL, w // CNN_POOL
    for i in range(len(widths)):
        n_in, n_out = shapes[f"dense_{i}/kernel"]
        flops += 2 * n_in * n_out
    return flops
