"""The engine runs of a comparison are decided once: one selection per command, each engine module's
availability checked once, and every later stage (resume, progress, the runner, the worker, the results)
carries what the selection decided instead of asking the registry again."""
import pytest

from bridge import compare
from bridge.experiment.spec import Spec
from bridge.results.records import EngineMode
from bridge.running import selection

ENGINES = ("reference", "tests.doubles.nnlib_engine", "tests.doubles.fixed_logits_engine", "flux")
CNN = dict(dataset="synthetic", model="cnn", synthetic_shape="1,12,12", synthetic_samples=32, classes=3, epochs=1,
           batch_size=16)


@pytest.fixture
def counted(monkeypatch):
    """Calls of the selection and of each engine module's availability check, by name."""
    calls = {"select": 0, "unavailable_reason": []}
    select, reason = selection.select, selection.unavailable_reason

    def counting_select(spec):
        calls["select"] += 1
        return select(spec)

    def counting_reason(engine, mod=None, device="cpu"):
        calls["unavailable_reason"].append(engine)
        return reason(engine, mod, device)

    monkeypatch.setattr(selection, "select", counting_select)
    monkeypatch.setattr(selection, "unavailable_reason", counting_reason)
    monkeypatch.setattr(compare, "select", counting_select)
    return calls


def test_one_compare_selects_once_and_checks_each_engine_once(counted, tmp_path, monkeypatch):
    monkeypatch.setenv("BRIDGE_JULIA_RECORD", str(tmp_path / "none.json"))  # flux: unavailable, checked once
    args = ["--engines", ",".join(ENGINES), *(f"--{k}={v}" for k, v in CNN.items()), "--quiet", "--no-report",
            "--out", str(tmp_path / "out")]
    for attempt in range(2):  # the second run resumes from the first: still one selection
        counted["select"], counted["unavailable_reason"] = 0, []
        assert compare.main(args) == 1  # flux is named and cannot run here
        assert counted["select"] == 1, attempt
        assert sorted(counted["unavailable_reason"]) == sorted(ENGINES), attempt


def test_the_selection_carries_framework_rule_and_availability():
    sel = selection.select(Spec(engines=ENGINES, **CNN))
    runs = {r.label: r for r in sel.runs}
    assert list(runs) == ["reference/float64", "reference/nnlib", "tests.doubles.nnlib_engine/float32",
                          "tests.doubles.fixed_logits_engine/fixed"]
    assert runs["tests.doubles.nnlib_engine/float32"].maxpool_gradient == "nnlib"
    assert runs["tests.doubles.fixed_logits_engine/fixed"].maxpool_gradient == "exact"
    assert runs["reference/float64"].framework == "numpy" and runs["reference/float64"].python_modules == ("numpy",)
    if selection.unavailable_reason("flux"):
        ((flux, reason),) = sel.cannot_run
        assert flux == EngineMode("flux", "loop") and flux.framework == "Flux" and "bridge.julia setup" in reason
    assert sel.named and not selection.select(Spec(**CNN)).named


def test_an_engine_run_is_its_engine_and_mode():
    """What the selection read of a module describes the run; it does not make another run of it."""
    assert EngineMode("keras", "fit", "tensorflow", "exact") == EngineMode("keras", "fit")
    assert EngineMode("keras", "fit") != EngineMode("keras", "loop")
