"""The experiment as a custom TensorFlow training loop: a Keras Sequential model, a tf.function train step
(GradientTape, optimizer.apply), called on each batch. Images NHWC. Threads: TensorFlow's defaults.
usage: python bench/standalone/tf_loop.py PLAN_DIR OUT.json
"""
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_fit import build, optimizer  # noqa: E402  (the same Sequential model and optimizer)
from plan_files import Plan, args, save  # noqa: E402


def main():
    plan_dir, out = args()
    plan = Plan(plan_dir)
    hp, b = plan.hp, plan.batch_size
    model = build(plan)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    opt = optimizer(hp)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    seconds = []
    for epoch in range(plan.epochs):
        x, y = plan.epoch(epoch, nhwc=True)
        start = time.perf_counter()
        for i in range(0, len(y), b):
            loss = train_step(x[i:i + b], y[i:i + b])
        loss.numpy()
        seconds.append(time.perf_counter() - start)
    x_test = plan.inputs(plan.x_test, nhwc=True)
    logits = model(x_test, training=False).numpy()
    save(out, seconds, logits, plan.y_test, framework=f"tensorflow {tf.__version__}")


if __name__ == "__main__":
    main()
