"""A test engine that trains for real but slowly: the reference's float64 training (real losses, real
checksums) with a pause before every epoch, so a test can interrupt it while it runs.

The pause is ``BRIDGE_SLOW_ENGINE_S`` seconds (default 0.5), outside the timed region: it stands in for a
framework's slow epoch without changing the recorded epoch times' meaning. It reports numpy as its
framework, with numpy's version, as the reference does.
"""
import dataclasses
import os
import time

from bridge.engines import reference

FRAMEWORK = "numpy"
MODES = ("slow",)
REQUIRES = ("numpy",)
INSTALL = "pip install numpy"


def prepare(job):
    return reference.prepare(dataclasses.replace(job, mode="float64"))


def train_epoch(session, x, y):
    time.sleep(float(os.environ.get("BRIDGE_SLOW_ENGINE_S", "0.5")))
    return reference.train_epoch(session, x, y)


def predict(session, x):
    return reference.predict(session, x)
