# julia/common/engine.jl: shared by BridgeFlux and BridgeKnet, edited here. Each package holds
# a verbatim copy in its src/common/ (written by `python -m tests.julia.common_copies`, checked by
# the static tests), so that each package is whole in its own folder.
# What BridgeFlux and BridgeKnet do the same way, under the same names: input arrays, thread policy,
# Keras' optimizer constants, errors. Included inside both modules after plan.jl; needs `BLAS`
# (LinearAlgebra) there.

"Examples per forward pass in `predict`, to bound memory on large test splits."
const PREDICT_CHUNK = 1024

# Inputs from Python arrive as Arrays over NumPy memory (`wrap_inputs`); anything else (a PyArray, a
# view, a file read by NPZ) is copied once into a dense Array, before any clock starts.
host_array(::Type{T}, a::Array{T}) where {T} = a
host_array(::Type{T}, a::AbstractArray) where {T} = Array{T}(a)

"""
    timed_pass(device, run!, args...) -> seconds

Run `run!(args...)` (one epoch's batch loop) and return its wall-clock seconds, with `device`
synchronised (the engine's `sync_device`) at both ends. `run!` is entered through a dynamic call
(`Base.invokelatest`, a function barrier): whatever of the loop and all it calls, the automatic
differentiation included, is not already compiled compiles after the clock starts. What is already
compiled is what the package image holds from its precompile workload (common/precompile.jl: which
models that covers is said there), so the first epoch's compilation differs between models; how much
of the pass Julia spent compiling (`Base.cumulative_compile_time_ns`, as `@time` reports it) is kept
for [`last_pass_compile_seconds`](@ref), and every report carries it.
"""
function timed_pass(device, run!, args...)
    sync_device(device)
    Base.cumulative_compile_timing(true)
    compiling = first(Base.cumulative_compile_time_ns())
    start = time_ns()
    try
        Base.invokelatest(run!, args...)
        sync_device(device)
        return (time_ns() - start) / 1e9
    finally
        LAST_PASS_COMPILE_NS[] = first(Base.cumulative_compile_time_ns()) - compiling
        Base.cumulative_compile_timing(false)
    end
end

const LAST_PASS_COMPILE_NS = Ref{UInt64}(0)

"Seconds the last `train_epoch` spent compiling, inside its clock (0 when everything was compiled)."
last_pass_compile_seconds() = LAST_PASS_COMPILE_NS[] / 1e9

const DEVICES = ("cpu", "cuda")

function check_device_name(name::AbstractString)
    name in DEVICES ||
        throw(ArgumentError("device = $(repr(name)) is not known; accepted: \"cpu\", \"cuda\""))
    return name
end

unknown(what::AbstractString, value, accepted) = ArgumentError(
    "plan.toml names $what = $(repr(value)); accepted: $(join(map(repr, accepted), ", "))")

"""
    set_compute_threads!(threads, meta)

bridge gives every engine `threads` compute threads in total (`threads > 0`; 0 keeps the defaults).
Julia itself runs with `threads` threads (juliacall's `PYTHON_JULIACALL_THREADS`). An MLP is BLAS
GEMMs, so BLAS gets `threads`. In a CNN, NNlib's CPU convolution splits the batch over Julia tasks that
each call BLAS (NNlib src/impl/conv_im2col.jl: v0.9.36 `batch_task` under `Threads.@spawn`, v0.8.21
`@threads for batch_idx`), which with BLAS at `threads` would run up to `threads`² threads; so with
more than one Julia thread BLAS gets 1, as NNlib itself does where it spawns (`batched_gemm!`, its
small-batch convolution path). The dense layers of a CNN then run on one BLAS thread.
"""
function set_compute_threads!(threads::Integer, meta::AbstractDict)
    threads > 0 || return nothing
    BLAS.set_num_threads(meta["model"] == "cnn" && Threads.nthreads() > 1 ? 1 : threads)
    return nothing
end

"""
    memory_report(session) -> Dict{String,Any}

Julia's own memory once training ended: the process's peak resident bytes as Julia reads them
(`Sys.maxrss()`, the worker's and the Python heap's included) and the bytes the GC holds live
(`Base.gc_live_bytes()`), and on a GPU the engine's `device_memory` (CUDA.jl's memory pool peak and the
device total). The Python side (python/common/julia_session.py) records them beside the worker's own
measurements (bridge/running/memory.py).
"""
memory_report(s) = merge(Dict{String,Any}(
    "julia_maxrss_bytes" => Int(Sys.maxrss()),
    "julia_gc_live_bytes" => Int(Base.gc_live_bytes())), device_memory(s.device))

"""
    final_report(session) -> Dict{String,Any}

What only the finished run can tell: on a GPU, the convolution algorithms cuDNN chose for the shapes the
run met, as the engine's `conv_algorithms` reads them from its framework's algorithm caches (nothing on the
CPU, or for a model without convolutions). The Python side (python/common/julia_session.py) adds them to
the engine's report.
"""
final_report(s) = conv_algorithm_report(conv_algorithms(s.device))

"""
    conv_algorithm_report(chosen) -> Dict{String,Any}

`chosen`: `(pass, algorithm, determinism)` for each cached choice, cuDNN's enum names as strings (`pass`
is `"forward"`, `"backward data"` or `"backward filter"`). `cudnn_conv_algorithms` names each pass's
algorithms with how many shapes chose each; `cudnn_conv_deterministic` is whether every one is
`CUDNN_DETERMINISTIC`.
"""
function conv_algorithm_report(chosen)
    isempty(chosen) && return Dict{String,Any}()
    counts = Dict{Tuple{String,String},Int}()
    for (pass, algorithm, _) in chosen
        counts[(pass, algorithm)] = get(counts, (pass, algorithm), 0) + 1
    end
    text = join(("$pass $algorithm ($n $(n == 1 ? "shape" : "shapes"))"
                 for ((pass, algorithm), n) in sort!(collect(counts))), "; ")
    return Dict{String,Any}("cudnn_conv_algorithms" => text,
                            "cudnn_conv_deterministic" => all(c[3] == "CUDNN_DETERMINISTIC" for c in chosen))
end

# The packages whose code an engine run executes: the report key, the name and the UUID (their
# Project.toml files), so that every report says which versions the environment resolved: the CPU
# max-pool gradient rule, for one, is NNlib's, whatever Flux's or Knet's version says. CUDA.jl's and
# cuDNN.jl's keys say "_jl": `cudnn_version` is the cuDNN library's, as every engine reports it.
const REPORTED_PACKAGES = (
    ("flux_version", "Flux", "587475ba-b771-5e3f-ad9e-33799f191a9c"),
    ("nnlib_version", "NNlib", "872c559c-99b0-510c-b3b7-b6c96a88d5cd"),
    ("zygote_version", "Zygote", "e88e6eb3-aa80-5325-afca-941959d7151f"),
    ("optimisers_version", "Optimisers", "3bd65402-5787-11e9-1adc-39752487f4e2"),
    ("knet_version", "Knet", "1902f260-5fb4-5aff-8c31-6271790ab950"),
    ("autograd_version", "AutoGrad", "6710c13c-97f1-543f-91c5-74e8f7d95b35"),
    ("cuda_jl_version", "CUDA", "052768ef-5323-5732-b1bb-66c8b64840ba"),
    ("cudnn_jl_version", "cuDNN", "02a925ec-e4fe-4b08-9a7e-0d78e3d38ccd"),
)

"""
    package_versions() -> Dict{String,Any}

The version of each of `REPORTED_PACKAGES` loaded in this Julia session, as its environment resolved
it, under its report key (`nnlib_version`, ...); a package not loaded is left out.
"""
function package_versions()
    versions = Dict{String,Any}()
    for (key, name, uuid) in REPORTED_PACKAGES
        m = get(Base.loaded_modules, Base.PkgId(Base.UUID(uuid), name), nothing)
        m === nothing || (versions[key] = string(pkgversion(m)))
    end
    return versions
end

"The thread counts as the runtimes report them, and the total the policy above gives the model."
thread_report(meta::AbstractDict) = Dict{String,Any}(
    "threads" => meta["model"] == "cnn" && Threads.nthreads() > 1 ? Threads.nthreads() : BLAS.get_num_threads(),
    "blas_threads" => BLAS.get_num_threads(),
    "julia_threads" => Threads.nthreads(),
    "thread_policy" => "Julia threads = N; BLAS threads = N for an MLP, 1 for a CNN when Julia has more than one " *
                       "(NNlib's convolutions run one task per batch chunk)")

"""
    keras_adam_constants(T, learning_rate, beta_1, beta_2, epsilon, t) -> (alpha, c1, c2, ϵ)

Keras 3 Adam's scalars at step `t` in the parameter's element type `T`, rounded as Keras (TensorFlow
backend) and python/common/numpy_nn.py round them: `beta` is rounded to `T` before the power; the power is
taken in Float64 and rounded once (Base's Float32^Int returns x*x*x for t = 3, an ulp off the `powf`
Keras calls, and 1 - beta_2^t amplifies that ~300x); `1 - beta` is computed in Float64, then rounded
(0.1f0, not 1 - 0.9f0 = 0.100000024f0). Then `m += (g - m) * c1`, `v += (g^2 - v) * c2` and the
parameter moves by `m * alpha / (sqrt(v) + ϵ)`: ϵ on the uncorrected `v`, unlike the paper's form.
"""
function keras_adam_constants(::Type{T}, learning_rate, beta_1, beta_2, epsilon, t::Integer) where {T}
    b1_power, b2_power = T(Float64(T(beta_1))^t), T(Float64(T(beta_2))^t)
    alpha = T(learning_rate) * sqrt(one(T) - b2_power) / (one(T) - b1_power)
    return alpha, T(1 - beta_1), T(1 - beta_2), T(epsilon)
end

"A plan's metadata and random initial weights for a tiny `model` (the names and layouts of a real plan)."
function tiny_plan(model::AbstractString, optimizer::AbstractString)
    meta = Dict{String,Any}("model" => model, "optimizer" => optimizer, "learning_rate" => 0.01,
                            "beta_1" => 0.9, "beta_2" => 0.999, "epsilon" => 1e-7, "batch_size" => 2, "classes" => 3)
    cnn = model == "cnn"
    shapes = cnn ? ["conv_0" => (3, 3, 1, 2), "conv_1" => (3, 3, 2, 2), "dense_0" => (4, 2), "dense_1" => (3, 4)] :
                   ["dense_0" => (4, 4), "dense_1" => (3, 4)]
    weights = Dict{String,Array{Float32}}()
    for (name, shape) in shapes
        weights["$name/kernel"] = randn(Float32, shape) ./ 4
        weights["$name/bias"] = zeros(Float32, startswith(name, "conv") ? shape[4] : shape[1])
    end
    x = cnn ? randn(Float32, 10, 10, 1, 3) : randn(Float32, 4, 3)  # 3 examples: a partial last batch
    return meta, weights, x, Int32[0, 1, 2]
end
