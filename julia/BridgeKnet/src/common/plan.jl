# julia/common/plan.jl: shared by BridgeFlux and BridgeKnet, edited here. Each package holds
# a verbatim copy in its src/common/ (written by `python -m tests.julia.common_copies`, checked by
# the static tests), so that each package is whole in its own folder.
# Reading a saved batch plan without Python, and sharing memory with Python without a copy.
# Included inside module BridgeFlux and module BridgeKnet (after `using NPZ, TOML`), with engine.jl.
#
# The including module defines the engine protocol, with the same names as the Python engines
# (bridge/contract.py), which `prepare(::Plan)`, `prepare(dir)` and `replay` below call:
#   prepare(meta::AbstractDict, weights::AbstractDict; device="cpu", threads=0) -> session
#   train_epoch(session, x, y) -> (losses::Vector{Float32}, seconds::Float64)
#   predict(session, x) -> Matrix{Float32}  (logits, classes × N, on the CPU)
#   engine_report(session) -> Dict{String,Any}
#   device_memory(device) -> Dict{String,Any}  (empty on the CPU; used by memory_report in engine.jl)
#
# A plan folder (written by `python -m bridge.compare --save-plan DIR`) holds plan.toml (the
# experiment), julia/weights/*.npy (initial weights already in Flux/Knet layout), the splits
# x_train.npy / y_train.npy / x_test.npy / y_test.npy (C-order NumPy arrays, inputs (N, F) or NCHW)
# and, per epoch e (0-based), order.eNNNN.npy: the 0-based Int32 permutation of the training split
# that is the epoch's training order. An epoch is the training split gathered in that order
# (Python's bridge.experiment.plan.gather; the golden fixtures hold Python's gather to compare with).

"A saved batch plan: its folder and the contents of its plan.toml."
struct Plan
    dir::String
    meta::Dict{String,Any}
end

load_plan(dir::AbstractString) = Plan(String(dir), TOML.parsefile(joinpath(dir, "plan.toml")))

"The plan with some of plan.toml's values replaced, e.g. another optimizer over the same batches."
with_meta(p::Plan, changes::AbstractDict) = Plan(p.dir, merge(p.meta, Dict{String,Any}(changes)))

# NPZ returns a C-order file in NumPy index order; the same bytes read column-major are the
# reversed axes: (N, F) -> F×N, NCHW -> WHCN.
julia_layout(a::AbstractArray) = permutedims(a, ndims(a):-1:1)
julia_layout(a::AbstractVector) = a

order_file(p::Plan, e::Integer) = joinpath(p.dir, string("order.e", lpad(e, 4, '0'), ".npy"))

"Epoch `e`'s permutation of the training split as 1-based indices (the file holds 0-based ones)."
epoch_order(p::Plan, e::Integer) = Int.(npzread(order_file(p, e))) .+ 1

"""
    gather_examples(x, y, order)

The examples `order` (1-based) of `x` (examples on the last axis) and `y`, in that order, as new
dense Arrays: each example stays contiguous, so the result is the column-major reading of Python's
C-order `np.take(x, order, axis=0)`.
"""
gather_examples(x::AbstractArray, y::AbstractVector, order::AbstractVector{<:Integer}) =
    (x[ntuple(_ -> Colon(), ndims(x) - 1)..., order], y[order])

"Inputs (Julia layout, Float32) and 0-based Int32 labels of epoch `e` (0-based), in training order."
epoch_data(p::Plan, e::Integer) = gather_examples(split_data(p, "train")..., epoch_order(p, e))

"The whole `train` or `test` split, unshuffled."
split_data(p::Plan, name::AbstractString) =
    (julia_layout(npzread(joinpath(p.dir, "x_$(name).npy"))), npzread(joinpath(p.dir, "y_$(name).npy")))

"Initial weights, name => array, already in Flux/Knet layout (converted by Python's bridge.experiment.layouts)."
initial_weights(p::Plan) = Dict{String,Array{Float32}}(
    name => Float32.(npzread(joinpath(p.dir, "julia", "weights", replace(name, "/" => ".") * ".npy")))
    for name in p.meta["parameters"])

"Number of consecutive `prefix_i/kernel` weights, i = 0, 1, ... (the plan's names; numpy_nn `_count`)."
function layer_count(w::AbstractDict, prefix::AbstractString)
    n = 0
    while haskey(w, "$(prefix)_$(n)/kernel")
        n += 1
    end
    return n
end

prepare(p::Plan; kwargs...) = prepare(p.meta, initial_weights(p); kwargs...)
prepare(dir::AbstractString; kwargs...) = prepare(load_plan(dir); kwargs...)

"1-based index ranges of the plan's batches over `n` examples; the partial last batch is kept."
batch_ranges(n::Integer, batch_size::Integer) = [i:min(i + batch_size - 1, n) for i in 1:batch_size:n]

"""
    batch_view(x, r)

Examples `r` of `x` (examples on the last axis) as a dense `Array` sharing `x`'s memory: BLAS and
NNlib see an ordinary Array, and nothing is copied. The caller keeps `x` alive (`GC.@preserve`).
"""
function batch_view(x::Array{T,N}, r::UnitRange{Int}) where {T,N}
    inner = Base.front(size(x))  # a tuple of known length: the result's type is inferred
    return unsafe_wrap(Array, pointer(x, (first(r) - 1) * prod(inner) + 1), (inner..., length(r)))
end

# Python hands over NumPy buffers as (address, Julia size): the C-order bytes read column-major.
# The arrays are ordinary, writable Arrays over memory Python owns and may have mapped read-only:
# nothing in the engines writes to its inputs (NNlib's and Knet's layers write only their outputs).
"Wrap a NumPy float32 buffer at address `ptr` as a Julia `Array{Float32}` of size `dims`, without a copy."
wrap_inputs(ptr::Integer, dims::Integer...) = unsafe_wrap(Array, Ptr{Float32}(UInt(ptr)), Int.(dims))

"Wrap a NumPy int32 label buffer of length `n` at address `ptr`, without a copy."
wrap_labels(ptr::Integer, n::Integer) = unsafe_wrap(Array, Ptr{Int32}(UInt(ptr)), Int(n))

"Debug path for the tests: the address of an array's first element (same as NumPy's when nothing was copied)."
data_pointer(x::Array) = UInt(pointer(x))

"""
    replay(plan; device="cpu")

Rerun a saved plan (a folder, or a `Plan`) natively: train every epoch on the saved batches from the
saved initial weights. Returns `(losses, epoch_seconds, test_accuracy)`: per-step training losses,
seconds per epoch, and the test-split accuracy after the last epoch.
"""
function replay(p::Plan; device::AbstractString="cpu")
    s = prepare(p; device=device)
    losses, seconds = Float32[], Float64[]
    xs, ys = split_data(p, "train")
    for e in 0:p.meta["epochs"]-1
        x, y = gather_examples(xs, ys, epoch_order(p, e))  # = epoch_data(p, e), the split read once
        l, t = train_epoch(s, x, y)
        append!(losses, l)
        push!(seconds, t)
    end
    xt, yt = split_data(p, "test")
    logits = predict(s, xt)
    accuracy = sum(vec(map(i -> i[1] - 1, argmax(logits; dims=1))) .== yt) / length(yt)
    return (losses=losses, epoch_seconds=seconds, test_accuracy=accuracy)
end

replay(dir::AbstractString; kwargs...) = replay(load_plan(dir); kwargs...)
