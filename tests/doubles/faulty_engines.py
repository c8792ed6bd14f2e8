"""An engine that fails on purpose, in three ways (its modes), for the worker-isolation tests.

It trains nothing real: it stands in for a framework that raises, dies or hangs mid-run.
"""
import os
import time

import numpy as np

from bridge.contract import EpochResult

FRAMEWORK = "numpy"
MODES = ("raise", "exit", "hang")
REQUIRES = ()
INSTALL = "nothing to install"


def prepare(job):
    return {"mode": job.mode, "steps": job.plan.steps_per_epoch}, {"framework": "faulty", "import_s": 0.0,
                                                                     "build_s": 0.0, "threads": job.threads}


def train_epoch(session, x, y):
    if session["mode"] == "raise":
        raise FloatingPointError("loss became NaN at step 3")
    if session["mode"] == "exit":
        os._exit(3)  # a hard exit: no exception, no record line
    time.sleep(3600)
    return EpochResult(np.zeros(session["steps"]), 0.0)


def predict(session, x):
    return np.zeros((len(x), 3))
