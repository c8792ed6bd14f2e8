"""Memory per engine run, measured on real worker processes: a stand-in engine that holds a known block
in its second epoch (tests/doubles/memory_engine.py, 400 MB in the worker, or 200 MB in a process it
starts) shows that block in that epoch's sampled peak, within the tolerance bridge/proctree.py
documents, and the reference beside it (which allocates nothing) shows no such jump; the worker's own
high-water mark bounds its sampled peak; the summary, the table and the report carry the peak."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pandas as pd
import pytest

from bridge.experiment.spec import Spec
from bridge.presentation import figures, report
from bridge.results import store
from bridge.results.summary import format_bytes, format_table
from bridge.running import runner
from bridge.proctree import TOLERANCE_BYTES, counter_error, high_water_mark, rss, tree_rss
from tests.doubles import memory_engine

ENGINE = "tests.doubles.memory_engine"
EPOCHS = 3


def compare(out, mode: str):
    results = runner.run(Spec(dataset="iris", engines=("reference", f"{ENGINE}:{mode}"), epochs=EPOCHS, threads=1),
                         out)
    assert not results.failed, results.warnings
    return out, store.read_frame(out), store.read_summary(out)


@pytest.fixture(scope="module")
def block_run(tmp_path_factory):
    return compare(tmp_path_factory.mktemp("block"), "block")


def measures(frame: pd.DataFrame, engine: str) -> tuple[pd.Series, pd.Series]:
    """A run's whole-run memory rows (metric -> bytes) and its per-epoch peaks (epoch -> bytes)."""
    f = frame[(frame.engine == engine) & (frame.split == "memory")]
    epochs = f[f.epoch.notna()]
    assert set(epochs.metric) == {"rss_peak_bytes"}
    return f[f.epoch.isna()].set_index("metric").value, epochs.set_index("epoch").value.sort_index()


def test_a_block_held_in_the_second_epoch_is_that_epoch_s_peak_within_the_tolerance(block_run):
    _, frame, _ = block_run
    whole, peaks = measures(frame, ENGINE)
    assert list(peaks.index) == list(range(EPOCHS))
    before, slack = whole["rss_build_bytes"], TOLERANCE_BYTES + whole["epoch_bytes"]
    assert abs(peaks[memory_engine.BLOCK_EPOCH] - (before + memory_engine.BLOCK_BYTES)) <= slack, (before, peaks)
    for epoch in (0, 2):  # allocated nothing then: no block in those epochs' peaks
        assert peaks[epoch] - before <= slack, (epoch, before, peaks)
    assert whole["rss_peak_bytes"] == peaks.max()


def test_the_reference_which_allocates_nothing_shows_no_jump(block_run):
    _, frame, _ = block_run
    whole, peaks = measures(frame, "reference")
    assert (peaks - whole["rss_build_bytes"] <= TOLERANCE_BYTES + whole["epoch_bytes"]).all(), peaks
    assert whole["rss_peak_bytes"] < measures(frame, ENGINE)[0]["rss_peak_bytes"] - memory_engine.BLOCK_BYTES / 2


def test_each_stage_is_measured_and_the_kernel_s_high_water_mark_bounds_the_sampled_peak(block_run):
    _, frame, _ = block_run
    for engine in ("reference", ENGINE):  # neither starts a process: the tree is the worker
        whole, _ = measures(frame, engine)
        assert 0 < whole["rss_baseline_bytes"] <= whole["rss_build_bytes"], whole
        assert whole["hwm_bytes"] >= whole["rss_peak_bytes"] - counter_error(), whole
        assert whole["rss_peak_bytes"] >= whole["rss_baseline_bytes"], whole
        assert whole["epoch_bytes"] == 120 * (4 * 4 + 4)  # Iris' training split: float32 features, int32 labels


def test_summary_json_and_the_table_carry_the_peak(block_run):
    _, frame, doc = block_run
    rows = {r["engine"]: r for r in doc["summary"]}
    table = format_table(pd.DataFrame(doc["summary"]))
    assert "peak memory" in table.splitlines()[0]
    for engine, mode in (("reference", "float64"), (ENGINE, "block")):
        whole, _ = measures(frame, engine)
        row = rows[f"{engine}/{mode}"]
        for metric in ("rss_peak_bytes", "rss_baseline_bytes", "rss_build_bytes", "hwm_bytes", "epoch_bytes"):
            assert row[metric] == whole[metric], (engine, metric)  # one repeat: its value is the median
        (line,) = [line for line in table.splitlines() if line.split()[:1] == [f"{engine}/{mode}"]]
        assert format_bytes(row["rss_peak_bytes"]) in line, line
    assert format_bytes(rows[f"{ENGINE}/block"]["rss_peak_bytes"]).endswith("MiB")


def test_the_report_has_the_memory_figure(block_run):
    out, frame, _ = block_run
    data = figures.memory_data(frame)
    whole, _ = measures(frame, ENGINE)
    mine = data[data.label == f"{ENGINE}/block"].set_index("metric")["median"]
    assert mine.to_dict() == {m: whole[m] for m in ("rss_baseline_bytes", "rss_build_bytes", "rss_peak_bytes")}
    page = report.build(out).read_text()
    assert (out / "figures" / "memory.png").stat().st_size > 0
    assert "figures/memory.png" in page and "peak memory" in page


def test_the_tree_s_peak_counts_a_process_the_engine_starts(tmp_path):
    _, frame, _ = compare(tmp_path, "child")
    whole, peaks = measures(frame, ENGINE)
    held = peaks[memory_engine.BLOCK_EPOCH] - whole["rss_build_bytes"]
    assert held >= memory_engine.CHILD_BYTES - TOLERANCE_BYTES, (held, peaks)
    # the worker's own high-water mark never saw the child's block
    assert whole["hwm_bytes"] + memory_engine.CHILD_BYTES - TOLERANCE_BYTES <= whole["rss_peak_bytes"], whole


def test_tree_rss_sums_a_live_child_and_vmhwm_is_at_least_rss():
    child = subprocess.Popen([sys.executable, "-c", memory_engine.CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == b"holding"
        assert rss(child.pid) >= memory_engine.CHILD_BYTES
        assert tree_rss() - rss() >= memory_engine.CHILD_BYTES
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    assert high_water_mark() >= rss() - counter_error() > 0
    assert rss(child.pid) is None and high_water_mark(child.pid) is None  # ended: nothing, not zero


@pytest.mark.parametrize("engine", ["torch", "jax"])
def test_a_framework_s_import_is_its_share_above_the_baseline_and_the_cpu_has_no_device_memory(engine, tmp_path):
    if importlib.util.find_spec(engine) is None:
        pytest.skip(f"{engine} is not installed: pip install 'bridge[{engine}]'")
    runner.run(Spec(dataset="iris", engines=(engine,), epochs=2, threads=1), tmp_path)
    (run,) = store.read_summary(tmp_path)["engines"]
    assert run["status"] == "ok", run["message"]
    rep = run["report"]
    # the framework's import costs tens of MB at least; bridge's own baseline comes before it
    assert rep["rss_import_bytes"] - rep["rss_baseline_bytes"] > 20 * 2 ** 20, rep
    assert rep["rss_baseline_bytes"] < rep["rss_import_bytes"] <= rep["rss_build_bytes"] + TOLERANCE_BYTES
    assert rep["hwm_bytes"] >= rep["rss_peak_bytes"] - counter_error()
    assert rep["rss_peak_bytes"] >= rep["rss_build_bytes"]
    # its memory_report ran (an error would be recorded) and found no GPU
    assert "memory_report_error" not in rep and not any(k.startswith("device_memory") for k in rep), rep
