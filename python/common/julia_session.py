"""What the flux and knet engines share: driving a Julia engine package through juliacall.

The Julia packages (julia/BridgeFlux, julia/BridgeKnet) define ``prepare``, ``train_epoch``, ``predict``
and ``engine_report`` with the same meaning as the Python contract (:mod:`bridge.contract`); this module
only hands them memory, and says what they need written beside the plan (:func:`bridge.julia.plan.export`).
Batches reach Julia without a copy: the address of the worker's C-order epoch buffer and its shape
reversed, which Julia wraps as a column-major Array (``wrap_inputs``): ``(N, F)`` is ``F×N``, NCHW is
WHCN. Losses and logits come back as Julia arrays that NumPy views without a copy.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.contract import EngineReport, EpochResult, Job
from bridge.julia import boundary, plan, record

MODES = ("loop",)
REQUIRES = ()  # juliacall and Julia are checked by unavailable_reason, which names the set-up command
INSTALL = f"pip install 'bridge[julia]' && {record.SETUP}"
# Flux's MaxPool and Knet's pool backward: NNlib's ∇maxpool on the CPU, cuDNN's on a GPU
MAXPOOL_GRADIENT = {"cpu": "nnlib", "cuda": "cudnn"}
export_plan = plan.export


def maxpool_gradient(mode: str, device: str) -> str:
    return MAXPOOL_GRADIENT[device]


def without_gil(function):
    """``function`` (a Julia function through juliacall) as a call that releases Python's GIL while Julia
    runs: juliacall's ``_jl_call_nogil`` (PythonCall 0.9.28, ``pyjlany_call_nogil``: the arguments are
    converted with the GIL held, the call runs with it released, the result is converted once it is taken
    back). The engines' ``train_epoch`` and ``predict`` touch no Python object, as that requires. Meanwhile
    the worker's own threads run: the memory sampler takes its samples during a Julia epoch, as during any
    other engine's, and the parent watcher can end an orphaned worker."""
    return function._jl_call_nogil


@dataclass
class JuliaSession:
    module: Any  # the engine's Julia package, through juliacall
    handle: Any  # its session


def precision(report: dict) -> dict:
    """``reduced_precision`` and ``precision`` from a Julia engine's own report: on a GPU, whether cuDNN may
    use TF32 (``CUDA.math_mode()`` allows it unless pedantic, and ``NVIDIA_TF32_OVERRIDE=0`` forbids it)."""
    mode = report.pop("cuda_math_mode", None)
    if mode is None:
        return {"reduced_precision": False, "precision": "float32 throughout (CPU)"}
    override = report.get("NVIDIA_TF32_OVERRIDE", "unset")
    return {"reduced_precision": mode != "PEDANTIC_MATH" and override != "0",
            "precision": f"CUDA.math_mode={mode}, NVIDIA_TF32_OVERRIDE={override}"}


class JuliaEngine:
    """One Julia engine's ``prepare``, ``train_epoch`` and ``predict``, and its availability."""

    def __init__(self, engine: str):
        self.engine = engine

    def unavailable_reason(self, device: str = "cpu") -> str | None:
        return record.unavailable_reason(self.engine, device)

    def prepare(self, job: Job) -> tuple[JuliaSession, EngineReport]:
        module, seconds = boundary.load(self.engine, record.load_record()[self.engine], job.threads, job.device)
        start = time.perf_counter()
        handle = module.prepare(str(job.plan.root), device=job.device, threads=job.threads)
        build_s = time.perf_counter() - start
        report = boundary.python_dict(module.engine_report(handle))
        report.update(seconds, build_s=build_s, **precision(report))
        return JuliaSession(module, handle), report

    @staticmethod
    def to_julia(module, x: np.ndarray, y: np.ndarray | None = None):
        """Julia arrays over the same memory as ``x`` (C-contiguous float32) and ``y`` (int32).
        The caller keeps ``x`` and ``y`` alive while Julia uses them."""
        if not (x.flags.c_contiguous and x.dtype == np.float32):
            raise ValueError(f"inputs must be C-contiguous float32 to be shared with Julia, got {x.dtype}")
        xj = module.wrap_inputs(x.ctypes.data, *reversed(x.shape))
        if y is None:
            return xj
        if not (y.flags.c_contiguous and y.dtype == np.int32):
            raise ValueError(f"labels must be C-contiguous int32 to be shared with Julia, got {y.dtype}")
        return xj, module.wrap_labels(y.ctypes.data, len(y))

    def train_epoch(self, s: JuliaSession, x: np.ndarray, y: np.ndarray) -> EpochResult:
        xj, yj = self.to_julia(s.module, x, y)
        # (losses, seconds), timed inside Julia; a package that also checksums its batch views returns
        # them third, and the worker checks them against the arrays it handed over
        result = without_gil(s.module.train_epoch)(s.handle, xj, yj)
        own = [str(c) for c in result[2]] if len(result) > 2 else None
        # the seconds of that pass Julia spent compiling (julia/common/engine.jl, timed_pass)
        compiled = float(s.module.last_pass_compile_seconds())
        return EpochResult(np.asarray(result[0]), float(result[1]), own, compile_s=compiled)

    @staticmethod
    def memory_report(s: JuliaSession) -> dict:
        """Julia's own memory statistics once training ended (``julia_maxrss_bytes``,
        ``julia_gc_live_bytes``) and, on a GPU, CUDA.jl's (``device_memory_peak_bytes``,
        ``device_memory_total_bytes``): the package's ``memory_report`` (julia/common/engine.jl)."""
        return boundary.python_dict(s.module.memory_report(s.handle))

    @staticmethod
    def final_report(s: JuliaSession) -> dict:
        """On a GPU, the convolution algorithms cuDNN chose during the run (``cudnn_conv_algorithms``,
        ``cudnn_conv_deterministic``), read from the framework's algorithm caches once training ended: the
        package's ``final_report`` (julia/common/engine.jl). Empty on the CPU."""
        return boundary.python_dict(s.module.final_report(s.handle))

    def predict(self, s: JuliaSession, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x)
        logits = without_gil(s.module.predict)(s.handle, self.to_julia(s.module, x))
        return np.asarray(logits).T  # Julia K×N column-major is NumPy (N, K) C-order: a view
