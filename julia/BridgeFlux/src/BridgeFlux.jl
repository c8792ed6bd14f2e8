"""
    BridgeFlux

The Flux.jl engine of `bridge`: replays a saved batch plan (plan.toml, per-epoch batches, initial
weights in Flux layout) with the same model, loss and optimizer arithmetic as the NumPy reference
(`python/numpy_nn.py`), so its per-step losses can be compared with tf.keras and the reference.

Written against Flux 0.16.11 / Optimisers 0.4.8 / CUDA 5.11.3 sources; Python drives it through
juliacall (`prepare`, `train_epoch`, `predict`, `engine_report`, `wrap_inputs`, `wrap_labels`).
"""
module BridgeFlux

using Flux, Optimisers, NPZ, TOML, LinearAlgebra
# GPU path. Both are needed: MLDataDevices' `gpu_device` selects CUDA only when cuDNN is loaded too
# (MLDataDevices public.jl@v1.17.10, gpu_device docstring). Loading them without a GPU is harmless.
using CUDA, cuDNN

export prepare, train_epoch, predict, replay

# Plan reading, zero-copy wrapping of NumPy buffers, `replay` (shared with BridgeKnet).
include("../../common/plan.jl")
include("model.jl")
include("keras_adam.jl")
include("engine.jl")

end # module
