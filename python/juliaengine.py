"""What the flux and knet engines share: driving a Julia engine package through juliacall.

The Julia packages (julia/BridgeFlux, julia/BridgeKnet) define ``prepare``, ``train_epoch`` and
``predict`` with the same meaning as the Python protocol; this module only hands them memory.
Batches reach Julia without a copy: the address of the worker's C-order epoch buffer and its shape
reversed, which Julia wraps as a column-major Array (``wrap_inputs``): ``(N, F)`` is ``F×N``,
NCHW is WHCN. Losses and logits come back as Julia arrays that NumPy views without a copy.
"""
from __future__ import annotations

import time

import numpy as np

from bridge.protocol import EpochRun


class JuliaEngine:
    def __init__(self, engine: str):
        self.engine = engine

    def prepare(self, job):
        from bridge import julia, julia_import

        device = job.experiment.device
        module, seconds = julia_import.load(self.engine, julia.load_record()[self.engine], job.threads, device)
        start = time.perf_counter()
        handle = module.prepare(str(job.plan.root), device=device, threads=job.threads)
        build_s = time.perf_counter() - start
        report = julia_import.python_dict(module.engine_report(handle))
        report.update(seconds, build_s=build_s)
        session = {"module": module, "handle": handle}
        return session, report

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

    def train_epoch(self, s, x: np.ndarray, y: np.ndarray) -> EpochRun:
        xj, yj = self.to_julia(s["module"], x, y)
        # (losses, seconds), timed inside Julia; a package that also checksums its batch views returns
        # them third, and the worker checks them against the arrays it handed over
        result = s["module"].train_epoch(s["handle"], xj, yj)
        own = [str(c) for c in result[2]] if len(result) > 2 else None
        return EpochRun(np.asarray(result[0]), float(result[1]), own)

    def predict(self, s, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x)
        logits = s["module"].predict(s["handle"], self.to_julia(s["module"], x))
        return np.asarray(logits).T  # Julia K×N column-major is NumPy (N, K) C-order: a view
