"""Time to a target accuracy, end to end: a stand-in engine of known accuracy curve and epoch times
(tests/doubles/target_engine.py) runs through bridge's worker, and the time bridge reports is the sum of
the epoch times it reported up to the first epoch that reaches the target, in the table, summary.json,
the report, its figure and sweep.csv; a target never reached is said in words, never given a number; the
target's default is the data set's and the model's; changing it keeps the experiment (and its folder).
"""
import json
import math
import re

import pandas as pd
import pytest

from bridge.experiment.spec import TARGET_ACCURACY, Spec, from_mapping
from bridge.presentation import figures
from bridge.results import intervals
from bridge.results.store import read_frame
from bridge.results.summary import epoch_times, format_interval, format_seconds, format_table
from bridge.sweep import results as sweep_results
from bridge.sweep.grid import Point
from tests.doubles import target_engine as curve
from tests.support import environment, run_compare

ENGINE = "tests.doubles.target_engine"
LABEL = f"{ENGINE}/curve"
ARGS = ("--engines", ENGINE, "--dataset", "iris", "--threads", "1")
WIDE = environment(COLUMNS="400")  # the whole table, whatever the terminal running the tests says


def row_of(summary: dict) -> dict:
    (row,) = [r for r in summary["summary"] if r["engine"] == LABEL]
    return row


def table_cell(stdout: str) -> str:
    """The ``to target`` cell of the engine's row in the printed table: its last column, after ``test acc``
    (four decimals)."""
    lines = stdout.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("engine"))
    assert " ".join(header.split()).endswith("test acc to target"), stdout
    row = next(line for line in lines[lines.index(header):] if line.lstrip().startswith(LABEL))
    return re.fullmatch(r".* \d\.\d{4} +(.*)", row).group(1).strip()


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    """One repeat, 5 epochs, the default target (Iris: 0.9), with the report."""
    r = run_compare(*ARGS, "--epochs", "5", out=tmp_path_factory.mktemp("target-one"), env=WIDE)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Three repeats, 4 epochs: trained once, then summarised again for other targets."""
    out = tmp_path_factory.mktemp("target-three")
    r = run_compare(*ARGS, "--epochs", "4", "--repeats", "3", "--target_accuracy", "0.95", "--no-report", out=out,
                    env=WIDE)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_time_to_target_is_the_sum_of_the_reported_epoch_times_up_to_the_first_epoch_that_reaches_it(one):
    row = row_of(one.summary)
    assert curve.ACCURACY[0][3] == 0.9 and all(a < 0.9 for a in curve.ACCURACY[0][:3])  # reached at epoch 3
    assert row["time_to_target_s"] == curve.time_to(0, 3) == 2.0 + 0.5 + 0.25 + 0.125  # exactly
    assert row["target_epoch"] == 3 and isinstance(row["target_epoch"], int)
    assert (row["target_reached"], row["target_repeats"], row["target_reason"]) == (1, 1, "")
    assert row["target_accuracy"] == 0.9
    # one repeat: no interval, as for every other time
    assert row["time_to_target_s_low"] is None and row["time_to_target_s_high"] is None
    assert table_cell(one.stdout) == f"{format_seconds(curve.time_to(0, 3))} (ep 3)" == "2.88 s (ep 3)"
    # the accuracy the worker measured is the curve's, so the target was judged on it
    frame = one.frame
    test = frame[(frame.split == "test") & (frame.metric == "accuracy")].sort_values("epoch")
    assert test.value.tolist() == pytest.approx(curve.ACCURACY[0][:5], abs=1e-12)


def test_results_csv_is_unchanged_by_the_target(one):
    from bridge.results.store import COLUMNS

    assert list(one.frame.columns) == COLUMNS
    metrics = set(one.frame.metric)  # the measured values only (memory's among them); the target's are derived
    assert {"step_loss", "loss", "accuracy", "epoch_s", "import_s", "build_s"} <= metrics
    assert not any("target" in m for m in metrics) and set(one.frame.split) <= {"train", "test", "timing", "machine",
                                                                                 "memory"}


def test_the_default_target_is_the_data_set_s_and_model_s_and_summary_json_says_so(one):
    assert one.summary["target"] == {"accuracy": TARGET_ACCURACY["iris", "mlp"], "source": "default for iris mlp",
                                     "split": "test"}
    assert one.summary["spec"]["target_accuracy"] == 0.0  # as given: 0 stands for the default
    for (dataset, model), accuracy in TARGET_ACCURACY.items():
        assert Spec(dataset=dataset, model=model).target() == (accuracy, f"default for {dataset} {model}")
        assert Spec(dataset=dataset, model=model, target_accuracy=0.5).target() == (0.5, "given")
    assert (TARGET_ACCURACY["iris", "mlp"], TARGET_ACCURACY["fashion-mnist", "mlp"],
            TARGET_ACCURACY["fashion-mnist", "cnn"]) == (0.9, 0.86, 0.885)
    value, why = Spec(dataset="synthetic").target()
    assert value is None and "random labels" in why and "--target_accuracy" in why
    # a spec.toml written before the field existed reads as the default
    old = from_mapping({"dataset": "fashion-mnist", "model": "cnn"})
    assert old.target() == (0.885, "default for fashion-mnist cnn")


def test_the_report_states_the_target_and_marks_the_time_to_it_on_the_accuracy_against_time_figure(one):
    page = (one.out / "report.html").read_text()
    target = page[page.index("<p id='target'>"):]
    target = target[:target.index("</p>")]
    assert "<strong>0.9</strong>" in target and "default for iris mlp" in target
    assert "<th>time to target</th>" in page and "<td>2.88 s (ep 3)</td>" in page
    assert (one.out / "figures" / "accuracy_time.png").read_bytes()[:4] == b"\x89PNG"
    data = figures.accuracy_time_data(read_frame(one.out))
    assert set(data.target) == {0.9}
    (hit,) = data[data.at_target].itertuples()
    assert (hit.split, hit.epoch, hit.seconds, hit.accuracy) == ("test", 3, curve.time_to(0, 3), pytest.approx(0.9))
    fig = figures.accuracy_time_figure(data, figures.about(read_frame(one.out)))
    assert "target test accuracy 0.9" in " ".join(fig._suptitle.get_text().split())
    assert any(line.get_ydata()[0] == 0.9 and len(set(line.get_ydata())) == 1 for line in fig.axes[1].lines)


def test_a_target_never_reached_is_not_reached_and_null_never_a_number(three):
    row = row_of(three.summary)
    assert three.summary["target"] == {"accuracy": 0.95, "source": "given", "split": "test"}
    assert max(max(a[:4]) for a in curve.ACCURACY) < 0.95
    assert row["time_to_target_s"] is None and row["target_epoch"] is None
    assert row["time_to_target_s_low"] is None and row["time_to_target_s_high"] is None
    assert (row["target_reached"], row["target_repeats"]) == (0, 3)
    assert row["target_reason"] == "not reached in 4 epochs" == table_cell(three.stdout)
    assert not re.search(r"\d+(\.\d+)? m?s", table_cell(three.stdout))


def test_changing_the_target_keeps_the_spec_hash_and_the_folder_and_recomputes_the_summary(three):
    before = three.summary
    assert Spec(target_accuracy=0.8).hash() == Spec().hash() == Spec(target_accuracy=0.95).hash()
    again = run_compare(*ARGS, "--epochs", "4", "--repeats", "3", "--target_accuracy", "0.9", "--no-report",
                        out=three.out, env=WIDE)
    assert again.returncode == 0, again.stdout + again.stderr
    after = again.summary
    assert after["fingerprint"]["spec_hash"] == before["fingerprint"]["spec_hash"]
    # the folder is reused: every engine run is the one trained before, none ran again
    assert [(e["started"], e["ended"]) for e in after["engines"]] == [(e["started"], e["ended"])
                                                                      for e in before["engines"]]
    assert after["target"] == {"accuracy": 0.9, "source": "given", "split": "test"}
    row = row_of(after)
    # repeats 0 and 1 reach 0.9 at epoch 3, repeat 2 never: no median of those that got there
    assert (row["target_reached"], row["target_repeats"]) == (2, 3)
    assert row["time_to_target_s"] is None and row["target_epoch"] is None
    assert row["target_reason"] == "reached in 2 of 3 repeats" == table_cell(again.stdout)


def test_with_repeats_the_time_is_the_median_over_repeats_with_its_interval(three):
    again = run_compare(*ARGS, "--epochs", "4", "--repeats", "3", "--target_accuracy", "0.8", "--no-report",
                        out=three.out, env=WIDE)
    assert again.returncode == 0, again.stdout + again.stderr
    row = row_of(again.summary)
    # 0.8: repeats 0 and 1 at epoch 2, repeat 2 at epoch 3
    times = [curve.time_to(0, 2), curve.time_to(1, 2), curve.time_to(2, 3)]
    assert times == [2.75, 5.25, 5.0]
    want = intervals.median_interval([[t] for t in times])
    assert row["time_to_target_s"] == want.point == 5.0
    assert (row["time_to_target_s_low"], row["time_to_target_s_high"]) == (want.low, want.high)
    assert row["target_epoch"] == 2 and (row["target_reached"], row["target_repeats"]) == (3, 3)
    assert table_cell(again.stdout) == f"{format_interval(5.0, want.low, want.high)} (ep 2)"


def test_the_to_target_column_is_left_out_on_a_narrow_terminal(one):
    rows = pd.DataFrame(one.summary["summary"])
    assert "to target" in format_table(rows).splitlines()[0]
    narrow = format_table(rows, width=60)
    assert "to target" in " ".join(narrow.split("left out")[1].split()) and "2.88 s" not in narrow


def test_sweep_csv_has_each_repeat_s_time_to_target_and_epoch(one, three, tmp_path):
    spec = from_mapping({"dataset": "iris", "epochs": 5, "engines": ENGINE, "threads": 1})
    rows = sweep_results.point_rows(Point({"epochs": 5}, spec), one.out)
    frame = sweep_results.table(rows, ["epochs"])
    assert frame.time_to_target_s.tolist() == [curve.time_to(0, 3)] and frame.target_epoch.tolist() == [3]
    assert frame.target_accuracy.tolist() == [0.9]
    spec = from_mapping({"dataset": "iris", "epochs": 4, "repeats": 3, "engines": ENGINE, "threads": 1})
    frame = sweep_results.table(sweep_results.point_rows(Point({"epochs": 4}, spec), three.out), ["epochs"])
    target = json.loads((three.out / "summary.json").read_text())["target"]["accuracy"]  # the last one given
    assert sorted(frame.repeat) == [0, 1, 2]
    for repeat, seconds, epoch in zip(frame.repeat, frame.time_to_target_s, frame.target_epoch):
        first = next((e for e, a in enumerate(curve.ACCURACY[repeat][:4]) if a >= target), None)
        if first is None:
            assert math.isnan(seconds) and epoch is pd.NA
        else:
            assert (seconds, epoch) == (curve.time_to(repeat, first), first)
    sweep_results.write_table(tmp_path, frame)
    text = (tmp_path / "sweep.csv").read_text().splitlines()
    header = text[0].split(",")
    epochs = [line.split(",")[header.index("target_epoch")] for line in text[1:]]
    assert all(e == "" or re.fullmatch(r"\d+", e) for e in epochs)  # an epoch, or empty: never 3.0


def test_the_compilation_an_engine_says_its_epochs_held_is_kept_and_summarised(three, tmp_path):
    """The Julia engines say how much of each epoch Julia spent compiling (the first epoch's differs between
    models); the stand-in says it as they do: results.csv keeps it per epoch, summary.json and sweep.csv
    give the first epoch's."""
    frame = read_frame(three.out)
    kept = frame[frame.metric == "compile_s"].sort_values(["repeat", "epoch"])
    assert kept.split.unique().tolist() == ["timing"]
    assert kept.value.tolist() == [c for r in range(3) for c in curve.COMPILE_S[r][:4]]
    first = [curve.COMPILE_S[r][0] for r in range(3)]
    assert row_of(json.loads((three.out / "summary.json").read_text()))["first_epoch_compile_s"] == sorted(first)[1]
    spec = from_mapping({"dataset": "iris", "epochs": 4, "repeats": 3, "engines": ENGINE, "threads": 1})
    rows = sweep_results.table(sweep_results.point_rows(Point({"epochs": 4}, spec), three.out), ["epochs"])
    assert dict(zip(rows.repeat, rows.first_epoch_compile_s)) == dict(enumerate(first))
    # an engine whose framework says nothing (TensorFlow, PyTorch) has none, not a zero
    silent = epoch_times(frame[frame.metric != "compile_s"])
    assert len(silent) == 3 and silent.first_epoch_compile_s.isna().all()


def test_a_target_outside_0_to_1_is_a_usage_error():
    r = run_compare(*ARGS, "--target_accuracy", "1.5", "--dry-run")
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("bridge.compare: error: target_accuracy must be a fraction") and "1.5" in line
    assert "0 for the default" in line
