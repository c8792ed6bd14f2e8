"""
    BridgeFlux

The Flux.jl engine of `bridge`: replays a saved batch plan (plan.toml, per-epoch batches, initial
weights in Flux layout) with the same model, loss and optimizer arithmetic as the NumPy reference
(`python/common/numpy_nn.py`), so its per-step losses can be compared with tf.keras and the reference.

Python drives it through juliacall (`prepare`, `train_epoch`, `predict`, `engine_report`,
`wrap_inputs`, `wrap_labels`); [`replay`](@ref) reruns a saved plan from the Julia REPL. The GPU path
is the `BridgeFluxCUDAExt` extension, loaded by `using CUDA, cuDNN`. Written against Flux 0.16.11,
Optimisers 0.4.8, CUDA 5.11.3 and cuDNN 1.4.6; checked statically, not executed where it was written.
"""
module BridgeFlux

using Flux, Optimisers, NPZ, TOML, LinearAlgebra
using PrecompileTools: @setup_workload, @compile_workload

# Only `replay` is for REPL users; `predict` and `prepare` would clash with MLJ's or StatsAPI's.
export replay

# Plan reading, zero-copy wrapping of NumPy buffers, `replay`, and the helpers both engines share.
include("common/plan.jl")
include("common/engine.jl")
include("model.jl")
include("keras_adam.jl")
include("engine.jl")
include("common/precompile.jl")

end # module
