# Keras 3 optimizers, written out because Knet's differ: Knet's Adam (src/train20/update.jl@v1.4.10,
# lines 559-570) adds ε to sqrt of the bias-corrected second moment and computes 1-β and β^t in
# Float64. Keras adds ε to sqrt of the UNcorrected moment and folds the correction into the step
# size. These mirror `SGD` and `Adam` of python/numpy_nn.py line by line, in the parameter's eltype.

"Keras (TF backend) casts a Python float to the variable dtype through float32 (`tf.cast`)."
tf_cast(::Type{T}, x::Real) where {T} = T(Float32(x))

"Keras SGD with momentum 0: `w -= g * lr`."
struct KerasSGD
    learning_rate::Float64
end

"""
    apply!(rule, w, g) -> w

One optimizer step on the array `w` (a `Param`'s value, updated in place) with gradient `g`.
"""
function apply!(o::KerasSGD, w::AbstractArray{T}, g) where {T}
    w .-= g .* tf_cast(T, o.learning_rate)
    return w
end

"""
    KerasAdam(w; learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)

Keras 3 Adam (amsgrad off) state for one parameter `w`: first and second moments `m`, `v` (zeros
like `w`, on its device) and the step count `t`.
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
    t = T(o.t)  # Keras casts the step count to the variable dtype and takes a floating power
    b1_power = tf_cast(T, o.beta_1)^t
    b2_power = tf_cast(T, o.beta_2)^t
    alpha = tf_cast(T, o.learning_rate) * sqrt(one(T) - b2_power) / (one(T) - b1_power)
    # 1 - β is evaluated in Float64, then rounded, as Keras does on Python floats: 1 - 0.999 rounds
    # to 0.0010000000475f0, whereas 1 - 0.999f0 = 0.00099998713f0.
    c1, c2, epsilon = T(1 - o.beta_1), T(1 - o.beta_2), T(o.epsilon)
    m, v = o.m, o.v
    @. m += (g - m) * c1
    @. v += (g * g - v) * c2
    @. w -= (m * alpha) / (sqrt(v) + epsilon)
    return w
end

"""
    keras_optimizer(meta, w)

The optimizer plan.toml names (`optimizer`, `learning_rate`, `beta_1`, `beta_2`, `epsilon`), with
fresh state for the parameter array `w`.
"""
function keras_optimizer(meta::AbstractDict, w::AbstractArray)
    name = meta["optimizer"]
    name == "sgd" && return KerasSGD(meta["learning_rate"])
    name == "adam" && return KerasAdam(w; learning_rate=meta["learning_rate"], beta_1=meta["beta_1"],
                                       beta_2=meta["beta_2"], epsilon=meta["epsilon"])
    throw(ArgumentError("plan.toml names optimizer = $(repr(name)); BridgeKnet knows \"sgd\" and \"adam\""))
end
