# The engine protocol on the Julia side: prepare, train_epoch, predict (+ engine_report).

"""
A prepared training run: the Flux model and its optimiser state, on the CPU (`dev === nothing`)
or on a GPU (`dev` is the MLDataDevices device that moves arrays there).
"""
mutable struct Session{M,S,D}
    model::M
    opt_state::S
    batch_size::Int
    classes::Int
    dev::D
    optimizer::String
end

to_device(::Nothing, a) = a
to_device(dev, a) = dev(a)
sync_device(::Nothing) = nothing
sync_device(_) = CUDA.synchronize()

# Inputs from Python arrive as Arrays over NumPy memory (`wrap_inputs`); anything else (a
# PyArray, a view) is copied once into a dense Array, before any clock starts.
dense(::Type{T}, a::Array{T}) where {T} = a
dense(::Type{T}, a::AbstractArray) where {T} = Array{T}(a)

"The MLDataDevices device for `name`, or `nothing` for the CPU."
function select_device(name::AbstractString)
    name == "cpu" && return nothing
    name == "cuda" || throw(ArgumentError("device must be \"cpu\" or \"cuda\", got $(repr(name))"))
    CUDA.functional() || error("device=\"cuda\" was requested, but CUDA.functional() is false: " *
                               "no usable NVIDIA GPU and driver in this Julia process")
    # gpu_device(device_id=nothing, eltype=missing; force=false) (MLDataDevices public.jl@v1.17.10:243);
    # force=true errors instead of silently falling back to the CPU.
    return gpu_device(; force=true)
end

"""
    prepare(plan_dir; device="cpu", threads=0) -> Session

Read the plan in `plan_dir`, build the model from its initial weights, move it to `device`
(`"cpu"` or `"cuda"`) and set up the optimiser. `threads > 0` sets the BLAS thread count.
"""
function prepare(plan_dir::AbstractString; device::AbstractString="cpu", threads::Integer=0)
    threads > 0 && BLAS.set_num_threads(threads)
    plan = load_plan(plan_dir)
    meta = plan.meta
    dev = select_device(device)
    model = to_device(dev, build_model(initial_weights(plan), meta))
    rule = optimiser_rule(meta)
    # Flux.setup after the move, so the optimiser state lives on the same device (train.jl@v0.16.11:142).
    return Session(model, Flux.setup(rule, model), Int(meta["batch_size"]), Int(meta["classes"]),
                   dev, string(rule))
end

"""
    train_epoch(s, x, y) -> (losses::Vector{Float32}, seconds::Float64)

One pass over an epoch in plan order: `x` is the whole epoch in Julia layout (`F×N` or WHCN,
Float32), `y` its 0-based labels. Batches are views of `x` (no copy on the CPU). Each loss is the
batch's loss before its update (what `withgradient` returns). `seconds` covers the batch loop only,
with the GPU synchronised at both ends.
"""
function train_epoch(s::Session, x::AbstractArray, y::AbstractVector)
    xa, ya = dense(Float32, x), dense(Int32, y)
    n = size(xa, ndims(xa))
    length(ya) == n || throw(DimensionMismatch("$(length(ya)) labels for $n examples"))
    losses = Float32[]
    seconds = GC.@preserve xa ya run_batches!(losses, s, xa, ya)
    return losses, seconds
end

function run_batches!(losses::Vector{Float32}, s::Session, x::Array, y::Array)
    sync_device(s.dev)
    start = time_ns()
    for r in batch_ranges(size(x, ndims(x)), s.batch_size)
        xb = to_device(s.dev, batch_view(x, r))
        # Keras' sparse labels as a one-hot K×N matrix (OneHotArrays onehot.jl@v0.2.10:103,113).
        yy = Flux.onehotbatch(to_device(s.dev, batch_view(y, r)), 0:s.classes-1)
        # Mean over the batch of -log softmax at the label (losses/functions.jl@v0.16.11:270-273),
        # = Keras SparseCategoricalCrossentropy(from_logits=True), "sum_over_batch_size".
        loss, grads = Flux.withgradient(m -> Flux.logitcrossentropy(m(xb), yy), s.model)
        Flux.update!(s.opt_state, s.model, grads[1])
        push!(losses, loss)
    end
    sync_device(s.dev)
    return (time_ns() - start) / 1e9
end

"""
    predict(s, x; chunk=1024) -> Matrix{Float32}

Logits `K×N` on the CPU for inputs `x` in Julia layout, evaluated in chunks of `chunk` examples.
"""
function predict(s::Session, x::AbstractArray; chunk::Integer=1024)
    xa = dense(Float32, x)
    n = size(xa, ndims(xa))
    out = Matrix{Float32}(undef, s.classes, n)
    GC.@preserve xa for r in batch_ranges(n, chunk)
        out[:, r] = Array(s.model(to_device(s.dev, batch_view(xa, r))))
    end
    return out
end

"What the worker records about this engine: versions, compute threads, device, optimiser."
function engine_report(s::Session)
    return Dict{String,Any}(
        "framework" => "Flux",
        "framework_version" => string(pkgversion(Flux)),
        "julia_version" => string(VERSION),
        "threads" => BLAS.get_num_threads(),
        "julia_threads" => Threads.nthreads(),
        "device" => s.dev === nothing ? "cpu" : CUDA.name(CUDA.device()),
        "optimizer" => s.optimizer,
    )
end
