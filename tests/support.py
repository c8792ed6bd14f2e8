"""What test modules share: the repository root, skip markers that name what is missing,
:func:`run_compare` (``python -m bridge.compare`` in a fresh process, as a user runs it),
:func:`concurrent_runs` (runs whose checks do not depend on the clock, two at a time) and
:func:`framework_check`, which runs framework code in a subprocess of its own.

The pytest process imports no framework (TensorFlow, PyTorch, JAX, Keras): PyPI's default PyTorch (the
CUDA build, with Triton) and TensorFlow in one process segfault. Engines run in bridge's worker
subprocesses (``bridge.runner.run``); the unit checks that need a framework run as
``python -m tests.framework_checks.<framework>`` (one subprocess per framework and test module) and hand
back NumPy arrays, on which the tests assert. ``conftest.py`` fails the session should a framework get
into the pytest process anyway. The stand-in engines the tests run are in ``tests/doubles/``.
"""
from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest

from bridge.running.selection import module as engine_module

from .framework_checks import exchange

ROOT = Path(__file__).resolve().parent.parent

FRAMEWORKS = ("tensorflow", "torch", "jax", "keras")
"""Top-level modules the pytest process must not import (keras loads a backend: one of the others)."""


@contextmanager
def concurrent_runs(runs: dict[str, tuple], workers: int = 2) -> Iterator[dict[str, Future]]:
    """``bridge.running.runner.run(spec, folder)`` for each ``name: (spec, folder)`` of ``runs``, ``workers`` at a
    time, each in a fresh Python process of its own (spawned: the runner's signal handling needs a main
    thread, and the pytest process imports no framework; each run's workers are its children, as always).
    Yields a future of each run's ``Results``. Only for tests whose assertions do not depend on timing
    (parity, order): the runs share the machine, and their times say so. The machine's GEMM peak is
    measured here first, on a quiet machine, so that no run measures it beside another."""
    from bridge.running import peaks, runner

    for threads in {runner.resolve_threads(spec.threads) for spec, _ in runs.values()}:
        peaks.cpu_gemm_peak(threads)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield {name: pool.submit(runner.run, spec, folder) for name, (spec, folder) in runs.items()}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def missing(*modules: str) -> list[str]:
    """Those of ``modules`` that are not installed (found without importing them)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def needs(*modules: str, install: str):
    """Skip marker: the test needs ``modules``; the reason names the missing ones and ``install``."""
    absent = missing(*modules)
    return pytest.mark.skipif(bool(absent), reason=f"{', '.join(absent)} not installed ({install})")


def needs_engine(engine: str):
    """Skip marker: the test needs the Python modules engine ``engine`` needs (its ``REQUIRES``)."""
    mod = engine_module(engine)
    return needs(*mod.REQUIRES, install=mod.INSTALL)


needs_tf = needs_engine("keras")  # tensorflow, keras
needs_torch = needs_engine("torch")  # torch
needs_jax = needs_engine("jax")  # jax, jaxlib, optax


def environment(**extra: str) -> dict[str, str]:
    """This process's environment, with the repository root on ``PYTHONPATH`` (the test doubles are
    ``tests.doubles.*`` engine modules) and ``extra`` variables."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def compare_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bridge.compare", *map(str, args)]


@dataclass
class CompareRun:
    """A finished ``python -m bridge.compare``: the process, and what it wrote to ``out``."""
    proc: subprocess.CompletedProcess
    out: Path | None

    @property
    def returncode(self) -> int:
        return self.proc.returncode

    @property
    def stdout(self) -> str:
        return self.proc.stdout

    @property
    def stderr(self) -> str:
        return self.proc.stderr

    @cached_property
    def summary(self) -> dict:
        assert self.out is not None and (self.out / "summary.json").exists(), self.proc.stderr
        return json.loads((self.out / "summary.json").read_text())

    @cached_property
    def frame(self) -> pd.DataFrame:
        """results.csv as pandas reads it (no column typed by bridge's reader)."""
        return pd.read_csv(self.out / "results.csv")


def run_compare(*args, out: Path | None = None, env: dict | None = None, cwd: Path = ROOT,
                timeout: float = 300) -> CompareRun:
    """``python -m bridge.compare ARGS [--out OUT]`` in a fresh process, as a user runs it (by default from
    the repository root, with :func:`environment`)."""
    argv = [*args, *(("--out", out) if out is not None else ())]
    proc = subprocess.run(compare_command(*argv), cwd=cwd, env=env or environment(), capture_output=True, text=True,
                          timeout=timeout)
    return CompareRun(proc, Path(out) if out is not None else None)


def start_compare(*args, env: dict | None = None, **popen) -> subprocess.Popen:
    """``python -m bridge.compare ARGS`` started and left running (for signals and terminals)."""
    return subprocess.Popen(compare_command(*args), cwd=ROOT, env=env or environment(), **popen)


def framework_check(name: str, calls: dict, timeout: float = 600) -> dict:
    """Run ``tests/framework_checks/<name>.py`` in a fresh Python on ``calls`` and return its answers.

    ``calls`` maps a label to ``{"fn": function name, **arguments}``; arguments are arrays, numbers,
    strings or dicts of them (a parameter dict). The answer maps each label to what that function
    returned, as NumPy arrays (0-d for numbers). Nothing but NumPy arrays crosses back (``.npz`` without
    pickle), so the framework stays in the subprocess.
    """
    with tempfile.TemporaryDirectory(prefix=f"bridge-{name}-") as tmp:
        request, answer = Path(tmp) / "request.npz", Path(tmp) / "answer.npz"
        exchange.save(request, calls)
        env = environment(TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
        proc = subprocess.run([sys.executable, "-m", f"tests.framework_checks.{name}", str(request), str(answer)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"tests/framework_checks/{name}.py exited {proc.returncode}:\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
        print(proc.stdout, end="")
        return exchange.load(answer)


# --- numbers shared by the engine unit tests (tests/engines/test_torch.py, tests/engines/test_jax.py) ---

# the engine unit tests' models: case -> model, input shape in plan layout, sizes (the defaults, and one
# other size per model)
MODEL_CASES = {"cnn": ("cnn", (2, 14, 12), {}), "mlp": ("mlp", (20,), {}),
               "cnn-1conv": ("cnn", (2, 14, 12), dict(filters=(3,), dense=7)),
               "mlp-3": ("mlp", (20,), dict(hidden=(9, 8, 6)))}


def model_shapes(model: str, input_shape, classes: int, **sizes) -> dict:
    """Parameter shapes (neutral layout) of ``model`` on ``input_shape`` (plan layout) with ``classes``
    outputs; ``sizes`` (hidden, filters, dense) default to the Fashion-MNIST defaults."""
    from bridge.experiment.models import parameter_shapes
    from bridge.experiment.spec import Spec

    return parameter_shapes(Spec(dataset="fashion-mnist", model=model, **sizes), tuple(input_shape), classes)


def random_weights(model: str, input_shape, classes: int, seed: int, **sizes) -> dict:
    """Glorot weights in the neutral layout for ``model`` (:func:`model_shapes`) on ``input_shape`` (plan
    layout), with non-zero biases, so that their layout is checked too."""
    from bridge.experiment.weights import glorot_uniform

    w = glorot_uniform(model_shapes(model, input_shape, classes, **sizes), seed)
    r = np.random.default_rng(seed + 1)
    return {k: (v + r.uniform(-0.1, 0.1, v.shape).astype(np.float32)) if k.endswith("/bias") else v
            for k, v in w.items()}


def ulp_close(got, want, *terms) -> bool:
    """|got - want| within one float32 ulp of ``want`` plus one of each rounded intermediate."""
    bound = np.spacing(np.abs(want).astype(np.float32))
    for t in terms:
        bound = bound + np.spacing(np.abs(t).astype(np.float32))
    return bool(np.all(np.abs(np.asarray(got).astype(np.float64) - want) <= bound))


EPSILONS = (1e-7, 0.1)  # Keras' default, and one large enough that its placement matters
LR = float(np.float32(0.1))  # Keras rounds lr through float32


def sgd_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Float32 weights and gradient of 5000 values for one SGD step."""
    r = np.random.default_rng(seed)
    return r.standard_normal(5000).astype(np.float32), r.standard_normal(5000).astype(np.float32)


def optimizer_calls(own_adam: str, sgd_seed: int, adam_seed: int) -> dict:
    """The framework-check calls every engine unit test makes of its optimizers: one SGD step
    (``sgd``), and six Adam steps per epsilon in Keras' form and in the framework's own (``own_adam``):
    ``adam-<keras|own_adam>-<i>``, i indexing ``EPSILONS``."""
    w, g = sgd_case(sgd_seed)
    calls = {"sgd": dict(fn="sgd_step", w=w, g=g, lr=LR)}
    for i, eps in enumerate(EPSILONS):
        w0, grads, _ = keras_adam_case(6, eps, adam_seed)
        for optimizer in ("keras", own_adam):
            calls[f"adam-{optimizer}-{i}"] = dict(fn="adam_run", optimizer=optimizer, w0=w0, grads=grads, lr=0.01,
                                                  epsilon=eps)
    return calls


def keras_adam_case(steps: int, epsilon: float, seed: int):
    """``(w0, grads, keras)``: float32 weights, ``grads`` stacked per name (steps first), and the weights
    after ``steps`` steps of numpy_nn's Keras Adam (lr 0.01)."""
    from bridge.engines.common import numpy_nn

    r = np.random.default_rng(seed)
    shapes = {"k": (300, 7), "b": (7,), "c": (3, 3, 1, 32)}
    w0 = {k: r.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    grads = [{k: (r.standard_normal(s) * 0.1).astype(np.float32) for k, s in shapes.items()} for _ in range(steps)]
    keras = {k: v.copy() for k, v in w0.items()}
    opt = numpy_nn.Adam(0.01, 0.9, 0.999, epsilon)
    for g in grads:
        opt.apply(keras, g)
    return w0, {k: np.stack([g[k] for g in grads]) for k in shapes}, keras


def displacement_error(got: dict, keras: dict, w0: dict) -> float:
    """Largest difference from Keras' weights, relative to how far Keras moved them."""
    return max(float(np.abs(np.asarray(got[k]) - keras[k]).max() / np.abs(keras[k] - w0[k]).max()) for k in keras)
