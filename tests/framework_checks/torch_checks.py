"""PyTorch for tests/engines/test_torch.py: the torch engine's model from given weights, torch's SGD step, and
Keras' Adam as the engine's ``torch.optim`` optimizer (and torch's own Adam). Run by
``tests.support.framework_check``."""
import numpy as np
import torch

from bridge.engines import torch as torch_engine
from tests.framework_checks.exchange import serve


def model_forward(shapes: dict, input_shape: np.ndarray, weights: dict, x: np.ndarray) -> np.ndarray:
    """Logits in float64 of the engine's ``nn.Sequential`` (``build_model`` of the parameter ``shapes``)
    with ``weights`` (torch layout) copied into its parameters, on ``x`` (plan layout: NCHW or (N, F))."""
    net, named = torch_engine.build_model(torch, shapes, tuple(int(n) for n in input_shape))
    net = net.double()
    with torch.no_grad():
        for name, p in named:
            p.copy_(torch.from_numpy(weights[name]))
    return net(torch.from_numpy(x)).detach().numpy()


def sgd_step(w: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
    """One ``torch.optim.SGD`` step from ``w`` with gradient ``g``."""
    p = torch.nn.Parameter(torch.from_numpy(w.copy()))
    p.grad = torch.from_numpy(g.copy())
    torch.optim.SGD([p], lr=lr).step()
    return p.detach().numpy()


def adam_run(optimizer: str, w0: dict, grads: dict, lr: float, epsilon: float) -> dict:
    """The weights after ``len(grads[k])`` steps of ``optimizer``: ``keras`` (the engine's ``KerasAdam``)
    or ``torch`` (``torch.optim.Adam``); ``grads[k]`` stacks the steps' gradients of ``k``."""
    params = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in w0.items()}
    if optimizer == "keras":
        opt = torch_engine.KerasAdam(torch)(list(params.values()), lr=lr, epsilon=epsilon)
    else:
        opt = torch.optim.Adam(list(params.values()), lr=lr, eps=epsilon)
    for i in range(len(next(iter(grads.values())))):
        for k, p in params.items():
            p.grad = torch.from_numpy(grads[k][i].copy())
        opt.step()
    return {k: p.detach().numpy() for k, p in params.items()}


def forward_flops(shapes: dict, input_shape: np.ndarray) -> int:
    """FLOPs of one example's forward pass through the engine's model, as torch's own FlopCounterMode
    counts them (2 per multiply-add of matmuls and convolutions; bias adds, activations, pooling: 0)."""
    from torch.utils.flop_counter import FlopCounterMode

    shape = tuple(int(n) for n in input_shape)
    net, _ = torch_engine.build_model(torch, shapes, shape)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(torch.zeros((1, *shape)))
    return int(counter.get_total_flops())


if __name__ == "__main__":
    print(f"torch {torch.__version__}")
    serve({f.__name__: f for f in (model_forward, sgd_step, adam_run, forward_flops)})
