# The Flux model, built from the plan's initial weights (already in Flux layout; see
# bridge/experiment/layouts.py) so it starts from exactly the same parameters as every other engine.

"""
    build_model(w, meta) -> Chain

The model of plan.toml's `meta["model"]` with weights `w` (name => array in Flux layout):

* `"mlp"`: `Dense(W, b, relu)` for every `dense_i` but the last, which is `Dense(W, b)` (logits).
  `W` is `(out, in)`, inputs are `F×N`.
* `"cnn"`: per `conv_i`, `CrossCor(K, b, relu)` (valid, stride 1) then `MaxPool((2, 2))`; then
  `Flux.flatten` and the dense stack above. `K` is `(kW, kH, Cin, Cout)`, inputs are WHCN.

The layers are mutable views of `w`'s arrays: training updates them in place.
"""
function build_model(w::AbstractDict, meta::AbstractDict)
    kind = meta["model"]
    layers = Any[]
    if kind == "cnn"
        for i in 0:layer_count(w, "conv")-1
            # CrossCor, not Conv: Keras Conv2D computes a cross-correlation, while Flux's Conv
            # flips the kernel (true convolution, flipkernel=false in NNlib). Flux conv.jl@v0.16.11:
            # CrossCor(weight, bias, σ; stride=1, pad=0, dilation=1) at :455-462, forward :484-489.
            push!(layers, CrossCor(w["conv_$(i)/kernel"], w["conv_$(i)/bias"], relu))
            # Flux's own MaxPool, as a Flux user writes it. Forward: Keras MaxPooling2D((2,2)) "valid",
            # floor division, odd trailing row/column dropped (conv.jl@v0.16.11:728; NNlib PoolDims).
            # Backward differs from Keras on the CPU, and bridge measures it rather than hiding it:
            # NNlib's ∇maxpool gives a window's gradient to the first element ≈ the maximum (rtol
            # √eps(Float32); src/impl/pooling_direct.jl@v0.9.36:262, the newest NNlib read; Flux
            # 0.16.11 resolves NNlib >= 0.9.42, recorded per run as nnlib_version, and the canary in
            # test/runtests.jl fails if its rule differs), not the exact maximum. The parity of this
            # engine is measured against the reference variant with that rule
            # (bridge/experiment/semantics.py). On a GPU, cuDNN's pooling backward runs instead.
            push!(layers, MaxPool((2, 2)))
        end
        # Column-major flatten of WHCN (index w + W*h + W*H*c), unlike Keras' NHWC flatten
        # ((h*W + w)*C + c). No permutedims is needed: Python already reordered the rows of
        # dense_0/kernel for the WHCN order (bridge.experiment.layouts.dense_rows_nhwc_to_whcn).
        push!(layers, Flux.flatten)
    elseif kind != "mlp"
        throw(unknown("model", kind, ("mlp", "cnn")))
    end
    n = layer_count(w, "dense")
    n > 0 || throw(ArgumentError("the weights hold no dense_0/kernel"))
    for i in 0:n-1
        # Flux basic.jl@v0.16.11:183 Dense(W::AbstractMatrix, bias=true, σ=identity); forward
        # σ.(W*x .+ b) (:196-200). relu'(0) = 0 in NNlib (activations.jl@v0.9.36:947, Ω > 0), as
        # TF's ReluGrad and numpy_nn's `z > 0`.
        σ = i < n - 1 ? relu : identity
        push!(layers, Dense(w["dense_$(i)/kernel"], w["dense_$(i)/bias"], σ))
    end
    return Chain(layers...)
end
