"""The engine contract: what bridge and an engine exchange, as types.

An engine is one module (``python/`` holds the Python ones, installed as ``bridge.engines``; a
third-party module path works too). At module level it names, without importing its framework:

``FRAMEWORK``  the distribution whose version it reports (``"tensorflow"``; ``"keras/jax"``: Keras on JAX)
``MODES``      the ways it can train, the first one the default (``("fit", "loop")``)
``REQUIRES``   importable modules it needs; a missing one makes it unavailable here
``INSTALL``    the command that installs them

and three functions, called in this order in a fresh worker process (:mod:`bridge.running.worker`),
after the thread and device settings are in the environment:

``prepare(job: Job) -> (session, EngineReport)``
    Import the framework, build the model from ``job.plan`` (parameter shapes and initial weights in the
    neutral layout, converted with :mod:`bridge.experiment.layouts`) and the optimizer from
    ``job.plan.optimizer``. Time the import and the build with :func:`stopwatch`.
``train_epoch(session, x, y) -> EpochResult``
    One pass over one epoch of the plan, in its batch order (``job.plan.batch_slices()``): the loss of
    each batch before its update, and the seconds the pass took on the engine's own clock (device
    synchronised; layout copies made before the clock starts).
``predict(session, x) -> logits``
    ``(N, classes)`` for inputs in plan layout; never timed. The worker computes every split's loss and
    accuracy from them, in float64, the same way for every engine.

Optional, also at module level:

``unavailable_reason(device) -> str | None``
    why the engine cannot run here on ``device`` (``"cpu"`` or ``"cuda"``) beyond a missing ``REQUIRES``
    module, with the fix (the Julia engines: no Julia set up; knet: a GPU its CUDA.jl cannot generate
    code for)
``maxpool_gradient(mode, device) -> str``
    the max-pool gradient rule the engine follows (a key of :data:`bridge.experiment.semantics.RULES`;
    ``"exact"`` when not defined)
``export_plan(plan) -> None``
    write what the engine reads beside the plan, in the parent, before any worker starts (the Julia
    engines: the initial weights in Julia layout)
``memory_report(session) -> dict``
    what the framework itself says of its memory once training ended, in :class:`EngineReport`'s keys
    (``device_memory_peak_bytes``, ``device_memory_total_bytes`` on a GPU; the Julia engines add Julia's
    ``julia_maxrss_bytes`` and ``julia_gc_live_bytes``); the worker measures the process tree's resident
    memory itself (:mod:`bridge.proctree`)
``final_report(session) -> dict``
    what only the finished training can tell, beyond memory, in report keys: on a GPU, the convolution
    algorithms cuDNN chose for the shapes the run met (``cudnn_conv_algorithms``,
    ``cudnn_conv_deterministic``; the Julia engines, from their frameworks' algorithm caches)

What the worker checks of every engine (one loss per batch, ``(N, classes)`` logits, finite values, the
batches' checksums) and what each failure becomes is in :mod:`bridge.running.worker`; an engine holds no
checking code. The Julia engines keep the same three names on the Julia side (``julia/common/plan.jl``).
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Protocol, TypedDict

import numpy as np

from .experiment.plan import BatchPlan, open_plan
from .files import atomic_write
from .proctree import tree_rss


@dataclass(frozen=True)
class Job:
    """One engine run, as the worker receives it (``workers/<run>.job.json``): which engine and mode,
    which repeat, which plan, on which device with how many threads, the max-pool gradient rule the run
    follows (decided once, by :func:`bridge.running.selection.select`), and where to write its record.
    Everything about the experiment itself is in the plan."""
    engine: str
    mode: str
    repeat: int
    plan_dir: str
    device: str
    threads: int
    maxpool_gradient: str
    record_path: str

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(asdict(self)))

    @staticmethod
    def load(path: Path) -> "Job":
        return Job(**json.loads(Path(path).read_text()))

    @cached_property
    def plan(self) -> BatchPlan:
        return open_plan(Path(self.plan_dir))


@dataclass
class EpochResult:
    """What ``train_epoch`` returns."""
    losses: np.ndarray
    """Per-step training loss, ``(steps,)``: the loss of each batch before its update."""
    seconds: float
    """The engine's own clock over the pass, device synchronised."""
    checksums: list[str] | None = None
    """Only for an engine that can checksum what its framework actually read: CRC-32C per batch, in
    :func:`bridge.experiment.plan.batch_checksum`'s format. They must agree with the worker's own."""
    compile_s: float | None = None
    """Only for an engine whose framework says how much of ``seconds`` it spent compiling (the Julia
    engines: ``Base.cumulative_compile_time_ns`` around the pass, as ``@time`` reports it; jax and keras-jax:
    JAX's tracing, lowering and XLA compile events). ``None``: the framework does not say (TensorFlow's
    ``tf.function`` tracing, PyTorch's eager mode)."""


class EngineReport(TypedDict, total=False):
    """What ``prepare`` reports, in one vocabulary for every engine (more keys are welcome: they are kept
    and shown as they are)."""
    framework: str
    """Filled by the worker from the module's ``FRAMEWORK``."""
    framework_version: str
    device: str
    """``"cpu"`` or the GPU's name as the framework gives it."""
    threads: int
    """The compute threads the framework reports it uses."""
    import_s: float
    """Seconds to import the framework (monotonic clock)."""
    build_s: float
    """Seconds to build the model and the optimizer."""
    rss_import_bytes: int
    """Resident bytes of the worker's process tree at the end of the import (:func:`stopwatch`)."""
    rss_build_bytes: int
    """Resident bytes of the worker's process tree at the end of the build (:func:`stopwatch`)."""
    device_memory_peak_bytes: int
    """On a GPU, from the engine's ``memory_report`` hook: the framework's own peak of device memory allocated
    (``torch.cuda.max_memory_allocated``, JAX's ``memory_stats()["peak_bytes_in_use"]``, TensorFlow's
    ``get_memory_info("GPU:0")["peak"]``, CUDA.jl's memory pool high-water mark)."""
    device_memory_total_bytes: int
    """On a GPU: the device's memory as the framework gives it."""
    reduced_precision: bool
    """Whether the framework may use reduced-precision passes (TF32) for float32 matmuls and convolutions."""
    precision: str
    """The framework's own settings behind ``reduced_precision``, in its words."""
    maxpool_gradient: str
    """The run's max-pool gradient rule (CNN runs; filled by the worker)."""
    cudnn_conv_algorithms: str
    """On a GPU, from the engine's ``final_report`` hook: the algorithm cuDNN chose for each convolution pass,
    with how many shapes chose it (``forward CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM (2 shapes); ...``)."""
    cudnn_conv_deterministic: bool
    """On a GPU: whether every convolution algorithm cuDNN chose is deterministic (``CUDNN_DETERMINISTIC``);
    ``False`` means two runs of the same batches may differ in the last bits of their gradients."""


class Engine(Protocol):
    """An engine module, as a type: a module with these names satisfies it (a type checker verifies
    ``engine: Engine = bridge.engines.torch``). The constants are read-only here, so a module's own
    narrower types (``MODES = ("loop",)``) fit."""

    @property
    def FRAMEWORK(self) -> str: ...

    @property
    def MODES(self) -> tuple[str, ...]: ...

    @property
    def REQUIRES(self) -> tuple[str, ...]: ...

    @property
    def INSTALL(self) -> str: ...

    def prepare(self, job: Job) -> tuple[Any, EngineReport]: ...

    def train_epoch(self, session: Any, x: np.ndarray, y: np.ndarray) -> EpochResult: ...

    def predict(self, session: Any, x: np.ndarray) -> np.ndarray: ...


@contextmanager
def stopwatch(report: dict, key: str) -> Iterator[None]:
    """``report[key]``: the seconds the block took, on the monotonic clock (``import_s``, ``build_s``), and
    ``report["rss_<name>_bytes"]`` for ``key`` ``<name>_s``: the resident bytes of the worker's process tree
    at the block's end (:func:`bridge.proctree.tree_rss`; absent where /proc cannot be read)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        report[key] = time.perf_counter() - start
        held = tree_rss()
        if held is not None:
            report[f"rss_{key.removesuffix('_s')}_bytes"] = held
