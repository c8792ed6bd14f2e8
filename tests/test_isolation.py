"""The pytest process imports no framework (tests/conftest.py): a test that imports one fails (and no
``importorskip`` turns that into a skip), and a framework found in ``sys.modules`` at the end fails the
session. Checked in a pytest subprocess with the suite's conftest as a plugin and a stand-in ``jax``
package, so no framework is needed or loaded."""
import os
import subprocess
import sys

from tests.support import ROOT

TESTS = '''
import importlib.util
import sys
import types

import pytest


def test_importing_a_framework_fails():
    assert importlib.util.find_spec("jax") is not None  # still says whether it is installed
    import jax  # noqa: F401


def test_importorskip_does_not_hide_it():
    pytest.importorskip("jax")


def test_a_framework_in_sys_modules_fails_the_session():
    sys.modules["torch"] = types.ModuleType("torch")
    sys.modules["tensorflow"] = types.ModuleType("tensorflow")


def test_numpy_is_fine():
    import numpy  # noqa: F401
'''


def test_frameworks_stay_out_of_the_pytest_process(tmp_path):
    stand_in = tmp_path / "site" / "jax"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text("raise SystemExit('the stand-in jax was imported')\n")
    (tmp_path / "test_imports.py").write_text(TESTS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path / "site")]))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_imports.py")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "2 failed, 2 passed" in out, out
    assert "FrameworkImported: the pytest process must not import jax" in out, out
    assert "FAILED: tensorflow, torch imported into the pytest process (more than one" in out, out
    assert "the stand-in jax was imported" not in out, out
