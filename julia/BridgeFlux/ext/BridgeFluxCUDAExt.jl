# BridgeFlux on an NVIDIA GPU, loaded by Julia when CUDA and cuDNN are loaded next to BridgeFlux (as
# Flux's own FluxCUDAExt is): a CPU run never loads CUDA. cuDNN is needed as well because
# MLDataDevices' `gpu_device` picks CUDA only with cuDNN loaded (MLDataDevices public.jl@v1.17.10,
# gpu_device docstring).
module BridgeFluxCUDAExt

using BridgeFlux, CUDA, cuDNN
using BridgeFlux: Flux

BridgeFlux.sync_device(::Flux.CUDADevice) = CUDA.synchronize()

BridgeFlux.device_name(::Flux.CUDADevice) = CUDA.name(CUDA.device())

# TF32: NNlib's cuDNN convolutions take their math type from `CUDA.math_mode()` (NNlib
# ext/NNlibCUDACUDNNExt/conv.jl@v0.9.36:58-68), and cuDNN.jl maps the default mode to tensor-op math,
# which lets FP32 convolutions use TF32 on Ampere and later (lib/cudnn/src/cuDNN.jl@v5.11.3:51-62 for
# cuDNN.jl 1.4.6, the same function at @v6.3.0:65-77 for 6.3).
# bridge starts every cuda worker with NVIDIA_TF32_OVERRIDE=0, which cuDNN and cuBLAS honour whatever
# the math mode says; both are recorded.
BridgeFlux.device_report(::Flux.CUDADevice) = Dict{String,Any}(
    "cuda_math_mode" => string(CUDA.math_mode()),
    "NVIDIA_TF32_OVERRIDE" => get(ENV, "NVIDIA_TF32_OVERRIDE", "unset"),
    "cudnn_version" => string(cuDNN.version()))

# The stream-ordered pool CUDA.jl allocates from: its high-water mark of bytes in use since the worker
# started (CU_MEMPOOL_ATTR_USED_MEM_HIGH through CUDA.jl's `attribute(X, pool, attr)`), and the device's
# memory.
BridgeFlux.device_memory(::Flux.CUDADevice) = Dict{String,Any}(
    "device_memory_peak_bytes" =>
        Int(CUDA.attribute(UInt64, CUDA.memory_pool(CUDA.device()), CUDA.MEMPOOL_ATTR_USED_MEM_HIGH)),
    "device_memory_total_bytes" => Int(CUDA.total_memory()))

# The convolution algorithms cuDNN chose: cuDNN.jl keeps its choice for each convolution shape in three
# caches (lib/cudnn/src/convolution.jl@v5.11.3:194-299 for cuDNN.jl 1.4, lib/cudnn/src/legacy/
# convolution.jl@v6.3.0:149-246 for 6), filled when NNlib's conv and its two gradients first meet a shape
# (ext/NNlibCUDACUDNNExt/conv.jl@v0.9.36). Each value is cuDNN's perf struct, whose `algo` and
# `determinism` are CEnum values that print as their names (CEnum src/CEnum.jl: `print` is `Symbol(x)`).
BridgeFlux.conv_algorithms(::Flux.CUDADevice) = [
    (pass, string(p.algo), string(p.determinism))
    for (pass, cache) in (("forward", cuDNN.cudnnConvolutionFwdAlgoPerfCache),
                          ("backward data", cuDNN.cudnnConvolutionBwdDataAlgoPerfCache),
                          ("backward filter", cuDNN.cudnnConvolutionBwdFilterAlgoPerfCache))
    for p in values(cache)]

end # module
