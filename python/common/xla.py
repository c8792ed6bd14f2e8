"""What the engines that run on XLA (jax, keras-jax) share: the size of its CPU thread pool, the
matmul precision that keeps a GPU from using reduced-precision passes, and the seconds JAX spends
compiling inside an epoch.

Threads. JAX has no documented setting for its CPU thread count, and no ``XLA_FLAGS`` flag sizes it in jaxlib 0.10
(``--xla_cpu_multi_thread_eigen=false`` leaves the pool as it is; see jax-ml/jax#1539). XLA's CPU client
sizes its intra-op pool (threads named ``tf_XLAEigen``) with ``DefaultThreadPoolSize()``, which reads the
environment variable ``NPROC`` and otherwise counts the schedulable cores; that is an undocumented hook
(its source comment says it exists for Google's CI) but it works in jaxlib 0.10.2. So the engines set
``NPROC`` before importing JAX (:func:`request_threads`), and report as ``threads`` the size of that pool
as counted from ``/proc/self/task`` (:func:`threads_report`): what actually runs, not what was asked for.
"""
from __future__ import annotations

import os
import time

POOL_THREAD_NAME = "tf_XLAEigen"
# What JAX reports of each compilation through jax.monitoring (jax/_src/dispatch.py, jax 0.10.2): tracing the
# function to a jaxpr, lowering it to an MLIR module, and XLA's compile of that module.
COMPILE_EVENTS = frozenset({"/jax/core/compile/jaxpr_trace_duration",
                            "/jax/core/compile/jaxpr_to_mlir_module_duration",
                            "/jax/core/compile/backend_compile_duration"})
MATMUL_PRECISION = "highest"  # parity: no TF32 / bf16 passes for float32 matmuls on a GPU


def request_threads(threads: int) -> None:
    """Size XLA's CPU intra-op pool; call before JAX is imported."""
    os.environ["NPROC"] = str(threads)


def pool_threads() -> int:
    """Threads of XLA's CPU intra-op pool in this process, counted by name (Linux); 0 if unknown."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0
    n = 0
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/comm") as fh:
                n += fh.read().strip() == POOL_THREAD_NAME
        except OSError:
            pass
    return n


def threads_report(threads: int, device: str) -> dict:
    """``threads`` and ``threads_source`` for an engine's report: the pool counted on the CPU, else what
    was requested."""
    pool = pool_threads() if device == "cpu" else 0
    return {"threads": pool or threads,
            "threads_source": (f"XLA CPU pool ({POOL_THREAD_NAME}) threads counted, sized by NPROC={threads}"
                               if pool else f"requested (NPROC={threads}); the XLA pool was not counted")}


def full_float32(jax) -> dict:
    """Set JAX's default matmul precision to ``highest``; ``reduced_precision`` and ``precision`` for the
    engine's report."""
    jax.config.update("jax_default_matmul_precision", MATMUL_PRECISION)
    precision = str(jax.config.jax_default_matmul_precision)
    return {"reduced_precision": precision != MATMUL_PRECISION,
            "precision": f"jax_default_matmul_precision={precision}"}


def device_memory(device) -> dict:
    """On a GPU, XLA's peak of device memory in use and the most its allocator may take
    (``device.memory_stats()``'s ``peak_bytes_in_use`` and ``bytes_limit``: by default 75% of the device,
    ``XLA_PYTHON_CLIENT_MEM_FRACTION``), as ``EngineReport``'s ``device_memory_peak_bytes`` and
    ``device_memory_total_bytes``; nothing on the CPU."""
    stats = device.memory_stats() if device.platform == "gpu" else None
    if not stats:
        return {}
    return {"device_memory_peak_bytes": int(stats["peak_bytes_in_use"]),
            "device_memory_total_bytes": int(stats["bytes_limit"])}


class CompileClock:
    """The seconds JAX spent compiling (:data:`COMPILE_EVENTS`, heard through the public
    ``jax.monitoring.register_event_duration_secs_listener``) within a stretch of time: what
    ``EpochResult.compile_s`` says, as the Julia engines say it of Julia's compiler. An event arrives when its
    phase ends, with its duration, so each is the interval that ended then; a trace nested in another
    (a jitted function calling another) lies inside it, so the clock counts the union of the intervals,
    not their sum. A listener cannot be removed: make one clock per process (per session)."""

    def __init__(self, jax):
        self.spans: list[tuple[float, float]] = []
        jax.monitoring.register_event_duration_secs_listener(self.heard)

    def heard(self, event: str, duration: float, **_) -> None:
        if event in COMPILE_EVENTS:
            end = time.perf_counter()
            self.spans.append((end - duration, end))

    def seconds(self, start: float, end: float) -> float:
        """Seconds of compilation between ``start`` and ``end`` (``time.perf_counter()`` readings), each instant
        counted once; the spans before ``start`` are forgotten."""
        covered, reach = 0.0, start
        for low, high in sorted(self.spans):
            low, high = max(low, reach), min(high, end)
            if high > low:
                covered, reach = covered + high - low, high
        self.spans = [span for span in self.spans if span[1] > end]
        return covered
