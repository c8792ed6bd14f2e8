# The engine protocol (python/__init__.py), Julia side: prepare, train_epoch, predict.

"""
    Session

One engine run: the plan, the model (its `Param`s on the chosen device, each holding its Keras
optimizer in `p.opt`, the slot Knet itself uses for per-parameter optimizers), the array type batches
are moved to, the device name and the batch size (examples).
"""
mutable struct Session
    plan::Plan
    model::Model
    params::Vector{Param}
    atype::Type
    device::String
    batch_size::Int
end

"""
    prepare(plan_dir; device="cpu", threads=0) -> Session

Build the model from the plan's initial weights and its optimizer. `device` is "cpu" or "cuda";
`threads > 0` sets the BLAS threads (0 keeps the default).
"""
function prepare(plan_dir::AbstractString; device::AbstractString="cpu", threads::Integer=0)
    plan = load_plan(plan_dir)
    threads > 0 && BLAS.set_num_threads(threads)
    atype = array_type(device)
    model = Model(initial_weights(plan), atype)
    ps = parameters(model)
    for p in ps
        p.opt = keras_optimizer(plan.meta, value(p))
    end
    return Session(plan, model, ps, atype, String(device), plan.meta["batch_size"])
end

function array_type(device::AbstractString)
    device == "cpu" && return Array{Float32}
    device == "cuda" ||
        throw(ArgumentError("device = $(repr(device)); BridgeKnet accepts \"cpu\" or \"cuda\""))
    CUDA.functional(true) || error("device = \"cuda\", but CUDA.functional() is false (reason above); " *
                                   "fix the CUDA setup or use device = \"cpu\"")
    # Knet's __init__ switches its default array type to CuArray{Float32} when CUDA is functional.
    return Knet.atype()
end

"Wait for the GPU, so that the clock reads finished work."
sync(s::Session) = (s.device == "cuda" && CUDA.synchronize(); nothing)

# Inputs must be a dense Float32 Array (batch_view wraps its memory); any other array is copied,
# before the clock starts.
function host_input(s::Session, x::AbstractArray)
    want = isempty(s.model.conv_w) ? 2 : 4
    layout = want == 2 ? "F × N" : "W × H × C × N"
    ndims(x) == want ||
        throw(ArgumentError("inputs have size $(size(x)); this model wants $layout (Julia layout)"))
    return x isa Array{Float32} ? x : Array{Float32}(x)
end

"""
    train_epoch(s, x, y) -> (losses::Vector{Float32}, seconds::Float64)

One pass over the epoch in the plan's batch order: `x` the whole epoch in Julia layout (F × N or
W × H × C × N, Float32), `y` its 0-based labels. Returns each batch's loss before its update and the
wall-clock seconds of the pass (GPU synchronised at both ends).
"""
function train_epoch(s::Session, x::AbstractArray, y::AbstractVector)
    x = host_input(s, x)
    n = size(x, ndims(x))
    length(y) == n || throw(ArgumentError("$(length(y)) labels for $n examples"))
    labels = knet_labels(y, classes(s.model))
    ranges = batch_ranges(n, s.batch_size)
    losses = Vector{Float32}(undef, length(ranges))
    seconds = 0.0
    GC.@preserve x begin
        sync(s)
        start = time_ns()
        for (i, r) in enumerate(ranges)
            # On the CPU convert returns the view itself (no copy); on a GPU it is the host-to-device copy.
            xb = convert(s.atype, batch_view(x, r))
            J = @diff loss(s.model, xb, view(labels, r))
            losses[i] = value(J)
            for p in s.params
                apply!(p.opt, value(p), gradient(J, p))
            end
        end
        sync(s)
        seconds = (time_ns() - start) / 1e9
    end
    return losses, seconds
end

function gradient(J, p::Param)
    g = grad(J, p)
    # AutoGrad returns nothing for a Param that is not on the tape (AutoGrad src/core.jl:215-216).
    g === nothing &&
        error("no gradient for the parameter of size $(size(value(p))); it does not reach the loss")
    return g
end

"Examples per forward pass in `predict`, to bound memory on large test splits."
const PREDICT_BATCH = 1024

"""
    predict(s, x) -> Matrix{Float32}

Logits (classes × N) on the CPU for inputs `x` in Julia layout (as in [`train_epoch`](@ref)).
"""
function predict(s::Session, x::AbstractArray)
    x = host_input(s, x)
    n = size(x, ndims(x))
    logits = Matrix{Float32}(undef, classes(s.model), n)
    GC.@preserve x begin
        for r in batch_ranges(n, PREDICT_BATCH)
            logits[:, r] = Array(s.model(convert(s.atype, batch_view(x, r))))
        end
    end
    return logits
end

"What the worker records about this engine: framework and Julia versions, threads, device."
engine_report(s::Session) = Dict{String,Any}(
    "framework" => "Knet",
    "framework_version" => string(pkgversion(Knet)),
    "julia_version" => string(VERSION),
    "threads" => BLAS.get_num_threads(),
    "julia_threads" => Threads.nthreads(),
    "device" => s.device,
    "array_type" => string(s.atype))
