# The networks of python/common/numpy_nn.py in Knet's idiom: a struct of Params, called on a batch.
# Layouts (converted once by Python's bridge.experiment.layouts): inputs F×N or W×H×C×N, dense weights
# (out, in), conv kernels (kW, kH, Cin, Cout) for cross-correlation.

"""
    Model(weights, atype)

The reference network: convolutions `conv_w[i]` (kW, kH, Cin, Cout) with biases `conv_b[i]`
(1, 1, Cout, 1), each followed by relu and a 2×2 max-pool; then dense layers `dense_w[i]` (out, in)
with biases `dense_b[i]` (out,), relu after all but the last, which gives logits (classes × N).

`weights` is `initial_weights(plan)` (name => array in Knet layout); every array becomes a `Param`
of type `atype` (`Array{Float32}` on the CPU, Knet's GPU array type on a GPU).
"""
struct Model
    conv_w::Vector{Param}
    conv_b::Vector{Param}
    dense_w::Vector{Param}
    dense_b::Vector{Param}
end

function Model(weights::AbstractDict, atype)
    layers(prefix) = 0:layer_count(weights, prefix)-1
    array(prefix, i, part) = weights["$(prefix)_$i/$part"]
    isempty(layers("dense")) && throw(ArgumentError("the weights hold no dense_0/kernel"))
    return Model(
        Param[param(array("conv", i, "kernel"); atype=atype) for i in layers("conv")],
        # Knet's convention: the conv bias lives on the channel axis of a 4-D array, so `.+` broadcasts it.
        Param[param(reshape(array("conv", i, "bias"), 1, 1, :, 1); atype=atype) for i in layers("conv")],
        Param[param(array("dense", i, "kernel"); atype=atype) for i in layers("dense")],
        Param[param(array("dense", i, "bias"); atype=atype) for i in layers("dense")])
end

"Every trainable parameter of `m`."
parameters(m::Model) = [m.conv_w; m.conv_b; m.dense_w; m.dense_b]

"Number of classes: rows of the last dense weight."
classes(m::Model) = size(value(m.dense_w[end]), 1)

"""
    crosscor(w, x)

Valid, stride-1 cross-correlation, what Keras Conv2D computes. Knet's `conv4` default `mode=0` is a
true convolution (flipped kernel); `mode=1` is cross-correlation, despite its docstring's wording.
"""
crosscor(w, x) = conv4(w, x; mode=1)

"Logits (classes × N) for a batch `x` (F × N for an MLP, W × H × C × N for a CNN)."
function (m::Model)(x)
    for (w, b) in zip(m.conv_w, m.conv_b)
        # relu before pool, the reference's order; pool's defaults (window 2, stride 2, no padding)
        # drop an odd trailing row/column like Keras MaxPooling2D "valid". Knet's own pool, as a Knet
        # user writes it: its CPU backward is NNlib's ∇maxpool (Knet src/ops20/conv.jl@v1.4.10:160,168),
        # which gives a window's gradient to the first element ≈ the maximum (rtol √eps(Float32);
        # NNlib src/impl/pooling_direct.jl@v0.8.21:238), not the exact maximum as Keras does. This
        # engine's parity is measured against the reference variant with that rule (bridge/experiment/semantics.py);
        # on a GPU, cuDNN's pooling backward runs instead.
        x = pool(relu.(crosscor(w, x) .+ b))
    end
    # Column-major flatten of W×H×C; Python reordered dense_0's columns for it. A no-op on F×N input.
    x = mat(x)
    n = length(m.dense_w)
    for (i, (w, b)) in enumerate(zip(m.dense_w, m.dense_b))
        x = w * x .+ b
        x = i < n ? relu.(x) : x
    end
    return x
end

"""
    knet_labels(y, classes) -> Vector{Int}

Keras' 0-based labels as Knet's 1-based classes. Knet's `nll` silently skips an example labelled 0
and reads a neighbour's score for one above `classes`, so out-of-range labels are an error here.
"""
function knet_labels(y::AbstractVector{<:Integer}, classes::Integer)
    bad = findfirst(l -> !(0 <= l < classes), y)
    bad === nothing || throw(ArgumentError(
        "label $(y[bad]) at position $bad is outside 0:$(classes - 1); labels must be 0-based class indices"))
    return Int.(y) .+ 1
end

"Mean softmax cross-entropy over the batch; `labels` 1-based (see [`knet_labels`](@ref))."
loss(m::Model, x, labels) = nll(m(x), labels)
