# Keras 3 optimizers, written out because Knet's differ: Knet's Adam (src/train20/update.jl@v1.4.10,
# lines 559-570) adds ε to sqrt of the bias-corrected second moment and computes 1-β and β^t in
# Float64. Keras adds ε to sqrt of the UNcorrected moment and folds the correction into the step
# size. These mirror `SGD` and `Adam` of python/common/numpy_nn.py, in the parameter's eltype, in Knet's
# idiom: one optimizer object per parameter, kept in the `Param`'s `opt` field.

"Keras SGD with momentum 0: `w -= g * lr`, lr rounded to the parameter's type."
struct KerasSGD
    learning_rate::Float64
end

"""
    apply!(opt, w, g) -> w

One optimizer step on the array `w` (a `Param`'s value, updated in place) with gradient `g`.
"""
function apply!(o::KerasSGD, w::AbstractArray{T}, g) where {T}
    w .-= g .* T(o.learning_rate)
    return w
end

"""
    KerasAdam(w; learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)

Keras 3 Adam (amsgrad off) for one parameter `w`: first and second moments `m`, `v` (zeros like `w`,
on its device) and the step count `t`; the constants and their rounding: [`keras_adam_constants`](@ref).
"""
mutable struct KerasAdam{A<:AbstractArray}
    learning_rate::Float64
    beta_1::Float64
    beta_2::Float64
    epsilon::Float64
    m::A
    v::A
    t::Int
end

KerasAdam(w::AbstractArray; learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7) =
    KerasAdam(Float64(learning_rate), Float64(beta_1), Float64(beta_2), Float64(epsilon), zero(w), zero(w), 0)

function apply!(o::KerasAdam, w::AbstractArray{T}, g) where {T}
    o.t += 1
    alpha, c1, c2, ϵ = keras_adam_constants(T, o.learning_rate, o.beta_1, o.beta_2, o.epsilon, o.t)
    m, v = o.m, o.v
    @. m += (g - m) * c1
    @. v += (g * g - v) * c2
    @. w -= (m * alpha) / (sqrt(v) + ϵ)
    return w
end

"""
    optimizer_rule(meta, w)

The optimizer plan.toml names (`optimizer`, `learning_rate`, `beta_1`, `beta_2`, `epsilon`), with
fresh state for the parameter array `w` (BridgeFlux's `optimizer_rule(meta)` is the same rule as an
Optimisers.jl rule, whose state Flux keeps apart).
"""
function optimizer_rule(meta::AbstractDict, w::AbstractArray)
    name = meta["optimizer"]
    name == "sgd" && return KerasSGD(meta["learning_rate"])
    name == "adam" && return KerasAdam(w; learning_rate=meta["learning_rate"], beta_1=meta["beta_1"],
                                       beta_2=meta["beta_2"], epsilon=meta["epsilon"])
    throw(unknown("optimizer", name, ("sgd", "adam")))
end
