"""Documented differences between frameworks, modelled instead of hidden (bridge.experiment.semantics):
which reference variant runs, which one each engine is compared with, and what the results and the report
say about it.

The NNlib-rule engine here is tests/doubles/nnlib_engine.py, a stand-in for flux and knet (no Julia here)."""
import numpy as np
import pytest

from bridge.experiment import semantics
from bridge.experiment.spec import Spec
from bridge.presentation import figures
from bridge.results import parity
from bridge.results.records import EngineMode
from bridge.results.store import read_frame, read_summary
from bridge.running import selection
from tests.support import run_compare

STAND_IN = "tests.doubles.nnlib_engine"
CNN = dict(dataset="synthetic", model="cnn", synthetic_shape="1,28,28", synthetic_samples=320, classes=4,
           batch_size=32, epochs=1, optimizer="adam", learning_rate=0.001)


def labels(spec):
    return [r.label for r in selection.select(spec).runs]


def test_the_nnlib_reference_runs_when_an_engine_of_the_run_needs_it():
    assert labels(Spec(engines=("reference", STAND_IN), **CNN)) == [
        "reference/float64", "reference/nnlib", f"{STAND_IN}/float32"]
    # not for the exact-rule engines, nor for an MLP (no max-pool, the variants are one computation)
    assert labels(Spec(engines=("reference",), **CNN)) == ["reference/float64"]
    assert labels(Spec(engines=("reference", STAND_IN), dataset="iris", epochs=1)) == [
        "reference/float64", f"{STAND_IN}/float32"]
    # named explicitly, it runs anyway
    assert labels(Spec(engines=("reference:nnlib",), dataset="iris")) == ["reference/nnlib"]
    # flux needs the variant wherever flux can run; where it cannot, nothing would be compared with it
    with_flux = EngineMode("reference", "nnlib") in selection.select(Spec(engines=("reference", "flux"), **CNN)).runs
    assert with_flux == (selection.unavailable_reason("flux") is None)


def test_flux_and_knet_declare_nnlib_on_the_cpu_and_the_python_engines_the_exact_rule():
    for engine in ("flux", "knet"):
        mod = selection.module(engine)
        assert semantics.rule_of(mod, "loop", "cpu") == "nnlib" and semantics.rule_of(mod, "loop", "cuda") == "cudnn"
        assert semantics.reference_mode(semantics.rule_of(mod, "loop", "cpu"), "cnn") == "nnlib"
        assert semantics.reference_mode("nnlib", "mlp") == "float64"
        assert semantics.reference_mode("cudnn", "cnn") == "float64"
    for engine in ("keras", "torch", "jax", "keras-jax", "keras-torch"):
        mod = selection.module(engine)
        assert {semantics.rule_of(mod, m, d) for m in mod.MODES for d in ("cpu", "cuda")} == {"exact"}


def test_the_selection_decides_every_run_s_rule_once_and_the_run_carries_it():
    """The rule is read from each engine module once, by the selection; the reference's by its mode."""
    runs = {r.label: r for r in selection.select(Spec(engines=("reference", STAND_IN), **CNN)).runs}
    assert {label: r.maxpool_gradient for label, r in runs.items()} == {
        "reference/float64": "exact", "reference/nnlib": "nnlib", f"{STAND_IN}/float32": "nnlib"}
    assert runs[f"{STAND_IN}/float32"].framework == "numpy"


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    args = [f"--{k}={v}" for k, v in CNN.items()]
    run = run_compare(*args, "--engines", f"reference,{STAND_IN}", "--quiet", out=tmp_path_factory.mktemp("cnn"),
                      timeout=600)
    assert run.returncode == 0, run.stderr
    return run.out


def test_each_engine_is_compared_with_the_variant_of_its_rule(cnn_run):
    doc = read_summary(cnn_run)
    sem = doc["semantics"]
    assert sem["maxpool_gradient"] == {
        "reference/float64": {"maxpool_gradient": "exact", "compared_with": None},
        "reference/nnlib": {"maxpool_gradient": "nnlib", "compared_with": "reference/float64"},
        f"{STAND_IN}/float32": {"maxpool_gradient": "nnlib", "compared_with": "reference/nnlib"}}
    assert set(sem["rules"]) == {"exact", "nnlib"}
    size = sem["reference_variants"]
    assert size["steps"] == 10 and size["max_rel_diff"] > parity.TOLERANCE["adam"]  # the rules really differ here

    data = figures.parity_data(read_frame(cnn_run))
    by_label = {label: g for label, g in data.groupby("label")}
    stand_in = by_label[f"{STAND_IN}/float32"]
    assert set(stand_in.reference_label) == {"reference/nnlib"}
    assert stand_in.rel_diff.max() <= parity.TOLERANCE["adam"]
    assert set(by_label["reference/nnlib"].reference_label) == {"reference/float64"}
    assert np.isclose(by_label["reference/nnlib"].rel_diff.max(), size["max_rel_diff"])
    assert "reference/float64" not in by_label


def test_every_two_engine_runs_are_compared_with_each_other_and_the_figure_marks_the_window(cnn_run):
    doc = read_summary(cnn_run)
    agreement = doc["agreement"]
    assert agreement["window"] == parity.PARITY_STEPS["cnn"]
    pairs = {frozenset((p["a"], p["b"])): p for p in agreement["pairs"]}
    labels = ["reference/float64", "reference/nnlib", f"{STAND_IN}/float32"]
    assert set(pairs) == {frozenset((a, b)) for i, a in enumerate(labels) for b in labels[i + 1:]}
    # the stand-in against the NNlib variant: its parity, measured the other way round (|a − b| / |b|)
    pair = pairs[frozenset(labels[1:])]
    entry = doc["parity"]["runs"][f"{STAND_IN}/float32"]
    assert pair["window_steps"] == entry["steps"] == 10
    assert pair["window_max_rel_diff"] == pytest.approx(entry["max_rel_diff"], rel=1e-3, abs=1e-12)
    assert pair["run_steps"] >= pair["window_steps"] and pair["run_max_rel_diff"] >= pair["window_max_rel_diff"]
    # the variants' own difference, as the semantics record gives it over its first 10 steps (there measured
    # against the exact variant, here |a − b| / |b|: the denominators differ by that difference itself)
    variants = pairs[frozenset(labels[:2])]
    size = doc["semantics"]["reference_variants"]["max_rel_diff"]
    assert variants["window_max_rel_diff"] == pytest.approx(size, rel=2 * size)
    frame = read_frame(cnn_run)
    final = frame[(frame.split == "test") & (frame.metric == "accuracy") & (frame.epoch == frame.epoch.max())]
    got = final.groupby("label").value.median()
    assert pair["test_accuracy_diff"] == pytest.approx(got[pair["a"]] - got[pair["b"]])
    page = (cnn_run / "report.html").read_text()
    section = page[page.index("id='agreement'"):page.index("id='semantics'")]
    assert "over the parity window (the first 10 steps)" in section and f"<td>{STAND_IN}/float32</td>" in section

    data = figures.parity_data(frame)
    assert set(data.window) == {10} and set(data.tolerance) == {parity.TOLERANCE["adam"]}
    fig = figures.parity_figure(data)
    legend = [t.get_text() for t in fig.legends[0].get_texts()] if fig.legends else \
        [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "parity window: the first 10 steps, which the table judges" in legend
    assert f"parity tolerance ({parity.TOLERANCE['adam']:g})" in legend


def test_the_report_names_the_rule_of_every_engine_and_the_size_of_the_difference(cnn_run):
    page = (cnn_run / "report.html").read_text()
    assert "id='semantics'" in page and "id='variant-size'" in page
    section = page[page.index("id='semantics'"):page.index("id='figures'")]
    for text in (f"{STAND_IN}/float32", "reference/nnlib", "reference/float64", "NNlib", "√eps(Float32)"):
        assert text in section, text
    assert (cnn_run / "figures" / "parity.png").is_file()
