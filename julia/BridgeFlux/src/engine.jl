# The engine protocol on the Julia side (bridge/contract.py): prepare, train_epoch, predict,
# engine_report. BridgeKnet's engine.jl defines the same functions and helpers under the same names.

"""
A prepared training run: the Flux model and its optimiser state, on the CPU (`device === nothing`)
or on a GPU (`device` is the MLDataDevices device that moves arrays there).
"""
mutable struct Session{M,S,D}
    model::M
    opt_state::S
    meta::Dict{String,Any}
    device::D
    optimizer::String
end

to_device(::Nothing, a) = a
to_device(device, a) = device(a)

# The CUDA methods of these live in ext/BridgeFluxCUDAExt.jl, which Julia loads once CUDA and cuDNN
# are loaded; a CPU run never loads them.
sync_device(::Nothing) = nothing
device_name(::Nothing) = "cpu"
device_report(::Nothing) = Dict{String,Any}()
device_memory(::Nothing) = Dict{String,Any}()
conv_algorithms(::Nothing) = ()

"The MLDataDevices device for `name`, or `nothing` for the CPU."
function select_device(name::AbstractString)
    check_device_name(name) == "cpu" && return nothing
    Base.get_extension(@__MODULE__, :BridgeFluxCUDAExt) === nothing &&
        error("device = \"cuda\" needs CUDA.jl and cuDNN loaded in this Julia (`using CUDA, cuDNN`), which " *
              "loads BridgeFlux's GPU extension; bridge does it when the flux set-up has CUDA " *
              "(python -m bridge.julia setup --cuda)")
    # gpu_device(device_id=nothing, eltype=missing; force=false) (MLDataDevices public.jl@v1.17.10:243);
    # force=true errors instead of silently falling back to the CPU when CUDA is not functional.
    return gpu_device(; force=true)
end

"""
    prepare(meta, weights; device="cpu", threads=0) -> Session

Build the model of plan.toml's `meta` from its initial `weights` (name => array in Flux layout),
move it to `device` (`"cpu"` or `"cuda"`) and set up the optimiser. `threads > 0` applies the thread
policy of [`set_compute_threads!`](@ref). `prepare(plan_dir)` reads both from a plan folder.
"""
function prepare(meta::AbstractDict, weights::AbstractDict; device::AbstractString="cpu", threads::Integer=0)
    set_compute_threads!(threads, meta)
    dev = select_device(device)
    model = to_device(dev, build_model(weights, meta))
    rule = optimizer_rule(meta)
    # Flux.setup after the move, so the optimiser state lives on the same device (train.jl@v0.16.11:142).
    return Session(model, Flux.setup(rule, model), Dict{String,Any}(meta), dev, string(rule))
end

"""
    train_epoch(s, x, y) -> (losses::Vector{Float32}, seconds::Float64)

One pass over an epoch in plan order: `x` is the whole epoch in Julia layout (`F×N` or WHCN,
Float32), `y` its 0-based labels. Batches are views of `x` (no copy on the CPU). Each loss is the
batch's loss before its update (what `withgradient` returns). `seconds` covers the batch loop, with
the GPU synchronised at both ends, and in the first epoch the compilation of the loop.
"""
function train_epoch(s::Session, x::AbstractArray, y::AbstractVector)
    xa, ya = host_array(Float32, x), host_array(Int32, y)
    n = size(xa, ndims(xa))
    length(ya) == n || throw(DimensionMismatch("$(length(ya)) labels for $n examples"))
    losses = Float32[]
    seconds = GC.@preserve xa ya timed_pass(s.device, run_batches!, losses, s, xa, ya)
    return losses, seconds
end

function run_batches!(losses::Vector{Float32}, s::Session, x::Array, y::Array)
    for r in batch_ranges(size(x, ndims(x)), s.meta["batch_size"])
        xb = to_device(s.device, batch_view(x, r))
        # Keras' sparse labels as a one-hot K×N matrix (OneHotArrays onehot.jl@v0.2.10:103,113).
        yy = Flux.onehotbatch(to_device(s.device, batch_view(y, r)), 0:s.meta["classes"]-1)
        # Mean over the batch of -log softmax at the label (losses/functions.jl@v0.16.11:270-273),
        # = Keras SparseCategoricalCrossentropy(from_logits=True), "sum_over_batch_size".
        loss, grads = Flux.withgradient(m -> Flux.logitcrossentropy(m(xb), yy), s.model)
        Flux.update!(s.opt_state, s.model, grads[1])
        push!(losses, loss)
    end
    return losses
end

"""
    predict(s, x) -> Matrix{Float32}

Logits `K×N` on the CPU for inputs `x` in Julia layout, evaluated in chunks of `PREDICT_CHUNK` examples.
"""
function predict(s::Session, x::AbstractArray)
    xa = host_array(Float32, x)
    n = size(xa, ndims(xa))
    out = Matrix{Float32}(undef, s.meta["classes"], n)
    GC.@preserve xa for r in batch_ranges(n, PREDICT_CHUNK)
        out[:, r] = Array(s.model(to_device(s.device, batch_view(xa, r))))
    end
    return out
end

"What the worker records about this engine: versions, threads, device, optimiser, max-pool rule."
function engine_report(s::Session)
    return merge(Dict{String,Any}(
        "framework" => "Flux",
        "framework_version" => string(pkgversion(Flux)),
        "julia_version" => string(VERSION),
        "device" => device_name(s.device),
        "optimizer" => s.meta["optimizer"],
        "optimizer_rule" => s.optimizer,
        # Flux's MaxPool backward on the CPU is NNlib's ∇maxpool (see model.jl); on a GPU, cuDNN's.
        "maxpool_gradient" => s.device === nothing ? "nnlib" : "cudnn",
    ), package_versions(), thread_report(s.meta), device_report(s.device))
end
