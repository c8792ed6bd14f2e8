"""An engine whose epoch is one long call that never releases the GIL: it stands in for a juliacall epoch
(or any C extension) during which no Python thread of the worker can run.

``train_epoch`` writes the worker's pid to ``$BRIDGE_GIL_ENGINE_MARK`` and then calls the C library's
``sleep`` through :class:`ctypes.PyDLL`, whose calls keep the GIL (a plain ``ctypes.CDLL`` would release it),
for ``$BRIDGE_GIL_ENGINE_S`` seconds (default 60).
"""
import ctypes
import os
from pathlib import Path

import numpy as np

from bridge.contract import EpochResult

FRAMEWORK = "numpy"
MODES = ("hold",)
REQUIRES = ()
INSTALL = "nothing to install"


def hold_the_gil(seconds: int) -> None:
    ctypes.PyDLL(None).sleep(int(seconds))


def prepare(job):
    return {"steps": job.plan.steps_per_epoch}, {"framework": "numpy", "import_s": 0.0, "build_s": 0.0,
                                                 "threads": job.threads}


def train_epoch(session, x, y):
    Path(os.environ["BRIDGE_GIL_ENGINE_MARK"]).write_text(str(os.getpid()))
    hold_the_gil(int(os.environ.get("BRIDGE_GIL_ENGINE_S", "60")))
    return EpochResult(np.zeros(session["steps"]), 0.0)


def predict(session, x):
    return np.zeros((len(x), 3))
