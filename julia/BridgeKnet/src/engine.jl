# The engine protocol on the Julia side (bridge/contract.py): prepare, train_epoch, predict,
# engine_report. BridgeFlux's engine.jl defines the same functions and helpers under the same names.

"""
    Session

One engine run: the model (its `Param`s on the chosen device, each holding its Keras optimizer in
`p.opt`, the slot Knet itself uses for per-parameter optimizers), plan.toml's values, and the device:
the array type batches are moved to (`Array{Float32}` on the CPU).
"""
mutable struct Session
    model::Model
    params::Vector{Param}
    meta::Dict{String,Any}
    device::Type
end

# Knet 1.4.10 admits only CUDA.jl 3.x, which generates sm_86 code at most and loads it as a cubin, so
# no kernel loads on compute capability 9.0 and later (why: KNET_CAPABILITY_BELOW in
# bridge/julia/record.py, which refuses such GPUs before a worker starts; this is the same bound).
const KNET_CAPABILITY_BELOW = v"9.0"

"The array type for `name`: `Array{Float32}`, or Knet's GPU array type on the first CUDA GPU."
function select_device(name::AbstractString)
    check_device_name(name) == "cpu" && return Array{Float32}
    CUDA.functional(true) || error("device = \"cuda\", but CUDA.functional() is false (reason above); " *
                                   "fix the CUDA setup or use device = \"cpu\"")
    # Knet's __init__ picks the GPU with the most free memory (src/Knet.jl@v1.4.10:37-40); bridge runs
    # every engine on the first one.
    CUDA.device!(0)
    gpu, capability = CUDA.name(CUDA.device()), CUDA.capability(CUDA.device())
    capability < KNET_CAPABILITY_BELOW ||
        error("Knet 1.4.10 is bound to CUDA.jl 3.x, which cannot generate code for compute capability " *
              "$KNET_CAPABILITY_BELOW or later (this GPU: $gpu, $capability); run knet with device = \"cpu\" " *
              "or on an Ampere or older GPU")
    # Knet sizes cuDNN's workspace from CUDA.cached_memory() (src/ops20_gpu/conv.jl@v1.4.10:152), which
    # CUDA.jl 3.13 gives only with its stream-ordered pool (src/pool.jl: a driver for CUDA 11.3 or later,
    # JULIA_CUDA_MEMORY_POOL unset or "cuda"); else `missing`, and the first convolution fails.
    CUDA.cached_memory() === missing &&
        error("Knet needs CUDA.jl's stream-ordered memory pool (a driver for CUDA 11.3 or later, " *
              "JULIA_CUDA_MEMORY_POOL unset or \"cuda\"); CUDA.cached_memory() is missing on $gpu")
    # Knet's __init__ switches its default array type to CuArray{Float32} when CUDA is functional.
    return Knet.atype()
end

"Wait for the GPU, so that the clock reads finished work."
sync_device(::Type{<:Array}) = nothing
sync_device(_) = CUDA.synchronize()

device_name(::Type{<:Array}) = "cpu"
device_name(_) = CUDA.name(CUDA.device())

device_report(::Type{<:Array}) = Dict{String,Any}()
device_memory(::Type{<:Array}) = Dict{String,Any}()
conv_algorithms(::Type{<:Array}) = ()
# The convolution algorithms cuDNN chose: Knet keeps its own choice for each (type, sizes, options) in
# three caches (src/ops20_gpu/conv.jl@v1.4.10:158-231: conv4_algos forward, conv4x_algos backward data,
# conv4w_algos backward filter); a value is CUDA.jl 3.13's perf struct (`algo`, `determinism`: CEnum
# values that print as their names), or `nothing` where no algorithm passed Knet's `perfChoose` and it
# runs algorithm 0.
conv_algorithms(atype) = [
    p === nothing ? (pass, "algorithm 0 (Knet's fallback: none found)", "unknown") :
        (pass, string(p.algo), string(p.determinism))
    for (pass, cache) in (("forward", Knet.Ops20_gpu.conv4_algos), ("backward data", Knet.Ops20_gpu.conv4x_algos),
                          ("backward filter", Knet.Ops20_gpu.conv4w_algos))
    for p in values(cache)]
# CUDA.jl's stream-ordered pool: its high-water mark of bytes in use since the worker started
# (CU_MEMPOOL_ATTR_USED_MEM_HIGH through CUDA.jl's `attribute(X, pool, attr)`), and the device's memory.
device_memory(atype) = Dict{String,Any}(
    "device_memory_peak_bytes" =>
        Int(CUDA.attribute(UInt64, CUDA.memory_pool(CUDA.device()), CUDA.MEMPOOL_ATTR_USED_MEM_HIGH)),
    "device_memory_total_bytes" => Int(CUDA.total_memory()))
# TF32: Knet builds its cuDNN convolution descriptors without a math type (src/ops20_gpu/conv.jl@v1.4.10:92),
# which lets FP32 convolutions use TF32 on Ampere and later; bridge starts every cuda worker with
# NVIDIA_TF32_OVERRIDE=0, which cuDNN and cuBLAS honour. Both are recorded.
device_report(atype) = Dict{String,Any}(
    "array_type" => string(atype),
    "cuda_math_mode" => string(CUDA.math_mode()),
    "NVIDIA_TF32_OVERRIDE" => get(ENV, "NVIDIA_TF32_OVERRIDE", "unset"))

"""
    prepare(meta, weights; device="cpu", threads=0) -> Session

Build the model of plan.toml's `meta` from its initial `weights` (name => array in Knet layout) and
its optimizer, on `device` (`"cpu"` or `"cuda"`). `threads > 0` applies the thread policy of
[`set_compute_threads!`](@ref). `prepare(plan_dir)` reads both from a plan folder.
"""
function prepare(meta::AbstractDict, weights::AbstractDict; device::AbstractString="cpu", threads::Integer=0)
    meta["model"] in ("mlp", "cnn") || throw(unknown("model", meta["model"], ("mlp", "cnn")))
    set_compute_threads!(threads, meta)
    atype = select_device(device)
    model = Model(weights, atype)
    ps = parameters(model)
    for p in ps
        p.opt = optimizer_rule(meta, value(p))
    end
    return Session(model, ps, Dict{String,Any}(meta), atype)
end

# Inputs must be a dense Float32 Array (batch_view wraps its memory); any other array is copied,
# before the clock starts.
function host_input(s::Session, x::AbstractArray)
    want = isempty(s.model.conv_w) ? 2 : 4
    layout = want == 2 ? "F × N" : "W × H × C × N"
    ndims(x) == want ||
        throw(ArgumentError("inputs have size $(size(x)); this model wants $layout (Julia layout)"))
    return host_array(Float32, x)
end

"""
    train_epoch(s, x, y) -> (losses::Vector{Float32}, seconds::Float64)

One pass over the epoch in the plan's batch order: `x` the whole epoch in Julia layout (F × N or
W × H × C × N, Float32), `y` its 0-based labels. Returns each batch's loss before its update and the
wall-clock seconds of the pass (GPU synchronised at both ends; in the first epoch, the compilation of
the loop too).
"""
function train_epoch(s::Session, x::AbstractArray, y::AbstractVector)
    x = host_input(s, x)
    n = size(x, ndims(x))
    length(y) == n || throw(DimensionMismatch("$(length(y)) labels for $n examples"))
    labels = knet_labels(y, classes(s.model))
    losses = Vector{Float32}(undef, length(batch_ranges(n, s.meta["batch_size"])))
    seconds = GC.@preserve x timed_pass(s.device, run_batches!, losses, s, x, labels)
    return losses, seconds
end

function run_batches!(losses::Vector{Float32}, s::Session, x::Array, labels::Vector{Int})
    for (i, r) in enumerate(batch_ranges(size(x, ndims(x)), s.meta["batch_size"]))
        # On the CPU convert returns the view itself (no copy); on a GPU it is the host-to-device copy.
        xb = convert(s.device, batch_view(x, r))
        J = @diff loss(s.model, xb, view(labels, r))
        losses[i] = value(J)
        for p in s.params
            apply!(p.opt, value(p), gradient(J, p))
        end
    end
    return losses
end

function gradient(J, p::Param)
    g = grad(J, p)
    # AutoGrad returns nothing for a Param that is not on the tape (AutoGrad 1.2.5 src/core.jl, `grad`).
    g === nothing &&
        error("no gradient for the parameter of size $(size(value(p))); it does not reach the loss")
    return g
end

"""
    predict(s, x) -> Matrix{Float32}

Logits (classes × N) on the CPU for inputs `x` in Julia layout (as in [`train_epoch`](@ref)),
evaluated in chunks of `PREDICT_CHUNK` examples.
"""
function predict(s::Session, x::AbstractArray)
    x = host_input(s, x)
    n = size(x, ndims(x))
    logits = Matrix{Float32}(undef, classes(s.model), n)
    GC.@preserve x begin
        for r in batch_ranges(n, PREDICT_CHUNK)
            logits[:, r] = Array(s.model(convert(s.device, batch_view(x, r))))
        end
    end
    return logits
end

"What the worker records about this engine: versions, threads, device, max-pool rule."
engine_report(s::Session) = merge(Dict{String,Any}(
    "framework" => "Knet",
    "framework_version" => string(pkgversion(Knet)),
    "julia_version" => string(VERSION),
    "device" => device_name(s.device),
    "optimizer" => s.meta["optimizer"],
    # Knet's pool backward on the CPU is NNlib's ∇maxpool (see model.jl); on a GPU, cuDNN's.
    "maxpool_gradient" => s.device <: Array ? "nnlib" : "cudnn",
), package_versions(), thread_report(s.meta), device_report(s.device))
