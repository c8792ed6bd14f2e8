"""The experiment in plain JAX: a pure forward function over a dict of parameters, optax's integer-label
softmax cross-entropy, one jax.jit-compiled train step per batch (NHWC images, as Keras).

Adam is Keras' form (epsilon on the square root of the uncorrected second moment), as every bridge
engine trains, written inside the step with tree_map. Threads: XLA's defaults.
usage: python bench/standalone/jax_jit.py PLAN_DIR OUT.json
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from plan_files import Plan, args, save


def forward(params, x, conv, dense):
    for name in conv:
        x = jax.lax.conv_general_dilated(x, params[name + "/kernel"], (1, 1), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        x = jax.nn.relu(x + params[name + "/bias"])
        x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    x = x.reshape(x.shape[0], -1)
    for i, name in enumerate(dense):
        x = x @ params[name + "/kernel"] + params[name + "/bias"]
        if i < len(dense) - 1:
            x = jax.nn.relu(x)
    return x


def main():
    plan_dir, out = args()
    plan = Plan(plan_dir)
    hp, b, conv, dense = plan.hp, plan.batch_size, tuple(plan.conv), tuple(plan.dense)
    f = np.float32
    lr, b1, b2, eps = f(hp["learning_rate"]), f(hp["beta_1"]), f(hp["beta_2"]), f(hp["epsilon"])
    c1, c2 = f(1 - hp["beta_1"]), f(1 - hp["beta_2"])
    sgd = hp["optimizer"] == "sgd"

    def loss_fn(params, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(forward(params, x, conv, dense), y).mean()

    @jax.jit
    def step(params, m, v, t, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        if sgd:
            return jax.tree.map(lambda p, g: p - lr * g, params, grads), m, v, loss
        alpha = lr * jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m = jax.tree.map(lambda m, g: m + (g - m) * c1, m, grads)
        v = jax.tree.map(lambda v, g: v + (g * g - v) * c2, v, grads)
        params = jax.tree.map(lambda p, m, v: p - (m * alpha) / (jnp.sqrt(v) + eps), params, m, v)
        return params, m, v, loss

    params = {k: jnp.asarray(v) for k, v in plan.weights.items()}
    m = jax.tree.map(jnp.zeros_like, params)
    v = jax.tree.map(jnp.zeros_like, params)
    seconds, t = [], 0
    for epoch in range(plan.epochs):
        x, y = plan.epoch(epoch, nhwc=True)
        start = time.perf_counter()
        for i in range(0, len(y), b):
            t += 1
            params, m, v, loss = step(params, m, v, np.float32(t), x[i:i + b], y[i:i + b])
        jax.block_until_ready(params)
        seconds.append(time.perf_counter() - start)
    x_test = plan.inputs(plan.x_test, nhwc=True)
    logits = np.asarray(jax.jit(forward, static_argnums=(2, 3))(params, x_test, conv, dense))
    save(out, seconds, logits, plan.y_test, framework=f"jax {jax.__version__}")


if __name__ == "__main__":
    main()
