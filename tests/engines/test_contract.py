"""Every registered engine module satisfies the engine contract (bridge.contract) as a type: the names at
module level, the three functions, and only the optional hooks the contract names."""
import inspect

import pytest

from bridge.contract import Engine, EngineReport
from bridge.running import selection

CONTRACT = {name for name, _ in inspect.getmembers(Engine) if not name.startswith("_")} | set(
    Engine.__annotations__)
OPTIONAL = {"unavailable_reason", "maxpool_gradient", "export_plan", "memory_report", "final_report"}


@pytest.mark.parametrize("engine", list(selection.ENGINES))
def test_the_engine_module_satisfies_the_contract(engine):
    mod = selection.module(engine)  # importing it imports no framework (the pytest process refuses them)
    assert isinstance(mod.FRAMEWORK, str) and mod.FRAMEWORK
    assert isinstance(mod.MODES, tuple) and mod.MODES and all(isinstance(m, str) for m in mod.MODES)
    assert isinstance(mod.REQUIRES, tuple) and isinstance(mod.INSTALL, str) and mod.INSTALL
    for name in ("prepare", "train_epoch", "predict"):
        assert callable(getattr(mod, name)), name
    assert list(inspect.signature(mod.prepare).parameters) == ["job"]
    for hook in OPTIONAL:
        assert not hasattr(mod, hook) or callable(getattr(mod, hook)), hook
    assert {"FRAMEWORK", "MODES", "REQUIRES", "INSTALL", "prepare", "train_epoch", "predict"} <= CONTRACT
    # the rule is declared one way only: no table of another vocabulary beside the hook
    assert not any(name.startswith("MAXPOOL_GRADIENT") for name in vars(mod)), engine
    # every framework says what it knows of its memory (device memory on a GPU); the reference has no framework
    assert hasattr(mod, "memory_report") == (engine != "reference"), engine


def test_the_report_has_one_vocabulary_for_precision_and_versions():
    keys = set(EngineReport.__annotations__)
    assert {"framework", "framework_version", "device", "threads", "import_s", "build_s", "reduced_precision",
            "precision", "rss_import_bytes", "rss_build_bytes", "device_memory_peak_bytes",
            "device_memory_total_bytes"} <= keys
