"""A test engine that reports, once training ended, what a GPU run of a Julia engine reports of cuDNN's
convolution algorithms (``final_report``): a stand-in for the GPU, which these machines do not have. It trains
as the reference does (float64: real losses, real checksums) and reports numpy as its framework.

Modes: ``chosen`` reports :data:`CHOSEN`, in the keys and form of julia/common/engine.jl's
``conv_algorithm_report``; ``fails`` raises from ``final_report``, as a framework whose cache cannot be read
would.
"""
import dataclasses
from dataclasses import dataclass
from typing import Any

from bridge.engines import reference

FRAMEWORK = "numpy"
MODES = ("chosen", "fails")
REQUIRES = ("numpy",)
INSTALL = "pip install numpy"

CHOSEN = {"cudnn_conv_algorithms": "backward data CUDNN_CONVOLUTION_BWD_DATA_ALGO_1 (1 shape); "
                                   "backward filter CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 (2 shapes); "
                                   "forward CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM (4 shapes)",
          "cudnn_conv_deterministic": False}
FAILURE = "the algorithm cache cannot be read"


@dataclass
class ReportSession:
    mode: str
    reference: Any


def prepare(job):
    session, report = reference.prepare(dataclasses.replace(job, mode="float64"))
    return ReportSession(job.mode, session), report


def train_epoch(session, x, y):
    return reference.train_epoch(session.reference, x, y)


def predict(session, x):
    return reference.predict(session.reference, x)


def final_report(session) -> dict:
    if session.mode == "fails":
        raise RuntimeError(f"{FAILURE}\nsecond line of the framework's message")
    return dict(CHOSEN)
