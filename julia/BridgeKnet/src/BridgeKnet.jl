"""
    BridgeKnet

The Knet.jl engine of bridge: trains the experiment of a saved batch plan on the same batches and
from the same initial weights as the tf.keras and NumPy engines, with Keras semantics (cross-correlation
convolutions, mean sparse softmax cross-entropy, Keras 3 Adam/SGD).

Protocol (the same names as the Python engines): [`prepare`](@ref), [`train_epoch`](@ref),
[`predict`](@ref); [`replay`](@ref) reruns a saved plan natively. Written against Knet 1.4.10, which
resolves only on Julia ≤ 1.9.
"""
module BridgeKnet

import CUDA
import Knet
# Explicit names only: a plain `using Knet` would also bring Knet's Adam, SGD, update! and train!.
using Knet: Param, @diff, grad, value, param, conv4, pool, mat, nll, relu
using LinearAlgebra: BLAS
using NPZ, TOML

export prepare, train_epoch, predict, replay

include("../../common/plan.jl")
include("model.jl")
include("keras_adam.jl")
include("engine.jl")

end # module
