"""The experiment in plain Keras 3: a Sequential model, compile, one model.fit per epoch over that epoch's
arrays (the plan fixes each epoch's order, so shuffle=False), on the backend KERAS_BACKEND names
(tensorflow, jax or torch; set it in the environment, as Keras users do). Images NHWC. Threads: the
backend's defaults.
usage: KERAS_BACKEND=jax python bench/standalone/keras_fit.py PLAN_DIR OUT.json
"""
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from plan_files import Plan, args, save  # noqa: E402


def build(plan):
    w = plan.weights
    if plan.image:
        layers = [keras.Input(plan.x_train.shape[2:] + plan.x_train.shape[1:2])]  # (H, W, C)
    else:
        layers = [keras.Input(plan.x_train.shape[1:])]
    for name in plan.conv:
        kh, kw, _, filters = w[name + "/kernel"].shape
        layers += [keras.layers.Conv2D(filters, (kh, kw), activation="relu"), keras.layers.MaxPooling2D(2)]
    if plan.conv:
        layers.append(keras.layers.Flatten())
    for i, name in enumerate(plan.dense):
        last = i == len(plan.dense) - 1
        layers.append(keras.layers.Dense(w[name + "/kernel"].shape[1], activation=None if last else "relu"))
    model = keras.Sequential(layers)
    model.set_weights(list(w.values()))
    return model


def optimizer(hp):
    if hp["optimizer"] == "sgd":
        return keras.optimizers.SGD(learning_rate=hp["learning_rate"])
    return keras.optimizers.Adam(learning_rate=hp["learning_rate"], beta_1=hp["beta_1"], beta_2=hp["beta_2"],
                                 epsilon=hp["epsilon"])


def main():
    plan_dir, out = args()
    plan = Plan(plan_dir)
    model = build(plan)
    model.compile(optimizer=optimizer(plan.hp), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    seconds = []
    for epoch in range(plan.epochs):
        x, y = plan.epoch(epoch, nhwc=True)
        start = time.perf_counter()
        model.fit(x, y, batch_size=plan.batch_size, epochs=1, shuffle=False, verbose=0)
        seconds.append(time.perf_counter() - start)
    x_test = plan.inputs(plan.x_test, nhwc=True)
    logits = keras.ops.convert_to_numpy(model(x_test, training=False))
    save(out, seconds, logits, plan.y_test, framework=f"keras {keras.__version__} ({keras.backend.backend()})")


if __name__ == "__main__":
    main()
