"""
    BridgeKnet

The Knet.jl engine of bridge: trains the experiment of a saved batch plan on the same batches and
from the same initial weights as the tf.keras and NumPy engines, with Keras semantics (cross-correlation
convolutions, mean sparse softmax cross-entropy, Keras 3 Adam/SGD) and Knet's own layers.

Protocol (the same names as the Python engines and BridgeFlux): `prepare`, `train_epoch`, `predict`,
`engine_report`; [`replay`](@ref) reruns a saved plan natively. Written against Knet 1.4.10 (whose
dependency set resolves only on Julia 1.9) and CUDA 3.13.1; checked statically, not executed where
it was written.
"""
module BridgeKnet

# Knet depends on CUDA and loads it whatever the device (a hard dependency of Knet 1.4.10); bridge
# reports what loading it costs (cuda_load_s).
import CUDA
import Knet
# Explicit names only: a plain `using Knet` would also bring Knet's Adam, SGD, update! and train!.
using Knet: Param, @diff, grad, value, param, conv4, pool, mat, nll, relu
using LinearAlgebra: BLAS
using NPZ, TOML
using PrecompileTools: @setup_workload, @compile_workload

# Only `replay` is for REPL users; `predict` and `prepare` would clash with MLJ's or StatsAPI's.
export replay

include("common/plan.jl")
include("common/engine.jl")
include("model.jl")
include("keras_adam.jl")
include("engine.jl")
include("common/precompile.jl")

end # module
