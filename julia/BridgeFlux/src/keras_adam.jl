# Keras 3 Adam as an Optimisers.jl rule, and the rule for each plan optimizer.
#
# Optimisers v0.4.8 interface (src/interface.jl): `abstract type AbstractRule` (:8); `setup` calls
# `init(rule, x)` once per trainable array (:29-35, :48); `update!` calls
# `ℓ.state, x̄′ = apply!(ℓ.rule, ℓ.state, x, dx)` (:104) and then `subtract!(x, x̄′)`, i.e.
# `x .= x .- x̄′` in place (:111). So `apply!` returns (new state, the amount SUBTRACTED).
# Pattern followed: `Adam` in src/rules.jl@v0.4.8 (its own formula differs from Keras, see below).

"""
    KerasAdam(learning_rate, beta_1, beta_2, epsilon)

Adam exactly as Keras 3.15.1 (`keras/src/optimizers/adam.py`, `update_step`) and
`python/common/numpy_nn.py`'s `Adam` compute it, in the parameter's element type (the constants and their
rounding: [`keras_adam_constants`](@ref)). Unlike `Optimisers.Adam` (its `apply!`), epsilon is
added to the square root of the uncorrected second moment: with `Optimisers.Adam` the steps differ
from Keras' by ~1e-5 relative.
"""
struct KerasAdam <: Optimisers.AbstractRule
    learning_rate::Float64
    beta_1::Float64
    beta_2::Float64
    epsilon::Float64
end

# State (m, v, t): moments shaped like x, and the step count (Keras' `iterations`). Every leaf gets
# a gradient at every step here, so each leaf's t equals Keras' shared iteration count.
Optimisers.init(::KerasAdam, x::AbstractArray) = (zero(x), zero(x), 0)

function Optimisers.apply!(o::KerasAdam, state, x::AbstractArray{T}, dx) where {T}
    m, v, t = state
    t += 1
    alpha, c1, c2, ϵ = keras_adam_constants(T, o.learning_rate, o.beta_1, o.beta_2, o.epsilon, t)
    m .= m .+ (dx .- m) .* c1
    v .= v .+ (dx .* dx .- v) .* c2
    step = m .* alpha ./ (sqrt.(v) .+ ϵ)
    return (m, v, t), step
end

"""
    optimizer_rule(meta) -> Optimisers.AbstractRule

The rule for plan.toml's optimizer: `"sgd"` is `Optimisers.Descent(lr)`, which computes
`x .-= dx .* T(lr)` (rules.jl@v0.4.8:20-32: `η = ofeltype(x, eta)`, `@lazy dx * η`, fused into
`x .= x .- x̄′`), i.e. Keras SGD `var -= g * lr` with lr rounded to T; `"adam"` is `KerasAdam`.
"""
function optimizer_rule(meta::AbstractDict)
    name, lr = meta["optimizer"], Float64(meta["learning_rate"])
    name == "sgd" && return Descent(lr)
    name == "adam" && return KerasAdam(lr, meta["beta_1"], meta["beta_2"], meta["epsilon"])
    throw(unknown("optimizer", name, ("sgd", "adam")))
end
