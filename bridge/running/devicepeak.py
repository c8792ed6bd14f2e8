"""The accelerator's measured float32 peak: the best of repeated square float32 GEMMs on the device, the
GPU counterpart of :func:`bridge.running.peaks.gemm_peak`.

Run in its own process (``python -m bridge.running.devicepeak --device cuda``), as every framework in bridge is:
the parent imports none. It uses the first of PyTorch and JAX that is installed, with TF32 and other
reduced-precision matmul passes off (the engines run that way), and prints one JSON object:
``{"gflops", "device", "framework", "size"}``. ``--device cpu`` measures the same way on the CPU, which
is how the tests exercise this code on a machine without a GPU. When no framework here can measure the
device it prints one line, ``bridge.running.devicepeak: error: <why and the fix>``, and exits 1 (bad
input: 2).
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import time

from ..cli import EXIT_OK, Parser, exit_codes_epilog, fail
from ..errors import BridgeError, UsageError
from .peaks import best_time

COMMAND = "bridge.running.devicepeak"
SIZE = {"cuda": 8192, "cpu": 1024}
FRAMEWORKS = ("torch", "jax")


def _torch(device: str, n: int, seconds: float) -> tuple[float, str, str]:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(device)
    a, b = (torch.randn(n, n, device=dev, dtype=torch.float32) for _ in range(2))

    def once() -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    best = best_time(once, seconds)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    return best, name, f"torch {torch.__version__}"


def _jax(device: str, n: int, seconds: float) -> tuple[float, str, str]:
    os.environ.setdefault("JAX_PLATFORMS", "cuda" if device == "cuda" else "cpu")
    import jax
    import jax.numpy as jnp

    dev = jax.devices("gpu" if device == "cuda" else "cpu")[0]
    matmul = jax.jit(lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST))
    key = jax.random.PRNGKey(0)
    a = jax.device_put(jax.random.normal(key, (n, n), jnp.float32), dev)
    b = jax.device_put(jax.random.normal(jax.random.split(key)[0], (n, n), jnp.float32), dev)

    def once() -> float:
        t = time.perf_counter()
        matmul(a, b).block_until_ready()
        return time.perf_counter() - t

    best = best_time(once, seconds)
    return best, (dev.device_kind if device == "cuda" else "cpu"), f"jax {jax.__version__}"


def measure(device: str, framework: str | None = None, seconds: float = 1.0) -> dict:
    """Measure in this process with ``framework`` (default: the first of :data:`FRAMEWORKS` installed).
    Raises :class:`BridgeError` when none is installed, or when the framework cannot use ``device``
    (the framework's own error, in one line)."""
    if not seconds > 0:
        raise UsageError(f"--seconds must be greater than zero, e.g. 1; got {seconds:g}")
    framework = framework or next((f for f in FRAMEWORKS if importlib.util.find_spec(f)), None)
    if framework is None:
        raise BridgeError(f"measuring the {device} GEMM peak needs one of {', '.join(FRAMEWORKS)}, and none is "
                          "installed; run: pip install 'bridge[torch]'")
    if importlib.util.find_spec(framework) is None:
        raise UsageError(f"--framework {framework}: {framework} is not installed; install it, or leave "
                         "--framework out for the first of them installed")
    n = SIZE[device]
    try:
        best, name, version = (_torch if framework == "torch" else _jax)(device, n, seconds)
    except Exception as e:  # noqa: BLE001 - whatever the framework raises (no GPU, no CUDA build): one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else "no message"
        others = [f for f in FRAMEWORKS if f != framework and importlib.util.find_spec(f)]
        raise BridgeError(f"{framework} cannot measure the {device} GEMM peak here ({type(e).__name__}: {first}); "
                          f"measure where {framework} can use {'a CUDA GPU' if device == 'cuda' else 'the CPU'}"
                          + "".join(f", or try --framework {f}" for f in others)) from e
    return {"gflops": 2 * n**3 / best / 1e9, "device": name, "framework": version, "size": n}


def main(argv=None) -> int:
    p = Parser(COMMAND, description=__doc__.split("\n\n")[0],
               epilog=exit_codes_epilog("no framework installed here can measure the device", signals=False))
    p.add_argument("--device", choices=tuple(SIZE), default="cuda")
    p.add_argument("--framework", choices=FRAMEWORKS, default=None, help="default: the first installed")
    p.add_argument("--seconds", type=float, default=1.0, help="how long to repeat the GEMM (default: 1)")
    a = p.parse_args(argv)
    try:
        print(json.dumps(measure(a.device, a.framework, a.seconds)))
    except BridgeError as e:  # one line, the reason: the parent (bridge.running.peaks) records it
        return fail(COMMAND, e)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
