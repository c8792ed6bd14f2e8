"""The experiment in plain PyTorch: nn.Sequential, CrossEntropyLoss, zero_grad / backward / step.

Adam is Keras' form (epsilon on the square root of the uncorrected second moment), as every bridge
engine trains, written here as a small torch.optim.Optimizer. Threads: PyTorch's defaults.
usage: python bench/standalone/torch_loop.py PLAN_DIR OUT.json
"""
import time

import numpy as np
import torch
from torch import nn

from plan_files import Plan, args, save


class KerasAdam(torch.optim.Optimizer):
    def __init__(self, params, lr, beta_1, beta_2, epsilon):
        super().__init__(params, dict(lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon))
        self.t = 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        f = np.float32
        for g in self.param_groups:
            b1, b2 = f(g["beta_1"]), f(g["beta_2"])
            alpha = float(f(g["lr"]) * np.sqrt(f(1) - b2 ** f(self.t)) / (f(1) - b1 ** f(self.t)))
            c1, c2, eps = float(f(1 - g["beta_1"])), float(f(1 - g["beta_2"])), float(f(g["epsilon"]))
            for p in g["params"]:
                state = self.state[p]
                if not state:
                    state["m"], state["v"] = torch.zeros_like(p), torch.zeros_like(p)
                m, v = state["m"], state["v"]
                m.add_(p.grad.sub(m).mul_(c1))
                v.add_(p.grad.square().sub_(v).mul_(c2))
                p.sub_(m.mul(alpha).div_(v.sqrt().add_(eps)))


def build(plan):
    w, layers, params = plan.weights, [], []
    h = plan.x_train.shape[2:] if plan.image else None
    for name in plan.conv:
        kh, kw, cin, cout = w[name + "/kernel"].shape
        conv = nn.Conv2d(cin, cout, (kh, kw))
        params += [(conv.weight, w[name + "/kernel"].transpose(3, 2, 0, 1)), (conv.bias, w[name + "/bias"])]
        layers += [conv, nn.ReLU(), nn.MaxPool2d(2)]
        h = ((h[0] - kh + 1) // 2, (h[1] - kw + 1) // 2)
    if plan.conv:
        layers.append(nn.Flatten())
    for i, name in enumerate(plan.dense):
        kernel = w[name + "/kernel"]
        if i == 0 and plan.conv:  # Keras flattens (h, w, c), nn.Flatten (c, h, w): reorder the rows once
            c = kernel.shape[0] // (h[0] * h[1])
            kernel = kernel.reshape(h[0], h[1], c, -1).transpose(2, 0, 1, 3).reshape(kernel.shape)
        linear = nn.Linear(*kernel.shape)
        params += [(linear.weight, kernel.T), (linear.bias, w[name + "/bias"])]
        layers.append(linear)
        if i < len(plan.dense) - 1:
            layers.append(nn.ReLU())
    with torch.no_grad():
        for p, value in params:
            p.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return nn.Sequential(*layers)


def main():
    plan_dir, out = args()
    plan = Plan(plan_dir)
    hp, b = plan.hp, plan.batch_size
    model = build(plan)
    loss_fn = nn.CrossEntropyLoss()
    if hp["optimizer"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=float(np.float32(hp["learning_rate"])))
    else:
        opt = KerasAdam(model.parameters(), hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["epsilon"])
    x_all, y_all = torch.from_numpy(plan.x_train), torch.from_numpy(plan.y_train.astype(np.int64))
    seconds = []
    for epoch in range(plan.epochs):
        order = torch.from_numpy(plan.order(epoch).astype(np.int64))
        x, y = x_all[order], y_all[order]
        start = time.perf_counter()
        for i in range(0, len(y), b):
            loss = loss_fn(model(x[i:i + b]), y[i:i + b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds.append(time.perf_counter() - start)
    with torch.no_grad():
        logits = model(torch.from_numpy(plan.x_test)).numpy()
    save(out, seconds, logits, plan.y_test, framework=f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
