# Keras 3 Adam as an Optimisers.jl rule, and the rule for each plan optimizer.
#
# Optimisers v0.4.8 interface (src/interface.jl): `abstract type AbstractRule` (:8); `setup` calls
# `init(rule, x)` once per trainable array (:29-35, :48); `update!` calls
# `ℓ.state, x̄′ = apply!(ℓ.rule, ℓ.state, x, dx)` (:104) and then `subtract!(x, x̄′)`, i.e.
# `x .= x .- x̄′` in place (:111). So `apply!` returns (new state, the amount SUBTRACTED).
# Pattern followed: Adam in src/rules.jl:208-225 (its own formula differs from Keras, see below).

"""
    KerasAdam(eta, beta1, beta2, epsilon)

Adam exactly as Keras 3.15.1 (`keras/src/optimizers/adam.py`, `update_step`) and
`python/numpy_nn.py`'s `Adam` compute it, in the parameter's element type `T`:

    t    += 1
    b1p   = T(beta1)^t;  b2p = T(beta2)^t          (beta rounded to T before the power)
    alpha = T(eta) * sqrt(1 - b2p) / (1 - b1p)
    m    += (g - m) * T(1 - beta1)                  (1 - beta1 computed in Float64, then rounded)
    v    += (g*g - v) * T(1 - beta2)
    x    -= m * alpha / (sqrt(v) + T(epsilon))

Unlike `Optimisers.Adam` (rules.jl:216-225), epsilon is added to the square root of the
uncorrected `v`, and `1 - beta` is not computed from the rounded beta (0.1f0 vs 0.100000024f0):
with `Optimisers.Adam` the steps differ from Keras' by ~1e-5 relative.
"""
struct KerasAdam <: Optimisers.AbstractRule
    eta::Float64
    beta1::Float64
    beta2::Float64
    epsilon::Float64
end

# State (m, v, t): moments shaped like x, and the step count (Keras' `iterations`). Every leaf gets
# a gradient at every step here, so each leaf's t equals Keras' shared iteration count.
Optimisers.init(::KerasAdam, x::AbstractArray) = (zero(x), zero(x), 0)

# T(beta)^t as a Float64 power (Base's compensated power by squaring) of the T-rounded beta, rounded
# once to T: (all but) correctly rounded, like the float32 `pow` Keras/NumPy call. Not plain
# `T(beta)^t`: Base's Float32^Int returns x*x*x in Float32 for n == 3 (base/math.jl), which can be
# an ulp off, and 1 - beta2^t (0.003 at t = 3) amplifies that ~300x.
_power(::Type{T}, beta::Float64, t::Integer) where {T} = T(Float64(T(beta))^t)

function Optimisers.apply!(o::KerasAdam, state, x::AbstractArray{T}, dx) where {T}
    m, v, t = state
    t += 1
    b1p, b2p = _power(T, o.beta1, t), _power(T, o.beta2, t)
    alpha = T(o.eta) * sqrt(one(T) - b2p) / (one(T) - b1p)
    c1, c2, ϵ = T(1 - o.beta1), T(1 - o.beta2), T(o.epsilon)
    m .= m .+ (dx .- m) .* c1
    v .= v .+ (dx .* dx .- v) .* c2
    step = m .* alpha ./ (sqrt.(v) .+ ϵ)
    return (m, v, t), step
end

"""
    optimiser_rule(meta) -> Optimisers.AbstractRule

The rule for plan.toml's optimizer: `"sgd"` is `Optimisers.Descent(lr)`, which computes
`x .-= dx .* T(lr)` (rules.jl@v0.4.8:20-32: `η = ofeltype(x, eta)`, `@lazy dx * η`, fused into
`x .= x .- x̄′`), i.e. Keras SGD `var -= g * lr` with lr rounded to T; `"adam"` is `KerasAdam`.
"""
function optimiser_rule(meta::AbstractDict)
    name, lr = meta["optimizer"], Float64(meta["learning_rate"])
    name == "sgd" && return Descent(lr)
    name == "adam" && return KerasAdam(lr, meta["beta_1"], meta["beta_2"], meta["epsilon"])
    throw(ArgumentError("unknown optimizer $(repr(name)); expected \"sgd\" or \"adam\""))
end
